"""Derive a plain-text body from rendered HTML.

Used when a template has no hand-written ``.txt``. The converter is deliberately small and
built on :mod:`html.parser` (no extra dependency): it keeps the words, the paragraph shape and
the link targets, and throws away everything a text reader cannot use: ``<head>``, styles,
scripts, hidden blocks (MJML's preview text) and Outlook-only conditional comments.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

__all__ = ["LINE_BREAK", "PARAGRAPH_BREAK", "assemble", "html_to_text", "prepare"]

# Elements whose whole content is never shown as text.
_DROPPED = frozenset({"head", "style", "script", "title", "template", "noscript"})
# Elements that start a new paragraph (a blank line in the text) ...
_PARAGRAPH = frozenset(
    {
        "address", "article", "aside", "blockquote", "dd", "div", "dl", "dt", "fieldset",
        "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "main",
        "nav", "ol", "p", "pre", "section", "table", "ul",
    }
)  # fmt: skip
# ... and those that only start a new line.
_LINE = frozenset({"br", "li", "tr", "td", "th", "caption"})
# Void elements never get an end tag, so they must never open a skipped region.
_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
)
# Removed before parsing: they hold nothing readable and are most of an MJML document's bytes
# (MSO conditionals are comments too), so html.parser does a lot less work.
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_BODY = re.compile(r"<body[\s>]", re.IGNORECASE)
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none", re.IGNORECASE)
# Break markers live in the output stream as control characters that HTML text never holds
# (html.parser passes them through, but they are stripped from text data below).
LINE_BREAK = _LINE_BREAK = "\x01"
PARAGRAPH_BREAK = _PARAGRAPH_BREAK = "\x02"
_BREAKS = re.compile(f"([{LINE_BREAK}{PARAGRAPH_BREAK}])")


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self._skip_tag: str | None = None
        self._skip_depth = 0
        # One entry per open <a>: its href and where its text starts in ``out``.
        self._links: list[tuple[str, int]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._skip_tag is not None:
            if tag == self._skip_tag:
                self._skip_depth += 1
            return
        attributes = dict(attrs)
        hidden = _HIDDEN_STYLE.search(attributes.get("style") or "") is not None
        if (tag in _DROPPED or hidden) and tag not in _VOID:
            self._skip_tag, self._skip_depth = tag, 1
            return
        if tag in _PARAGRAPH:
            self.out.append(_PARAGRAPH_BREAK)
        elif tag in _LINE:
            self.out.append(_LINE_BREAK)
        if tag == "li":
            self.out.append("- ")
        elif tag == "a":
            self._links.append(((attributes.get("href") or "").strip(), len(self.out)))
        elif tag == "img" and self._links:
            # An image inside a link is the link's text (a banner button, a logo).
            self.out.append(attributes.get("alt") or "")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if self._skip_tag is not None:
            if tag == self._skip_tag:
                self._skip_depth -= 1
                if self._skip_depth == 0:
                    self._skip_tag = None
            return
        if tag == "a" and self._links:
            href, start = self._links.pop()
            self._close_link(href, start)
        elif tag in _PARAGRAPH:
            self.out.append(_PARAGRAPH_BREAK)
        elif tag in _LINE and tag != "br":
            self.out.append(_LINE_BREAK)

    def _close_link(self, href: str, start: int) -> None:
        if not href or href.startswith(("#", "javascript:")):
            return
        markers = (_LINE_BREAK, _PARAGRAPH_BREAK)
        label = " ".join("".join(p for p in self.out[start:] if p not in markers).split())
        target = href.removeprefix("mailto:") if href.startswith("mailto:") else href
        if label in (href, target):
            return
        self.out.append(f" ({target})" if label else target)

    def handle_data(self, data: str) -> None:
        if self._skip_tag is None:
            self.out.append(data.replace(_LINE_BREAK, "").replace(_PARAGRAPH_BREAK, ""))

    # Comments include MSO conditionals (<!--[if mso]>...<![endif]-->): Outlook-only markup.
    def handle_comment(self, data: str) -> None:
        return

    def text(self) -> str:
        return assemble("".join(self.out))


def assemble(stream: str) -> str:
    """Turn the extractor's output stream (text with break markers) into the final text."""
    lines: list[str] = []
    pending = 0  # newlines owed before the next words: 1 for a line break, 2 for a paragraph
    for piece in _BREAKS.split(stream):
        if piece in (LINE_BREAK, PARAGRAPH_BREAK):
            pending = max(pending, 1 if piece == LINE_BREAK else 2)
        elif piece.strip():
            if lines and pending:
                lines.extend([""] * (pending - 1) + [piece])
            elif lines:
                lines[-1] += piece
            else:
                lines.append(piece)
            pending = 0
        elif lines and not pending:
            lines[-1] += piece  # the space between two inline runs
    # str.split() also splits on no-break spaces, which only ever pad layouts in email HTML.
    return "\n".join(" ".join(line.split()) for line in lines).strip()


def html_to_text(html: str) -> str:
    """Return the readable text of ``html``: one blank line between paragraphs, links as
    ``text (url)``, entities decoded, and no trailing newline."""
    parser = _TextExtractor()
    parser.feed(prepare(html))
    parser.close()
    return parser.text()


def prepare(html: str) -> str:
    """What the parser reads of ``html``: comments removed, from ``<body`` on if there is one."""
    html = _COMMENT.sub("", html)
    body = _BODY.search(html)
    return html[body.start() :] if body else html
