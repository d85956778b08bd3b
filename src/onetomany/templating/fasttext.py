"""Derive the plain text per recipient without parsing the rendered HTML.

:func:`~onetomany.templating.text.html_to_text` parses the whole rendered email per recipient.
But the HTML is a fixed Jinja template (MJML compiled once): its tags, structure and most of its
text are the same for everyone. So, once per template, the compiled HTML is run through the same
extraction with each Jinja tag replaced by a placeholder, and the extractor's output stream
(text plus line/paragraph break markers) becomes a *text template*: static text where the HTML
was static, the tag's expression where it had one. Per recipient, rendering that template and
assembling the stream (the cheap last step of ``html_to_text``) gives the text.

Why that is the same text, and what is refused (the template then keeps the slow path):

* An expression's output is HTML-escaped and the parser decodes it again, so in the stream it is
  the value's ``str()``, minus the break markers (as the parser strips them from text). The text
  template is compiled in the same autoescaping environment, so expressions evaluate exactly as
  in the HTML (``~``, ``join``, ``replace``...); a value that is already markup (``|safe``,
  ``|e``...) would be parsed as HTML, so it sends that one render to the slow path.
* Escaped values cannot open tags, comments or entities. Static text right before a tag that
  could combine with a value into one (``&amp``, ``<b``, ``<!-``) or after one (``>``) is refused.
* Expressions must sit in text or in quoted attribute values. Only three attributes change the
  text: ``style`` (a hidden block; refused when it holds a tag), ``href`` of a link and ``alt`` of
  an image inside one. For a link whose target or label holds a tag, what ``html_to_text``
  appends (`` (url)``, nothing when label and target are equal, ...) is decided per render by
  the same rule: a filter on the target when the label is fixed, else on both captured with
  ``{% set %}`` blocks.
* Control tags (``if``/``elif``/``else``/``endif``, ``for``/``else``/``endfor``, ``set x = ...``)
  are kept in the text template. Each block must leave the extractor in the same state at each of
  its tags (same hidden region, same open links), so whichever branch runs, or however often a
  loop runs, the extraction around it is unchanged. Anything else (``macro``, block ``set``,
  ``raw``, ``include``, whitespace control ``-``) is refused, as is a control tag in a comment or
  in the ``<head>``.
* Filters and globals must be deterministic: the text template evaluates the expressions a
  second time. ``random`` is refused; a program with impure filters of its own should pass
  ``fast_text=False`` to :class:`~onetomany.templating.TemplateSet`.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping
from html import unescape
from html.parser import HTMLParser
from typing import Any

import attrs
import jinja2
from markupsafe import Markup, escape

from onetomany.errors import TemplateError
from onetomany.templating.environment import BoundTemplate, compile_template
from onetomany.templating.placement import JINJA_TAG
from onetomany.templating.text import (
    _DROPPED,
    _HIDDEN_STYLE,
    _LINE,
    _PARAGRAPH,
    _VOID,
    LINE_BREAK,
    PARAGRAPH_BREAK,
    assemble,
    prepare,
)

__all__ = ["FastText", "SlowPath", "compile_fast_text"]

_OPEN, _CLOSE = "\ue000", "\ue001"
_PLACEHOLDER = re.compile(f"{_OPEN}(\\d+){_CLOSE}")
_MARKERS = (LINE_BREAK, PARAGRAPH_BREAK)
_RESERVED = (LINE_BREAK, PARAGRAPH_BREAK, _OPEN, _CLOSE)
# Static text right before a tag that a value could complete into an entity or a tag/comment
# opener, and right after one that could complete a comment closer.
_RISKY_BEFORE = re.compile(r"(?:&[#0-9A-Za-z]*|<[!/?A-Za-z-]*)\Z")
_RISKY_AFTER = re.compile(r"\A-?>")
_QUOTED_VALUE = re.compile(r"""=\s*("[^"]*"|'[^']*')""")
_BLOCK_OPEN = frozenset({"if", "for"})
_BLOCK_MIDDLE = frozenset({"elif", "else"})
_BLOCK_CLOSE = frozenset({"endif", "endfor"})
_RAW_SPECIAL = re.compile(r"[{}\r]")
_FILTERS = ("otm_attr", "otm_raw", "otm_label", "otm_suffix")
# A run of whitespace (as str.split() sees it: \s is the same set) holding break markers.
_BREAK_RUN = re.compile(
    f"[\\s{LINE_BREAK}{PARAGRAPH_BREAK}]*[{LINE_BREAK}{PARAGRAPH_BREAK}][\\s{LINE_BREAK}{PARAGRAPH_BREAK}]*"
)


class SlowPath(TemplateError):
    """Raised inside a fast text render when this recipient's values need the slow path."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, template="(fast text)")


class _Refused(Exception):
    pass


@attrs.frozen
class _Tag:
    index: int
    text: str
    kind: str  # "expr", "control", "comment"
    word: str  # the statement keyword for control tags

    @property
    def inner(self) -> str:
        return self.text[2:-2]


@attrs.frozen
class _Link:
    href: list[Any]  # fragment: str and _Tag
    children: list[Any]
    number: int


@attrs.frozen
class _Attr:
    fragment: list[Any]


def _classify(index: int, text: str) -> _Tag:
    if text[:3] in ("{{-", "{%-", "{#-", "{%+") or text[-3:] in ("-}}", "-%}", "-#}"):
        raise _Refused("whitespace control")
    if "otm_" in text:
        raise _Refused("a tag uses a reserved otm_ name")
    if text.startswith("{{"):
        if re.search(r"\brandom\b", text):
            raise _Refused("the random filter")
        return _Tag(index, text, "expr", "")
    if text.startswith("{#"):
        return _Tag(index, text, "comment", "")
    words = text[2:-2].split()
    word = words[0] if words else ""
    if re.search(r"\brandom\b", text):
        raise _Refused("the random filter")
    if word == "set" and "=" in text:
        return _Tag(index, text, "control", "set")
    if word in _BLOCK_OPEN | _BLOCK_MIDDLE | _BLOCK_CLOSE:
        return _Tag(index, text, "control", word)
    raise _Refused(f"{{% {word} %}}")


def _fragment(value: str, tags: list[_Tag]) -> list[Any]:
    parts: list[Any] = []
    last = 0
    for found in _PLACEHOLDER.finditer(value):
        if found.start() > last:
            parts.append(value[last : found.start()])
        parts.append(tags[int(found.group(1))])
        last = found.end()
    if last < len(value):
        parts.append(value[last:])
    return parts


class _Recorder(HTMLParser):
    """The extraction of :class:`~onetomany.templating.text._TextExtractor`, over HTML holding
    placeholders, producing a stream of static text and tags instead of text."""

    def __init__(self, tags: list[_Tag]) -> None:
        super().__init__(convert_charrefs=True)
        self.tags = tags
        self.out: list[Any] = []
        self.states: dict[int, Any] = {}  # control tag index -> extractor state there
        self.accounted: set[int] = set()
        self._skip_tag: str | None = None
        self._skip_depth = 0
        self._skip_id = 0
        self._links: list[tuple[Any, int, int]] = []
        self._ids = itertools.count(1)

    def _state(self) -> Any:
        skip = (self._skip_tag, self._skip_depth, self._skip_id) if self._skip_tag else None
        return (skip, tuple(link[2] for link in self._links), self.cdata_elem)

    def _attribute(self, value: str | None, *, relevant: bool) -> list[Any] | None:
        if value is None or _OPEN not in value:
            return None
        parts = _fragment(value, self.tags)
        tags = [part for part in parts if isinstance(part, _Tag)]
        self.accounted.update(tag.index for tag in tags)
        _check_balanced(tags)
        if any(tag.word == "set" for tag in tags):
            raise _Refused("{% set %} inside an attribute")
        return parts if relevant else None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        raw = self.get_starttag_text() or ""
        inside = sum(len(_PLACEHOLDER.findall(v)) for v in _QUOTED_VALUE.findall(raw))
        if inside != len(_PLACEHOLDER.findall(raw)):
            raise _Refused(f"a tag sits in the markup of <{tag}>, not in a quoted value")
        attributes = dict(attrs)
        skipping = self._skip_tag is not None
        for name, value in attributes.items():
            relevant = not skipping and (
                (tag == "a" and name == "href") or (tag == "img" and name == "alt")
            )
            if name == "style" and value and _OPEN in value and not skipping:
                raise _Refused("a tag in a style attribute (it could hide the block)")
            self._attribute(value, relevant=relevant)
        if skipping:
            if tag == self._skip_tag:
                self._skip_depth += 1
            return
        hidden = _HIDDEN_STYLE.search(attributes.get("style") or "") is not None
        if (tag in _DROPPED or hidden) and tag not in _VOID:
            self._skip_tag, self._skip_depth, self._skip_id = tag, 1, next(self._ids)
            return
        if tag in _PARAGRAPH:
            self.out.append(PARAGRAPH_BREAK)
        elif tag in _LINE:
            self.out.append(LINE_BREAK)
        if tag == "li":
            self.out.append("- ")
        elif tag == "a":
            href = attributes.get("href") or ""
            dynamic = _fragment(href, self.tags) if _OPEN in href else href.strip()
            self._links.append((dynamic, len(self.out), next(self._ids)))
        elif tag == "img" and self._links:
            alt = attributes.get("alt") or ""
            self.out.append(_Attr(_fragment(alt, self.tags)) if _OPEN in alt else alt)

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
            href, start, number = self._links.pop()
            self._close_link(href, start, number)
        elif tag in _PARAGRAPH:
            self.out.append(PARAGRAPH_BREAK)
        elif tag in _LINE and tag != "br":
            self.out.append(LINE_BREAK)

    def _close_link(self, href: Any, start: int, number: int) -> None:
        children = self.out[start:]
        if isinstance(href, str) and all(isinstance(part, str) for part in children):
            if not href or href.startswith(("#", "javascript:")):
                return
            label = " ".join("".join(p for p in children if p not in _MARKERS).split())
            target = href.removeprefix("mailto:") if href.startswith("mailto:") else href
            if label in (href, target):
                return
            self.out.append(f" ({target})" if label else target)
            return
        fragment = [href] if isinstance(href, str) else href
        del self.out[start:]
        self.out.append(_Link(href=fragment, children=children, number=number))

    def handle_data(self, data: str) -> None:
        for part in _fragment(data, self.tags):
            if isinstance(part, str):
                if self._skip_tag is None:
                    self.out.append(part.replace(LINE_BREAK, "").replace(PARAGRAPH_BREAK, ""))
                continue
            self.accounted.add(part.index)
            if part.kind == "control":
                if part.word == "set" and self._links:
                    # The label is captured in a {% set %} block, whose assignments stay inside.
                    raise _Refused("{% set %} inside a link")
                # Kept even where text is dropped: they decide what comes after.
                self.states[part.index] = self._state()
                self.out.append(part)
            elif self._skip_tag is None and part.kind == "expr":
                self.out.append(part)

    def handle_comment(self, data: str) -> None:
        if _OPEN in data:
            raise _Refused("a tag inside a comment the parser sees")

    def handle_decl(self, decl: str) -> None:
        if _OPEN in decl:
            raise _Refused("a tag inside a declaration")

    def unknown_decl(self, data: str) -> None:
        self.handle_decl(data)

    def handle_pi(self, data: str) -> None:
        self.handle_decl(data)


def _check_balanced(tags: list[_Tag]) -> None:
    depth = 0
    for tag in tags:
        if tag.word in _BLOCK_OPEN:
            depth += 1
        elif tag.word in _BLOCK_CLOSE:
            depth -= 1
            if depth < 0:
                raise _Refused("a control block is not closed inside one attribute")
    if depth:
        raise _Refused("a control block is not closed inside one attribute")


def _check_blocks(tags: list[_Tag], states: Mapping[int, Any]) -> None:
    stack: list[list[_Tag]] = []
    for tag in tags:
        if tag.index not in states:
            continue  # in an attribute value, checked there
        if tag.word in _BLOCK_OPEN:
            stack.append([tag])
        elif tag.word in _BLOCK_MIDDLE | _BLOCK_CLOSE:
            if not stack:
                raise _Refused("unbalanced control tags")
            stack[-1].append(tag)
            if tag.word in _BLOCK_CLOSE:
                block = stack.pop()
                if len({repr(states[t.index]) for t in block}) != 1:
                    raise _Refused(
                        f"the block {block[0].text} spans a change of structure the text "
                        "extraction depends on"
                    )
    if stack:
        raise _Refused("unbalanced control tags")


class _Writer:
    """Writes the text template. Its output is the extractor's stream *HTML-escaped*: static
    text is written escaped and expressions are escaped by autoescape exactly as in the HTML,
    so one ``html.unescape`` of the whole output gives the stream."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def static(self, text: str) -> None:
        if not text:
            return
        escaped = str(escape(text))
        if _RAW_SPECIAL.search(escaped):
            self.parts.append("{{ " + _jinja_literal(escaped) + "|otm_raw }}")
        else:
            self.parts.append(escaped)

    def stream(self, items: list[Any]) -> None:
        for item in items:
            if isinstance(item, str):
                self.static(item)
            elif isinstance(item, _Tag):
                if item.kind != "comment":
                    self.parts.append(item.text)
            elif isinstance(item, _Attr):
                self.fragment(item.fragment)
            else:
                self.link(item)

    def fragment(self, items: list[Any]) -> None:
        for item in items:
            if isinstance(item, str):
                self.static(item)
            elif item.kind == "expr":
                self.parts.append("{{ (" + item.inner + ")|otm_attr }}")
            elif item.kind == "control":
                self.parts.append(item.text)

    def link(self, link: _Link) -> None:
        single = [part for part in link.href if not (isinstance(part, str) and not part.strip())]
        if (
            len(single) == 1
            and isinstance(single[0], _Tag)
            and single[0].kind == "expr"
            and all(isinstance(child, str) for child in link.children)
        ):
            # The common case (href="{{ url }}", a fixed label): the label is known now, so
            # one filter call on the target decides the suffix; no captured blocks.
            self.stream(link.children)
            text = "".join(link.children).replace(LINE_BREAK, "").replace(PARAGRAPH_BREAK, "")
            label = " ".join(text.split())
            self.parts.append(
                "{{ (" + single[0].inner + ")|otm_suffix(" + _jinja_literal(label) + ") }}"
            )
            return
        href, label = f"otm_h{link.number}", f"otm_l{link.number}"
        self.parts.append("{% set " + href + " %}")
        self.fragment(link.href)
        self.parts.append("{% endset %}{% set " + label + " %}")
        self.stream(link.children)
        self.parts.append("{% endset %}{{ " + label + "|otm_label(" + href + ") }}")


def _collapse(items: list[Any]) -> list[Any]:
    """Merge adjacent static text and shrink each run of break markers and whitespace to one
    marker (the strongest): :func:`~onetomany.templating.text.assemble` keeps only the
    strongest break of a run and drops whitespace next to a break, whatever text the tags
    around it render. Not inside link labels, whose text is compared as a whole."""
    merged: list[Any] = []
    for item in items:
        if isinstance(item, str) and merged and isinstance(merged[-1], str):
            merged[-1] += item
        else:
            merged.append(item)
    return [_BREAK_RUN.sub(_strongest, item) if isinstance(item, str) else item for item in merged]


def _strongest(run: re.Match[str]) -> str:
    return PARAGRAPH_BREAK if PARAGRAPH_BREAK in run.group() else LINE_BREAK


def _jinja_literal(text: str) -> str:
    # Jinja decodes string literals with Python's unicode-escape after backslash-escaping
    # non-ASCII, so an ASCII-only literal with \\uXXXX escapes round-trips exactly.
    escaped = text.encode("unicode_escape").decode("ascii").replace('"', '\\"')
    return f'"{escaped}"'


class _Ours(Markup):
    """Markup the text template made itself (not a value of the template's)."""

    __slots__ = ()


def _finalize(value: Any) -> Any:
    # Sees every {{ }} value before autoescape: exactly what the HTML render escapes.
    if type(value) is _Ours:
        return value
    if hasattr(value, "__html__"):
        raise SlowPath("a value is markup, which the HTML parser would read as HTML")
    text = str(value)
    if LINE_BREAK in text or PARAGRAPH_BREAK in text:
        # The parser drops them from text data.
        text = text.replace(LINE_BREAK, "").replace(PARAGRAPH_BREAK, "")
    return text


def _attr_value(value: Any) -> str:
    if hasattr(value, "__html__"):
        raise SlowPath("a value is markup")
    text = str(value)
    if LINE_BREAK in text or PARAGRAPH_BREAK in text:
        raise SlowPath("an attribute value holds a break marker")
    return text


def _raw(value: str) -> _Ours:
    return _Ours(value)


def _suffix(value: Any, label: str) -> _Ours:
    """What html_to_text appends after a link whose target is ``value`` (surrounded by
    whitespace only) and whose label, whitespace-collapsed, is ``label``."""
    target = _attr_value(value).strip()
    if not target or target.startswith(("#", "javascript:")):
        return _Ours()
    shown = target.removeprefix("mailto:") if target.startswith("mailto:") else target
    if label in (target, shown):
        return _Ours()
    return _Ours(escape(f" ({shown})" if label else shown))


def _label(label: Markup, href: Markup) -> _Ours:
    """The label, then what html_to_text appends to a link's text (see ``_close_link``)."""
    target = unescape(str(href)).strip()
    if not target or target.startswith(("#", "javascript:")):
        return _Ours(label)
    text = unescape(str(label)).replace(LINE_BREAK, "").replace(PARAGRAPH_BREAK, "")
    text = " ".join(text.split())
    shown = target.removeprefix("mailto:") if target.startswith("mailto:") else target
    if text in (target, shown):
        return _Ours(label)
    return _Ours(str(label) + str(escape(f" ({shown})" if text else shown)))


FILTERS: Mapping[str, Callable[..., Any]] = {
    "otm_attr": _attr_value,
    "otm_raw": _raw,
    "otm_label": _label,
    "otm_suffix": _suffix,
}


@attrs.frozen(kw_only=True, eq=False)
class FastText:
    """The text template of one compiled HTML template."""

    template: BoundTemplate
    source: str

    def render(self, context: Mapping[str, Any]) -> str:
        """The text ``html_to_text`` would derive from this recipient's HTML; raises
        :class:`SlowPath` when this recipient's values need the real derivation."""
        return assemble(unescape(self.template.render(context)))


def compile_fast_text(
    environment: jinja2.Environment, html: str, *, origin: str
) -> tuple[FastText | None, str | None]:
    """The text template of ``html`` (a compiled-HTML Jinja template), or ``None`` and the
    reason it cannot have one. ``environment`` must be the one ``html`` is rendered in."""
    try:
        return _compile(environment, html, origin=origin), None
    except _Refused as exc:
        return None, str(exc)


def _compile(environment: jinja2.Environment, html: str, *, origin: str) -> FastText:
    decoded = unescape(html)  # entities too: &#xe000; must not pass for a placeholder
    if any(char in html or char in decoded for char in _RESERVED):
        raise _Refused("the HTML holds reserved control characters")
    if not all(name in environment.filters for name in _FILTERS):
        raise _Refused("the environment lacks the fast-text filters")
    tags: list[_Tag] = []
    pieces: list[str] = []
    last = 0
    for found in JINJA_TAG.finditer(html):
        before = html[last : found.start()]
        after = html[found.end() : found.end() + 2]
        if _RISKY_BEFORE.search(before) or _RISKY_AFTER.match(after):
            raise _Refused(f"{found.group()} sits where its value could form markup")
        tags.append(_classify(len(tags), found.group()))
        pieces += [before, f"{_OPEN}{len(tags) - 1}{_CLOSE}"]
        last = found.end()
    pieces.append(html[last:])
    marked = "".join(pieces)
    if "{{" in _PLACEHOLDER.sub("", marked) or "{%" in _PLACEHOLDER.sub("", marked):
        raise _Refused("a Jinja tag the scanner cannot delimit")
    readable = prepare(marked)
    recorder = _Recorder(tags)
    recorder.feed(readable)
    recorder.close()
    present = {int(index) for index in _PLACEHOLDER.findall(readable)}
    if present - recorder.accounted:
        raise _Refused("a tag sits where the text extraction cannot follow it")
    for tag in tags:
        if tag.kind == "control" and tag.index not in present:
            raise _Refused(f"{tag.text} sits in a comment or in the <head>")
    _check_blocks(tags, recorder.states)
    writer = _Writer()
    writer.stream(_collapse(recorder.out))
    source = "".join(writer.parts)
    try:
        template = compile_template(
            environment.overlay(finalize=_finalize),
            source,
            origin=origin,
            filename=f"{origin}#fast-text",
        )
    except TemplateError as exc:
        raise _Refused(f"the text template does not compile: {exc}") from exc
    return FastText(template=template, source=source)
