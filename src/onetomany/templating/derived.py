"""The plain text of an email, as a Jinja template derived once per template version.

:func:`~onetomany.templating.text.html_to_text` parses the whole rendered HTML, which costs
hundreds of microseconds per email. But the HTML is a fixed Jinja template (MJML compiled once):
only the values change between recipients. So, once per template version, the compiled HTML is
walked the way ``html_to_text`` walks it, with each Jinja tag replaced by a placeholder, and the
text that walk gives (before the final whitespace assembly) becomes a Jinja template: static text
as it is, each expression ``{{ x }}`` as ``{{ (x)|otm_text }}``, each control tag (``if``,
``for``, ``set x = ...``) where it was. It renders in the HTML's environment (same filters,
sandbox and limits, autoescape on), with the same context; :func:`~onetomany.templating.text.
assemble` then gives exactly ``html_to_text`` of the rendered HTML:

* An expression's output is HTML-escaped and the parser decodes it again, so in the text it is
  the value's ``str()`` without the parser's break markers (``otm_text``). A value that is markup
  (``|safe``, ``urlize``...) would be parsed as HTML: that render takes ``html_to_text``.
* A link whose target or label holds a tag gets what follows its label (`` (url)``) per render,
  by the same rule: the template writes its target and label between three marker characters
  (``\x03`` target ``\x04`` label ``\x05``), resolved innermost first after the render. An
  image's ``alt`` in a link is text. A value holding a marker character takes ``html_to_text``.
* The derivation is refused, and every render takes ``html_to_text``, when a value could change
  how the HTML parses or what the walk does: static text before a tag that could join a value
  into an entity, a tag or a comment (``&amp``, ``<b``, ``<!-``) or after it (``>``); a tag in
  a tag name, an attribute name, an unquoted value or a ``style``; a control tag in an attribute,
  a comment or the ``<head>``, or whose block does not leave the walk in the same state at each
  of its tags (a link or hidden block opened in one branch); any other tag (``macro``, ``raw``,
  block ``set``, whitespace control).

Expressions are evaluated once for the HTML and once for the text: a filter that gives a
different value each call (``random``) can give the text another value than the HTML.
"""

from __future__ import annotations

import html as htmllib
import itertools
import re
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import jinja2
from markupsafe import Markup

from onetomany.errors import TemplateError
from onetomany.templating.environment import BoundTemplate, compile_template
from onetomany.templating.placement import JINJA_TAG
from onetomany.templating.text import (
    TextExtractor,
    assemble,
    html_to_text,
    link_label,
    link_suffix,
    prepare,
    squeeze,
    strip_markers,
)

__all__ = ["FILTERS", "DerivedText", "derive_text"]

# A tag's placeholder, in text (``\ue000n\ue001``) or in an attribute value (``\ue002n\ue003``).
_TEXT_HOLE = "\ue000{}\ue001"
_ATTR = str.maketrans("\ue000\ue001", "\ue002\ue003")
_HOLE = re.compile("([\ue000\ue002])(\\d+)[\ue001\ue003]")
_RESERVED = re.compile("[\x03-\x05\ue000-\ue003]")
# A link written per render: target, label (see the module docstring).
_LINK = re.compile("\x03([^\x03-\x05]*)\x04([^\x03-\x05]*)\x05")
_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'")
# Static text next to a tag that a value could complete into markup.
_BEFORE = re.compile(r"(&#?\w*|<[!/?]?[-\w]*)\Z")
_AFTER = re.compile(r"\A-*>")
_CONTROL = re.compile(r"\{%\s*(\w+)")
_OPEN, _MIDDLE, _CLOSE = (
    frozenset({"if", "for"}),
    frozenset({"elif", "else"}),
    frozenset({"endif", "endfor"}),
)


class _FromHtml(Exception):
    """A value the derived template cannot follow: this render's text comes from its HTML."""


# The derived template renders plain text in the HTML environment: its filters return Markup
# only so that autoescaping leaves the text as it is. Nothing of it is ever used as HTML.


def _text(value: Any) -> Markup:
    """A value in text: what the parser reads back from its escaped HTML."""
    return Markup(strip_markers(_plain(value)))  # noqa: S704 (plain text, see above)


def _attribute(value: Any) -> Markup:
    """A value in a link target or an image's text, which keep break markers."""
    return Markup(_plain(value))  # noqa: S704 (plain text, see above)


def _plain(value: Any) -> str:
    """``str(value)``, unless the value is markup (it would be parsed as HTML) or holds a link
    marker (it would be read as one)."""
    if hasattr(value, "__html__"):
        raise _FromHtml
    text = str(value)
    if "\x03" in text or "\x04" in text or "\x05" in text:
        raise _FromHtml
    return text


def _link(found: re.Match[str]) -> str:
    """A link's label and what follows it."""
    label = found.group(2)
    return f"{label}{link_suffix(found.group(1).strip(), link_label(label))}"


#: The filters the derived templates use; every template environment has them.
FILTERS: dict[str, Callable[..., Markup]] = {"otm_text": _text, "otm_attr": _attribute}


class _Refused(Exception):
    pass


class _Jinja(str):
    """Template source written by the derivation, as opposed to text from the HTML."""


class _Walk(TextExtractor):
    """``html_to_text``'s walk over HTML whose Jinja tags are placeholders."""

    def __init__(self, tags: list[str]) -> None:
        super().__init__()
        self.tags = tags
        self.controls_seen: list[int] = []
        self.blocks: list[tuple[Any, ...]] = []

    def _state(self) -> tuple[Any, ...]:
        return (self._skip_tag, self._skip_depth, self.region, tuple(self._links), self.cdata_elem)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        raw = self.get_starttag_text() or ""
        if _HOLE.search(raw):
            if _HOLE.search(_QUOTED.sub("", raw)):
                raise _Refused("a Jinja tag outside a quoted attribute value")
            for name, value in attrs:
                for found in _HOLE.finditer(value or ""):
                    if self._is_control(int(found.group(2))):
                        raise _Refused("a control tag in an attribute")
                    if name == "style":
                        raise _Refused("a Jinja tag in a style attribute")
            attrs = [(name, value and value.translate(_ATTR)) for name, value in attrs]
        super().handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._links and not self.hidden:
            href, start = self._links[-1]
            label = self.out[start:]
            if _HOLE.search(href) or any(
                isinstance(item, _Jinja) or _HOLE.search(item) for item in label
            ):
                self._links.pop()
                self.out[start:start] = [_Jinja("\x03"), href, _Jinja("\x04")]
                self.out.append(_Jinja("\x05"))
                return
        super().handle_endtag(tag)

    def handle_data(self, data: str) -> None:
        for found in _HOLE.finditer(data):
            index = int(found.group(2))
            if self._is_control(index):
                self._control(index)
        if not self.hidden:
            self.out.append(strip_markers(data))
        else:
            self.out.extend(
                _Jinja(self.tags[int(found.group(2))])
                for found in _HOLE.finditer(data)
                if self._is_control(int(found.group(2)))
            )

    def _is_control(self, index: int) -> bool:
        return self.tags[index].startswith("{%")

    def _control(self, index: int) -> None:
        tag = self.tags[index]
        kind = _CONTROL.match(tag)
        word = kind.group(1) if kind else ""
        state = self._state()
        if word in _OPEN:
            self.blocks.append(state)
        elif word in _MIDDLE | _CLOSE:
            if not self.blocks or self.blocks[-1] != state:
                raise _Refused(f"{tag} spans a change of link or hidden block")
            if word in _CLOSE:
                self.blocks.pop()
        self.controls_seen.append(index)


def _check_tags(compiled_html: str) -> tuple[str, list[str]]:
    """``compiled_html`` with its tags as placeholders (comments removed), and the tags."""
    if _RESERVED.search(compiled_html) or _RESERVED.search(htmllib.unescape(compiled_html)):
        raise _Refused("the HTML holds the characters reserved for placeholders")
    tags: list[str] = []
    parts: list[str] = []
    at = 0
    for found in JINJA_TAG.finditer(compiled_html):
        parts.append(compiled_html[at : found.start()])
        at = found.end()
        tag = found.group()
        if tag.startswith("{#"):
            continue
        if tag[2:3] in "-+" or tag[-3:-2] in "-+":
            raise _Refused(f"whitespace control in {tag}")
        if tag.startswith("{%"):
            kind = _CONTROL.match(tag)
            word = kind.group(1) if kind else ""
            if word not in _OPEN | _MIDDLE | _CLOSE | {"set"} or (word == "set" and "=" not in tag):
                raise _Refused(f"{tag} is not an if, for or set x = ... tag")
        parts.append(_TEXT_HOLE.format(len(tags)))
        tags.append(tag)
    parts.append(compiled_html[at:])
    # The static text on either side of each tag, comments (which render as nothing) removed.
    static = re.split("\ue000\\d+\ue001", "".join(parts))
    for index, tag in enumerate(tags):
        if _BEFORE.search(static[index]) or _AFTER.search(static[index + 1]):
            raise _Refused(f"static text next to {tag} could form markup with its value")
        if re.search(r"\{[{%#]|[}%#]\}", static[index]):
            raise _Refused("a Jinja delimiter outside a tag")
    return "".join(parts), tags


def _source(out: list[str], tags: list[str]) -> str:
    """The derived template's source from the walk's output. Static text outside links written
    per render has its runs of whitespace and breaks squeezed (:func:`~onetomany.templating.
    text.squeeze`): less for :func:`~onetomany.templating.text.assemble` to do per render."""
    pieces: list[str] = []
    depth = 0  # inside how many links written per render
    runs: list[str] = []
    for jinja, group in itertools.groupby(out, lambda item: isinstance(item, _Jinja)):
        items = list(group)
        runs.extend(items) if jinja else runs.append("".join(items))
    for item in runs:
        if isinstance(item, _Jinja):
            pieces.append(item)
            depth += (item == "\x03") - (item == "\x05")
            continue
        if depth == 0:
            item = squeeze(item)
        at = 0
        for found in _HOLE.finditer(item):
            pieces.append(item[at : found.start()].replace("{", '{{ "{" }}'))
            at = found.end()
            tag = tags[int(found.group(2))]
            if tag.startswith("{%"):
                pieces.append(tag)
            else:
                which = "otm_text" if found.group(1) == "\ue000" else "otm_attr"
                pieces.append(f"{{{{ ({tag[2:-2]})|{which} }}}}")
        pieces.append(item[at:].replace("{", '{{ "{" }}'))
    return "".join(pieces)


@attrs.frozen(kw_only=True, eq=False)
class DerivedText:
    """The plain text of a template's emails as a Jinja template (see the module docstring)."""

    template: BoundTemplate

    def render(self, context: Mapping[str, Any], html: str) -> str:
        """``html_to_text(html)``, where ``html`` is the template's rendering for ``context``."""
        try:
            stream = self.template.render(context)
        except TemplateError as exc:
            if isinstance(exc.__cause__, _FromHtml):
                return html_to_text(html)
            raise
        found = int("\x05" in stream)
        while found:  # innermost links first: an outer label holds what follows an inner one
            stream, found = _LINK.subn(_link, stream)
        return assemble(stream)


def derive_text(
    environment: jinja2.Environment, compiled_html: str, *, origin: str
) -> tuple[DerivedText | None, str | None]:
    """The derived text template of ``compiled_html`` (the Jinja template MJML gave), or
    ``None`` and the reason it cannot be derived (then the text is parsed from each HTML)."""
    try:
        marked, tags = _check_tags(compiled_html)
        walk = _Walk(tags)
        walk.feed(prepare(marked))
        walk.close()
        controls = [i for i, tag in enumerate(tags) if tag.startswith("{%")]
        if walk.controls_seen != controls:
            raise _Refused("a control tag in a comment or the <head>")
        source = _source(walk.out, tags)
    except _Refused as exc:
        return None, str(exc)
    try:
        template = compile_template(environment, source, origin=origin, filename=f"{origin}#text")
    except TemplateError as exc:
        return None, f"the derived text template does not compile: {exc}"
    return DerivedText(template=template), None
