"""An in-app message's body as HTML the widget may insert: escaped text by default, markdown
or HTML only when the touch says so (``body = "markdown"`` / ``"html"`` in program.toml), and
then sanitised.

The stored body is what the template rendered, so a trait or an event property interpolated
into it is as untrusted as the rest: every mode's output goes through the same allow-list
(nh3, the Ammonia sanitiser), which keeps formatting, lists, links and images and drops
scripts, event handlers, styles, frames, forms and ``javascript:`` URLs. Markdown is read
with markdown-it-py in CommonMark mode with raw HTML off, so HTML typed into markdown shows as
text.
"""

from __future__ import annotations

import html
from functools import lru_cache

import nh3
from markdown_it import MarkdownIt

from onetomany.program import BODY_FORMATS

#: The elements a body may keep: text formatting, structure, links and images.
ALLOWED_TAGS = frozenset(
    {
        "a", "b", "blockquote", "br", "code", "em", "h1", "h2", "h3", "h4", "hr", "i", "img",
        "li", "ol", "p", "pre", "s", "strong", "sub", "sup", "table", "tbody", "td", "th",
        "thead", "tr", "u", "ul",
    }
)  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title"}}
_SCHEMES = {"http", "https", "mailto"}


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False, "linkify": False})


def sanitise(markup: str) -> str:
    """``markup`` with only the allowed elements, attributes and URL schemes; links open in
    a new tab without handing the opener or the referrer over."""
    return nh3.clean(
        markup,
        tags=set(ALLOWED_TAGS),
        attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(_SCHEMES),
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


def body_html(body: str, body_format: str = "text") -> str:
    """``body`` as HTML: ``"text"`` escaped (line breaks as ``<br>``), ``"markdown"``
    rendered and sanitised, ``"html"`` sanitised. An unknown format is treated as text."""
    if body_format == "markdown":
        return sanitise(_markdown().render(body))
    if body_format == "html":
        return sanitise(body)
    return html.escape(body).replace("\n", "<br>")


__all__ = ["ALLOWED_TAGS", "BODY_FORMATS", "body_html", "sanitise"]
