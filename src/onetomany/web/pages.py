"""The small HTML pages a person reaches from a link in an email: one layout, escaped text,
never cached (each is one person's), never framed (a page that changes preferences must not
be clickjacked)."""

from __future__ import annotations

import html

from starlette.requests import Request
from starlette.responses import HTMLResponse

from onetomany.web.page_strings import STRINGS, language

_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;"
    "color:#1f2328}fieldset{border:1px solid #d0d7de;margin:1rem 0}label{display:block;"
    "margin:.3rem 0}button{padding:.5rem 1.2rem}.note{color:#57606a}"
)


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def page(title: str, body: str, *, lang: str, status: int = 200) -> HTMLResponse:
    """A page titled ``title`` (escaped here) around ``body`` (already HTML, escaped by the
    caller)."""
    document = (
        f'<!doctype html><html lang="{esc(lang)}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main><h1>{esc(title)}</h1>{body}</main></body></html>"
    )
    return HTMLResponse(document, status_code=status, headers=_HEADERS)


def refused(request: Request, reason: str, status: int = 400) -> HTMLResponse:
    """The page of a link that cannot be used, saying why, in the browser's language (a
    refused token names no contact to take a language from)."""
    lang = language(request, None)
    body = f'<p class="note">{esc(reason)}</p>'
    return page(STRINGS[lang]["refused"], body, lang=lang, status=status)
