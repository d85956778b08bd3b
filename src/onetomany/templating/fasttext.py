"""One Jinja pass per recipient for the whole email: HTML, plain text, subject and preheader.

:func:`~onetomany.templating.text.html_to_text` parses the whole rendered email per recipient.
But the HTML is a fixed Jinja template (MJML compiled once): its tags, structure and most of its
text are the same for everyone. So, once per template version, the compiled HTML is walked the
way ``html_to_text`` walks it (:class:`~onetomany.templating.text.BlockWalker`), with each Jinja
tag replaced by a placeholder. That gives a *text plan*: for each tag, the text the static HTML
before it contributes (words, break markers, links opening and closing), and what the tag's value
is to the text (visible words, part of a link target, an image's text in a link, or nothing).

The *one-pass template* is the compiled HTML with a marker ``{{ n|otm_m }}`` after each control
tag: it outputs nothing and records that stretch ``n`` (the run of HTML up to the next control
tag) starts there. Its render yields chunks, the static HTML as ``str`` and each expression's
escaped value as ``Markup``; joined they are the HTML, byte for byte the compiled template's,
and each stretch always yields the same number of them, the way Jinja compiles it (static text
between two tags is one chunk, constant expressions such as ``{{ "x" }}`` are folded into it
and are folded here too). A Python function generated from the plan
(:mod:`~onetomany.templating.textcode`) assembles the text from the chunks and the stretches
that ran. Front matter values made only of expressions are rendered in the same pass
(``{% set %}`` blocks at the top, autoescape off, as the text environment renders them).

Why that is the same text, and what is refused (the template then keeps the slow path):

* An expression's output is HTML-escaped and the parser decodes it again, so in the stream it is
  the value's ``str()``, minus the break markers (as the parser strips them from text). A value
  that is already markup (``|safe``, ``|e``...) would be parsed as HTML, so that one render
  derives its text from its HTML.
* Escaped values cannot open tags, comments or entities. Static text right before a tag that
  could combine with a value into one (``&amp``, ``<b``, ``<!-``) or after one (``>``) is refused.
* Expressions must sit in text or in quoted attribute values. Only three attributes change the
  text: ``style`` (a hidden block; refused when it holds a tag), ``href`` of a link and ``alt`` of
  an image inside one. What ``html_to_text`` appends after a link whose target or label holds a
  tag (`` (url)``, nothing when label and target are equal, ...) is decided per render by the
  same rule (:func:`~onetomany.templating.text.link_suffix`).
* Control tags (``if``/``elif``/``else``/``endif``, ``for``/``else``/``endfor``, ``set x = ...``)
  run once, in the HTML. Each block must leave the walk in the same state at each of its tags
  (same hidden region, same open links), so whichever branch runs, or however often a loop runs,
  the text planned around it is unchanged; the planned text of a stretch of HTML is written from
  a tag in the same block as that stretch. Anything else (``macro``, block ``set``, ``raw``,
  ``include``, whitespace control ``-``) is refused, as is a control tag in a comment or in the
  ``<head>``.
* Nothing is evaluated twice, so impure filters (``random``, a plugin's counter) give the HTML
  and the text the same value.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from html import unescape
from typing import Any, Final, NamedTuple, cast

import attrs
import jinja2
from jinja2 import nodes
from jinja2.nodes import EvalContext
from jinja2.runtime import Context
from markupsafe import escape

from onetomany.errors import TemplateError
from onetomany.templating.environment import Sandbox, compile_template
from onetomany.templating.placement import JINJA_TAG
from onetomany.templating.text import (
    LINE_BREAK,
    PARAGRAPH_BREAK,
    BlockWalker,
    link_label,
    link_suffix,
    prepare,
    squeeze,
    strip_markers,
)
from onetomany.templating.textcode import (
    ALT,
    HREF,
    TEXT,
    HrefStart,
    HrefText,
    LinkClose,
    LinkOpen,
    Mismatch,
    Stretch,
    TextFunction,
    Value,
    text_function,
)

__all__ = ["FILTERS", "FastText", "OnePass", "SlowPath", "compile_fast_text"]

_OPEN, _CLOSE = "\ue000", "\ue001"
_PLACEHOLDER = re.compile(f"{_OPEN}(\\d+){_CLOSE}")
_RESERVED = (LINE_BREAK, PARAGRAPH_BREAK, _OPEN, _CLOSE)
# Static text right before a tag that a value could complete into an entity or a tag/comment
# opener, and right after one that could complete a comment closer.
_RISKY_BEFORE = re.compile(r"(?:&[#0-9A-Za-z]*|<[!/?A-Za-z-]*)\Z")
_RISKY_AFTER = re.compile(r"\A-?>")
_QUOTED_VALUE = re.compile(r"""=\s*("[^"]*"|'[^']*')""")
_BLOCK_OPEN = frozenset({"if", "for"})
_BLOCK_MIDDLE = frozenset({"elif", "else"})
_BLOCK_CLOSE = frozenset({"endif", "endfor"})
_TRAILING_NEWLINE = re.compile(r"(?:\r\n|\r|\n)\Z")
_SET_NAMES = re.compile(r"\{%\s*set\s+([\w\s,]+?)\s*=")
_WORD = re.compile(r"\w+")
# Where the markers record the stretches that ran, in the render context (tags using "otm_"
# are refused).
_SINK: Final = "otm_sink"
_FIELD_PREFIX: Final = "otm_f_"
_log = logging.getLogger(__name__)


class SlowPath(TemplateError):
    """Raised by :meth:`FastText.render` when this recipient's values need the slow path."""

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
class _Mark:
    """A tag's place in the plan, and what its value is to the text (``None``: nothing)."""

    index: int
    role: str | None


_Op = str | HrefStart | HrefText | LinkOpen | LinkClose


def _classify(index: int, text: str) -> _Tag:
    if text[:3] in ("{{-", "{%-", "{#-", "{%+") or text[-3:] in ("-}}", "-%}", "-#}"):
        raise _Refused("whitespace control")
    if "otm_" in text:
        raise _Refused("a tag uses a reserved otm_ name")
    if text.startswith("{{"):
        return _Tag(index, text, "expr", "")
    if text.startswith("{#"):
        return _Tag(index, text, "comment", "")
    words = text[2:-2].split()
    word = words[0] if words else ""
    if word == "set" and "=" in text:
        return _Tag(index, text, "control", "set")
    if word in _BLOCK_OPEN | _BLOCK_MIDDLE | _BLOCK_CLOSE:
        return _Tag(index, text, "control", word)
    raise _Refused(f"{{% {word} %}}")


def _fragment(value: str, tags: list[_Tag]) -> list[str | _Tag]:
    parts: list[str | _Tag] = []
    last = 0
    for found in _PLACEHOLDER.finditer(value):
        if found.start() > last:
            parts.append(value[last : found.start()])
        parts.append(tags[int(found.group(1))])
        last = found.end()
    if last < len(value):
        parts.append(value[last:])
    return parts


class _Recorder(BlockWalker):
    """The walk of :func:`~onetomany.templating.text.html_to_text` over HTML holding
    placeholders, writing the text plan: static text and link operations, and a :class:`_Mark`
    for each tag, in document order."""

    def __init__(self, tags: list[_Tag]) -> None:
        super().__init__()
        self.tags = tags
        self.plan: list[_Op | _Mark] = []
        self.states: dict[int, Any] = {}  # control tag index -> walk state there
        self.accounted: set[int] = set()
        # One entry per open link: where it opened in the plan, its static target, its number.
        self._links: list[tuple[int, str | None, int]] = []
        self._numbers = 0

    def emit_break(self, marker: str) -> None:
        self.plan.append(marker)

    def _state(self) -> Any:
        return (self.region, tuple(link[2] for link in self._links), self.cdata_elem)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        raw = self.get_starttag_text() or ""
        inside = sum(len(_PLACEHOLDER.findall(v)) for v in _QUOTED_VALUE.findall(raw))
        if inside != len(_PLACEHOLDER.findall(raw)):
            raise _Refused(f"a tag sits in the markup of <{tag}>, not in a quoted value")
        attributes = dict(attrs)
        if len(attributes) != len(attrs) and _OPEN in raw:
            raise _Refused(f"<{tag}> repeats an attribute and holds a tag")
        if not self.hidden and _OPEN in (attributes.get("style") or ""):
            raise _Refused("a tag in a style attribute (it could hide the block)")
        visible = self.enter(tag, attributes.get("style"))
        if visible and tag == "li":
            self.plan.append("- ")
        link = visible and tag == "a"
        image_text = visible and tag == "img" and bool(self._links)
        href: str | None = None
        for name, value in attrs:
            parts = _fragment(value, self.tags) if value and _OPEN in value else None
            if parts is not None:
                self._check_attribute(parts)
            if link and name == "href":
                if parts is None:
                    href = (value or "").strip()
                else:
                    self.plan.append(HrefStart())
                    self._write_attribute(parts, HREF, HrefText)
            elif image_text and name == "alt":
                if parts is None:
                    self.plan.append(value or "")
                else:
                    self._write_attribute(parts, ALT, str)
            elif parts is not None:
                for part in parts:
                    if isinstance(part, _Tag) and part.kind == "control":
                        self.plan.append(_Mark(part.index, None))
        if link:
            dynamic = "href" in attributes and _OPEN in (attributes["href"] or "")
            self._numbers += 1
            self._links.append((len(self.plan), None if dynamic else (href or ""), self._numbers))
            self.plan.append(LinkOpen(None if dynamic else (href or "")))

    def _check_attribute(self, parts: list[str | _Tag]) -> None:
        tags = [part for part in parts if isinstance(part, _Tag)]
        self.accounted.update(tag.index for tag in tags)
        _check_balanced(tags)
        if any(tag.word == "set" for tag in tags):
            raise _Refused("{% set %} inside an attribute")

    def _write_attribute(
        self, parts: list[str | _Tag], role: str, static: Callable[[str], _Op]
    ) -> None:
        for part in parts:
            if isinstance(part, str):
                self.plan.append(static(part))
            elif part.kind == "expr":
                self.plan.append(_Mark(part.index, role))
            elif part.kind == "control":
                self.plan.append(_Mark(part.index, None))

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._links and not self.hidden:
            start, href, _ = self._links.pop()
            label = self.plan[start + 1 :]
            if href is not None and all(isinstance(part, str) for part in label):
                # A fixed link: what it appends is known now.
                del self.plan[start]
                self.plan.append(link_suffix(href, link_label("".join(map(str, label)))))
            else:
                self.plan.append(LinkClose())
            return
        self.leave(tag)

    def handle_data(self, data: str) -> None:
        for part in _fragment(data, self.tags):
            if isinstance(part, str):
                if not self.hidden:
                    self.plan.append(strip_markers(part))
                continue
            self.accounted.add(part.index)
            if part.kind == "control":
                if part.word == "set" and self._links:
                    raise _Refused("{% set %} inside a link")
                # Kept even where text is dropped: they decide what comes after.
                self.states[part.index] = self._state()
                self.plan.append(_Mark(part.index, None))
            elif part.kind == "expr" and not self.hidden:
                self.plan.append(_Mark(part.index, TEXT))

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


# --- per recipient --------------------------------------------------------------------------


@jinja2.pass_context
def _marker(context: Context, number: int) -> str:
    context.parent[_SINK].append(number)
    return ""


FILTERS: Mapping[str, Callable[..., Any]] = {"otm_m": _marker}


class OnePass(NamedTuple):
    """What one render of the one-pass template gives: the HTML, the text (``None`` when this
    recipient's values need it derived from the HTML) and the raw front matter values it
    rendered (before stripping and checks)."""

    html: str
    text: str | None
    fields: Mapping[str, str]


@attrs.frozen(kw_only=True, eq=False)
class FastText:
    """The one-pass template of one compiled HTML template, and its text plan.

    ``source`` is the one-pass template's Jinja source; ``fields`` the front matter keys it
    renders too; ``text`` the generated function that assembles the text from the chunks
    the template yields (see :mod:`onetomany.templating.textcode`).
    """

    template: jinja2.Template
    origin: str
    source: str
    fields: tuple[str, ...]
    text: TextFunction

    def render_all(self, context: Mapping[str, Any], *, strict: bool = False) -> OnePass:
        """Render HTML, text and :attr:`fields` in one pass. Any failure propagates as Jinja
        raised it: the caller renders again the ordinary way to report it properly.

        A render whose chunks differ from the plan (not expected: the plan is built from the
        source Jinja compiled) gets its text derived from the HTML, with a warning; ``strict``
        raises :class:`TemplateError` instead (for tests)."""
        seq: list[int] = []
        # new_context copies the mapping (with the globals) into a fresh dict.
        jinja_context = self.template.new_context(cast(dict[str, Any], context))
        jinja_context.parent[_SINK] = seq
        # The sandbox refuses an output over the size cap before it is all held.
        environment = cast(Sandbox, self.template.environment)
        chunks = environment.output(self.template, jinja_context)
        html = "".join(chunks)
        fields = {key: str(jinja_context.vars[_FIELD_PREFIX + key]) for key in self.fields}
        try:
            text = self.text(chunks, seq)
        except (Mismatch, IndexError) as exc:
            if strict:
                raise TemplateError(
                    "the one-pass render differs from its text plan", template=self.origin
                ) from exc
            _log.warning("%s: the one-pass render differs from its text plan", self.origin)
            text = None
        return OnePass(html, text, fields)

    def render(self, context: Mapping[str, Any]) -> str:
        """The text ``html_to_text`` would derive from this recipient's HTML; raises
        :class:`SlowPath` when this recipient's values need the real derivation."""
        try:
            text = self.render_all(context, strict=True).text
        except TemplateError:
            raise
        except Exception as exc:
            raise TemplateError(f"{type(exc).__name__}: {exc}", template="(fast text)") from exc
        if text is None:
            raise SlowPath("a value is markup, or a link target holds a break marker")
        return text


def compile_fast_text(
    environment: jinja2.Environment,
    html: str,
    *,
    origin: str,
    fields: Mapping[str, str] | None = None,
) -> tuple[FastText | None, str | None]:
    """The one-pass template of ``html`` (a compiled-HTML Jinja template), or ``None`` and the
    reason it cannot have one. ``environment`` must be the one ``html`` is rendered in; it must
    hold :data:`FILTERS`. ``fields`` (front matter key -> Jinja source) are rendered in the same
    pass when they are made of expressions only."""
    try:
        return _compile(environment, html, origin=origin, fields=fields or {}), None
    except _Refused as exc:
        return None, str(exc)


def _compile(
    environment: jinja2.Environment, html: str, *, origin: str, fields: Mapping[str, str]
) -> FastText:
    html = _fold_constants(environment, html, origin)
    decoded = unescape(html)  # entities too: &#xe000; must not pass for a placeholder
    if any(char in html or char in decoded for char in _RESERVED):
        raise _Refused("the HTML holds reserved control characters")
    if not all(name in environment.filters for name in FILTERS):
        raise _Refused("the environment lacks the one-pass filters")
    tags: list[_Tag] = []
    found_tags = list(JINJA_TAG.finditer(html))
    pieces: list[str] = []
    last = 0
    for found in found_tags:
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
    planned, roles, end = _segments(recorder.plan, len(tags))
    stretches = _stretches(html, found_tags, tags, planned, roles, end)
    source = _one_pass_source(html, found_tags, tags)
    fused = _fusable(fields, html)
    prefix = "".join(
        f"{{% set {_FIELD_PREFIX}{key} %}}{{% autoescape false %}}{fields[key]}"
        "{% endautoescape %}{% endset %}"
        for key in fused
    )
    try:
        bound = compile_template(
            environment, prefix + source, origin=origin, filename=f"{origin}#one-pass"
        )
    except TemplateError as exc:
        raise _Refused(f"the one-pass template does not compile: {exc}") from exc
    return FastText(
        template=bound.template,
        origin=origin,
        source=prefix + source,
        fields=fused,
        text=text_function(stretches, _clean, origin=origin),
    )


def _fold_constants(environment: jinja2.Environment, html: str, origin: str) -> str:
    """``html`` with each constant expression (``{{ "x" }}``, ``{{ 1 + 2 }}``) replaced by its
    output. Jinja folds those into the static text around them when it compiles, so they are
    static text to the walk too."""
    eval_context = EvalContext(environment, origin)

    def fold(found: re.Match[str]) -> str:
        tag = found.group()
        if not tag.startswith("{{") or tag.startswith("{{-") or tag.endswith("-}}"):
            return tag
        try:
            parsed = environment.parse(tag)
            output = parsed.body[0]
            assert isinstance(output, nodes.Output) and len(output.nodes) == 1
            value = output.nodes[0].as_const(eval_context)
        except Exception:  # not constant: Jinja evaluates it per render as well
            return tag
        text = str(escape(value)) if eval_context.autoescape else str(value)
        if any(opener in text for opener in ("{{", "{%", "{#", "\r")):
            raise _Refused(f"the constant {tag} holds Jinja syntax or a carriage return")
        return text

    return JINJA_TAG.sub(fold, html)


def _clean(ops: Any) -> bool:
    """Whether the static text of ``ops`` has nothing for assemble() to squeeze (text in a
    dynamic link's label is kept as it is, so it may)."""
    texts = [ops] if isinstance(ops, str) else [op for op in ops if isinstance(op, str)]
    return all(squeeze(text) == text for text in texts)


def _segments(plan: list[_Op | _Mark], count: int) -> tuple[list[Any], list[str | None], Any]:
    """Split the plan at its marks: the operations before each tag (a string when they are
    only text), each tag's role, and the operations after the last tag."""
    before: list[Any] = [""] * count
    roles: list[str | None] = [None] * count
    pending: list[_Op] = []
    depth = 0  # open dynamic links: their label text is compared as it is, not squeezed
    for item in plan:
        if isinstance(item, _Mark):
            before[item.index] = _pack(pending)
            roles[item.index] = item.role
            pending = []
            continue
        if isinstance(item, str) and depth == 0:
            item = squeeze(item)
        elif isinstance(item, LinkOpen):
            depth += 1
        elif isinstance(item, LinkClose):
            depth -= 1
        if isinstance(item, str) and pending and isinstance(pending[-1], str):
            pending[-1] += item
            if depth == 0:
                pending[-1] = squeeze(pending[-1])
        elif item != "":
            pending.append(item)
    return before, roles, _pack(pending)


def _pack(ops: list[_Op]) -> Any:
    if not ops:
        return ""
    if len(ops) == 1 and isinstance(ops[0], str):
        return ops[0]
    return tuple(ops)


def _stretches(
    html: str,
    found_tags: list[re.Match[str]],
    tags: list[_Tag],
    before: list[Any],
    roles: list[str | None],
    end: Any,
) -> tuple[Stretch, ...]:
    """What each run between control tags yields when rendered, the way Jinja compiles it:
    the static text between two tags is one chunk when it is not empty (a comment between two
    pieces leaves one), each expression one chunk, a control tag ends the run."""
    done: list[Stretch] = []
    values: list[Value] = []
    size = 0
    static = False
    last = 0
    for found, tag in zip(found_tags, tags, strict=True):
        static = static or found.start() > last
        last = found.end()
        if tag.kind == "comment":
            continue
        size += static
        static = False
        ops = before[tag.index]
        if tag.kind == "expr":
            values.append(Value(size, ops, roles[tag.index]))
            size += 1
            continue
        done.append(Stretch(size, tuple(values), ops))
        values, size = [], 0
    # Jinja drops one trailing newline of a template.
    tail = html[last:]
    newline = _TRAILING_NEWLINE.search(tail)
    size += static or bool(tail[: newline.start()] if newline else tail)
    done.append(Stretch(size, tuple(values), end))
    return tuple(done)


def _one_pass_source(html: str, found_tags: list[re.Match[str]], tags: list[_Tag]) -> str:
    """``html`` with a marker after each control tag, which records the run that starts
    there."""
    out: list[str] = []
    last = 0
    number = 0
    for found, tag in zip(found_tags, tags, strict=True):
        out.append(html[last : found.end()])
        if tag.kind == "control":
            number += 1
            out.append(f"{{{{ {number}|otm_m }}}}")
        last = found.end()
    out.append(html[last:])
    return "".join(out)


def _fusable(fields: Mapping[str, str], html: str) -> tuple[str, ...]:
    """The front matter keys rendered in the one pass: values made of expressions only, that
    use no name the HTML assigns with ``{% set %}`` (the pass renders them first)."""
    assigned = {name for names in _SET_NAMES.findall(html) for name in _WORD.findall(names)}
    return tuple(
        key
        for key, value in fields.items()
        if "{%" not in value
        and "{#" not in value
        and "otm_" not in value
        and not assigned & set(_WORD.findall(value))
    )
