"""Derive a plain-text body from rendered HTML.

Used when a template has no hand-written ``.txt``. The converter is deliberately small and
built on :mod:`html.parser` (no extra dependency): it keeps the words, the paragraph shape and
the link targets, and throws away everything a text reader cannot use: ``<head>``, styles,
scripts, hidden blocks (MJML's preview text) and Outlook-only conditional comments.

:class:`BlockWalker` holds the part of the walk that decides *where* text goes (hidden
regions, paragraph and line breaks) and :func:`link_suffix` what a link adds after its label;
:class:`TextExtractor` is the whole walk; :mod:`onetomany.templating.derived` runs it once per
template over HTML that still holds its Jinja tags.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

__all__ = [
    "LINE_BREAK",
    "PARAGRAPH_BREAK",
    "BlockWalker",
    "assemble",
    "html_to_text",
    "link_suffix",
    "prepare",
    "squeeze",
]

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
LINE_BREAK = "\x01"
PARAGRAPH_BREAK = "\x02"
MARKERS = (LINE_BREAK, PARAGRAPH_BREAK)
# What assemble() rewrites: runs of whitespace and markers, and any whitespace but a space.
_RUN = re.compile(r"[\s\x01\x02]{2,}|[^\S ]")
_EDGES = "".join(MARKERS) + " "


class BlockWalker(HTMLParser):
    """The part of the text extraction that decides where text goes.

    Subclasses call :meth:`enter` from ``handle_starttag`` and :meth:`leave` from
    ``handle_endtag``; both say whether the tag is visible (not in or opening a hidden region),
    and :meth:`emit_break` receives the break a visible tag makes. ``hidden`` tells whether
    text data is currently dropped; ``region`` numbers the hidden region being skipped (0 when
    none), so two walks can tell whether they stand in the same one.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._skip_tag: str | None = None
        self._skip_depth = 0
        self._regions = 0
        self.region = 0

    @property
    def hidden(self) -> bool:
        return self._skip_tag is not None

    def emit_break(self, marker: str) -> None:
        raise NotImplementedError

    def enter(self, tag: str, style: str | None) -> bool:
        """A start tag with its ``style``: ``False`` when its content is hidden."""
        if self._skip_tag is not None:
            if tag == self._skip_tag:
                self._skip_depth += 1
            return False
        hidden = _HIDDEN_STYLE.search(style or "") is not None
        if (tag in _DROPPED or hidden) and tag not in _VOID:
            self._regions += 1
            self._skip_tag, self._skip_depth, self.region = tag, 1, self._regions
            return False
        if tag in _PARAGRAPH:
            self.emit_break(PARAGRAPH_BREAK)
        elif tag in _LINE:
            self.emit_break(LINE_BREAK)
        return True

    def leave(self, tag: str) -> bool:
        """An end tag: ``False`` when it is hidden (or closes the hidden region)."""
        if self._skip_tag is not None:
            if tag == self._skip_tag:
                self._skip_depth -= 1
                if self._skip_depth == 0:
                    self._skip_tag, self.region = None, 0
            return False
        if tag in _PARAGRAPH:
            self.emit_break(PARAGRAPH_BREAK)
        elif tag in _LINE and tag != "br":
            self.emit_break(LINE_BREAK)
        return True

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)


def link_suffix(href: str, label: str) -> str:
    """What follows a link's text: `` (href)``, or ``href`` alone for a link without text, or
    nothing for a link to itself, an anchor or a script. ``href`` is stripped, ``label`` is the
    link's text with breaks removed and whitespace collapsed."""
    if not href or href.startswith(("#", "javascript:")):
        return ""
    target = href.removeprefix("mailto:") if href.startswith("mailto:") else href
    if label in (href, target):
        return ""
    return f" ({target})" if label else target


def link_label(stream: str) -> str:
    """The label :func:`link_suffix` compares: ``stream`` without breaks, whitespace collapsed."""
    return " ".join(stream.replace(LINE_BREAK, "").replace(PARAGRAPH_BREAK, "").split())


def strip_markers(text: str) -> str:
    """``text`` without break markers (the parser drops them from text data)."""
    if LINE_BREAK in text or PARAGRAPH_BREAK in text:
        return text.replace(LINE_BREAK, "").replace(PARAGRAPH_BREAK, "")
    return text


class TextExtractor(BlockWalker):
    """The walk :func:`html_to_text` runs: ``out`` is the text with break markers."""

    def __init__(self) -> None:
        super().__init__()
        self.out: list[str] = []
        # One entry per open <a>: its href and where its text starts in ``out``.
        self._links: list[tuple[str, int]] = []

    def emit_break(self, marker: str) -> None:
        self.out.append(marker)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if not self.enter(tag, attributes.get("style")):
            return
        if tag == "li":
            self.out.append("- ")
        elif tag == "a":
            self._links.append(((attributes.get("href") or "").strip(), len(self.out)))
        elif tag == "img" and self._links:
            # An image inside a link is the link's text (a banner button, a logo).
            self.out.append(attributes.get("alt") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._links and not self.hidden:
            href, start = self._links.pop()
            self.out.append(link_suffix(href, link_label("".join(self.out[start:]))))
            return
        self.leave(tag)

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.out.append(strip_markers(data))

    # Comments include MSO conditionals (<!--[if mso]>...<![endif]-->): Outlook-only markup.
    def handle_comment(self, data: str) -> None:
        return

    def text(self) -> str:
        return assemble("".join(self.out))


def assemble(stream: str) -> str:
    """Turn the extractor's output stream (text with break markers) into the final text: the
    strongest break of each run of breaks and whitespace (a blank line for a paragraph, a line
    break for a line), any other whitespace run as one space, nothing at either end."""
    # str methods, not a regular expression over every character: a substitution with _RUN
    # cost more than the rest of a small email's render. split() drops whitespace the way
    # _RUN sees it (\s is the set str.split() splits on; markers are not in it), and a
    # break's run is what lies between its neighbours once spaces and weaker breaks are
    # stripped from them; empty pieces are runs of breaks.
    paragraphs = []
    for paragraph in " ".join(stream.split()).split(PARAGRAPH_BREAK):
        lines = [line.strip(" ") for line in paragraph.split(LINE_BREAK)]
        if text := "\n".join(line for line in lines if line):
            paragraphs.append(text)
    return "\n\n".join(paragraphs)


def squeeze(text: str) -> str:
    """``text`` with each run of whitespace and markers shortened to its strongest element (a
    space for whitespace alone): :func:`assemble` gives the same text for any stream ``text``
    is part of, outside link labels (whose whitespace is compared)."""
    return _RUN.sub(_strongest, text)


def _strongest(run: re.Match[str]) -> str:
    found = run.group()
    if PARAGRAPH_BREAK in found:
        return PARAGRAPH_BREAK
    return LINE_BREAK if LINE_BREAK in found else " "


def html_to_text(html: str) -> str:
    """Return the readable text of ``html``: one blank line between paragraphs, links as
    ``text (url)``, entities decoded, and no trailing newline."""
    parser = TextExtractor()
    parser.feed(prepare(html))
    parser.close()
    return parser.text()


def prepare(html: str) -> str:
    """What the parser reads of ``html``: comments removed, from ``<body`` on if there is one."""
    html = _COMMENT.sub("", html)
    body = _BODY.search(html)
    return html[body.start() :] if body else html
