"""Check that an MJML source is a well-formed tree of known elements, before MJML compiles it.

mrml (behind mjml-python) accepts some malformed MJML without a word: ``<mj-text>..</mj-button>``
compiles, and so does an unknown ``<mj-txt>``, which then vanishes from the email. What it does
reject at the end of the input ("unexpected end of stream") carries no position. This check
runs on the template's own text, so every problem names the file, line and column.

The scanner is deliberately small. It steps over Jinja (``{{ }}``, ``{% %}``, ``{# #}``, which
may hold ``<`` or ``>``) and XML comments, and keeps a stack of open elements. The content of an
"ending tag" (``<mj-text>``, ``<mj-button>``, ``<mj-raw>``, ``<mj-style>``, ...) is HTML or CSS
that MJML copies through, so it is not checked as MJML: no MJML element may open inside it,
the closing tag that ends it must match, and its HTML must be balanced as mrml requires (except
in ``<mj-raw>``). HTML void elements (``<br>``) and ``<mj-x />`` need no closing tag.
"""

from __future__ import annotations

import difflib
import html
import re
from collections.abc import Iterator

import attrs

from onetomany.errors import TemplateError

__all__ = ["ENDING_TAGS", "MJML_ELEMENTS", "Include", "MjmlStructureError", "check_structure"]

# Every element of MJML 4 (mj-* tag names used as defaults inside mj-attributes are among them).
MJML_ELEMENTS = frozenset(
    {
        "mjml", "mj-head", "mj-body", "mj-include", "mj-attributes", "mj-all", "mj-class",
        "mj-breakpoint", "mj-font", "mj-html-attributes", "mj-html-attribute", "mj-selector",
        "mj-preview", "mj-style", "mj-title", "mj-accordion", "mj-accordion-element",
        "mj-accordion-title", "mj-accordion-text", "mj-button", "mj-carousel",
        "mj-carousel-image", "mj-column", "mj-divider", "mj-group", "mj-hero", "mj-image",
        "mj-navbar", "mj-navbar-link", "mj-raw", "mj-section", "mj-social", "mj-social-element",
        "mj-spacer", "mj-table", "mj-text", "mj-wrapper",
    }
)  # fmt: skip
# Elements whose content is not MJML: MJML 4's ending tags (HTML content), and the head elements
# holding text or CSS.
ENDING_TAGS = frozenset(
    {
        "mj-text", "mj-button", "mj-raw", "mj-table", "mj-navbar-link", "mj-social-element",
        "mj-accordion-title", "mj-accordion-text", "mj-style", "mj-title", "mj-preview",
        "mj-html-attribute",
    }
)  # fmt: skip
_VOID = frozenset(
    {
        "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
        "source", "track", "wbr",
    }
)  # fmt: skip
_JINJA = r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}"
_TOKEN = re.compile(
    # {% raw %} first: its content is text, whatever it looks like.
    r"(?P<raw>\{%-?\s*raw\s*-?%\}.*?\{%-?\s*endraw\s*-?%\})"
    rf"|(?P<jinja>{_JINJA})"
    r"|(?P<comment><!--.*?(?:-->|\Z))"
    r"|(?P<declaration><!\[CDATA\[.*?\]\]>|<[!?][^>]*>)"
    r"|(?P<tag><(?P<close>/)?(?P<name>[A-Za-z][\w:.-]*)"
    # Atomic groups: a tag that never ends must fail fast, not backtrack through every split.
    rf"(?P<attrs>(?>(?>{_JINJA})|\"[^\"]*\"|'[^']*'|[^>\"'{{]+|\{{)*)>)"
    r"|(?P<unfinished><(?P<partial>/?[A-Za-z][\w:.-]*))",
    re.DOTALL,
)
_ATTRIBUTE = re.compile(r"""([^\s=/>"']+)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s>"']+))?""")


class MjmlStructureError(TemplateError):
    """The MJML of ``template`` is not a well-formed tree of MJML elements.

    ``line`` and ``column`` (both from 1) point at the offending tag in the file; ``problem``
    is the message without the location.
    """

    def __init__(self, problem: str, *, template: str, line: int, column: int) -> None:
        super().__init__(problem, template=template, line=line)
        self.column = column
        self.problem = problem
        self.args = (f"{template}:{line}:{column}: invalid MJML: {problem}",)


@attrs.frozen
class Include:
    """An ``<mj-include>`` of a checked source: ``path`` as written, its ``type`` (``mjml``,
    ``html`` or ``css``) and the file line it is on."""

    path: str
    type: str
    line: int | None = attrs.field(default=None, eq=False)


@attrs.frozen
class _Open:
    name: str
    at: int


def check_structure(source: str, *, template: str, first_line: int = 1) -> list[Include]:
    """Raise :class:`MjmlStructureError` at the first structural problem of ``source``, the
    MJML of ``template`` starting on file line ``first_line``; return its ``mj-include``\\ s
    (those with a fixed path) so included files can be checked in turn."""
    position = _Positions(source, first_line)

    def fail(problem: str, at: int) -> MjmlStructureError:
        line, column = position(at)
        return MjmlStructureError(problem, template=template, line=line, column=column)

    stack: list[_Open] = []
    html: list[_Open] = []  # HTML elements open inside the current ending tag
    includes: list[Include] = []
    for match in _tags(source):
        name = match["name"] or match["partial"].lstrip("/")
        element = name.lower()
        inside = stack[-1] if stack else None
        if inside is not None and inside.name in ENDING_TAGS:
            problem = _ending_content(match, name, inside, html, position)
            if problem is not None:
                raise fail(problem, match.start())
            if match["close"] and element == inside.name:
                stack.pop()
            continue
        if match["unfinished"]:
            raise fail(
                f"<{match['partial']} is never finished: no '>' ends it, or a quote in it is "
                "not closed",
                match.start(),
            )
        if match["close"]:
            if element in _VOID:
                continue
            if not stack:
                raise fail(f"</{name}> closes nothing: no element is open", match.start())
            opened = stack.pop()
            if opened.name != element:
                raise fail(
                    f"</{name}> closes <{opened.name}> opened at {position.text(opened.at)}",
                    match.start(),
                )
            continue
        if element.startswith("mj") and element not in MJML_ELEMENTS:
            raise fail(f"<{name}> is not an MJML element{_suggestion(element)}", match.start())
        attributes = match["attrs"]
        if element == "mj-include":
            include = _include(attributes, line=position(match.start())[0])
            if include is not None:
                includes.append(include)
        if attributes.rstrip().endswith("/") or element in _VOID:
            continue
        stack.append(_Open(element, match.start()))
        html.clear()
    if stack:
        opened = stack[-1]
        raise fail(f"<{opened.name}> is never closed", opened.at)
    return includes


def _ending_content(
    match: re.Match[str], name: str, ending: _Open, html: list[_Open], position: _Positions
) -> str | None:
    """What is wrong with tag ``match`` inside ``ending``'s HTML content, if anything.

    MJML elements have no place there, and the closing tag of another one means ``ending`` was
    not closed. The HTML must be balanced (mrml stops at the end of the input otherwise, with
    no position), except in ``<mj-raw>``, whose HTML may open in one and close in a later one.
    Like mrml, a closing HTML tag closes whichever HTML element is open.
    """
    element = name.lower()
    if match["unfinished"]:
        return None  # a '<' in text; MJML's own parser judges it
    if match["close"]:
        if element == ending.name:
            if html:
                unclosed = html[-1]
                return (
                    f"</{name}> closes <{ending.name}> but <{unclosed.name}> opened at "
                    f"{position.text(unclosed.at)} inside it is never closed"
                )
            return None
        if element.startswith("mj"):
            return f"</{name}> closes <{ending.name}> opened at {position.text(ending.at)}"
        if ending.name == "mj-raw" or element in _VOID:
            return None
        if not html:
            return (
                f"</{name}> closes nothing: no HTML element is open inside <{ending.name}> "
                f"opened at {position.text(ending.at)}"
            )
        html.pop()
        return None
    if element.startswith("mj"):
        return (
            f"<{name}> cannot sit inside <{ending.name}> opened at {position.text(ending.at)}: "
            "its content is HTML"
        )
    self_closing = match["attrs"].rstrip().endswith("/")
    if ending.name != "mj-raw" and element not in _VOID and not self_closing:
        html.append(_Open(element, match.start()))
    return None


def _tags(source: str) -> Iterator[re.Match[str]]:
    """The tags of ``source`` (and unfinished tag starts), outside Jinja and comments."""
    for match in _TOKEN.finditer(source):
        if match["tag"] or match["unfinished"]:
            yield match


def _include(attributes: str, *, line: int) -> Include | None:
    values = {name.lower(): _unquote(value) for name, value in _ATTRIBUTE.findall(attributes)}
    path = values.get("path", "")
    if not path or "{" in path:
        return None  # built by Jinja: known only once rendered
    return Include(path=path, type=values.get("type", "mjml").lower(), line=line)


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    return html.unescape(value)


def _suggestion(element: str) -> str:
    close = difflib.get_close_matches(element, sorted(MJML_ELEMENTS), n=1)
    return f"; did you mean <{close[0]}>?" if close else ""


class _Positions:
    """File line and column (from 1) of an offset into ``source``."""

    def __init__(self, source: str, first_line: int) -> None:
        self.source = source
        self.first_line = first_line

    def __call__(self, offset: int) -> tuple[int, int]:
        line = self.first_line + self.source.count("\n", 0, offset)
        column = offset - (self.source.rfind("\n", 0, offset) + 1) + 1
        return line, column

    def text(self, offset: int) -> str:
        line, column = self(offset)
        return f"{line}:{column}"
