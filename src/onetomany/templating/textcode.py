"""The per-recipient half of the one-pass text: a Python function generated from the text plan.

:mod:`onetomany.templating.fasttext` plans, once per template version, what text each stretch
of the compiled HTML contributes. Interpreting that plan per recipient (a loop over operations,
a method call per piece) cost about as much as the HTML render itself, so the plan is turned
into straight-line Python instead, the way Jinja turns a template into Python: static text
becomes literals, what can be known about the joins between pieces is decided while
generating, and only the values are looked at per recipient.

The generated function takes the chunks the one-pass template yielded (the static text as
``str``, each expression's escaped value as ``Markup``) and the numbers of the stretches that
ran after the first one, and returns the text, or ``None`` when a value needs the text derived
from the HTML (markup values, break markers in link targets). Chunks that do not line up with
the plan raise :class:`Mismatch` (``IndexError`` when they run out first).

A value is *strict* when it is printable (so no break marker and no whitespace but spaces),
non-empty, holds no double space and does not start or end with a space: no join with it can
make a run for :func:`~onetomany.templating.text.assemble` to squeeze. Anything else marks the
stream dirty, and the final text goes through ``assemble``, which is always right.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, Final, NamedTuple

import attrs
from markupsafe import Markup

from onetomany.templating.text import (
    LINE_BREAK,
    PARAGRAPH_BREAK,
    assemble,
    link_label,
    link_suffix,
    squeeze,
    strip_markers,
)

__all__ = [
    "ALT",
    "EDGES",
    "HREF",
    "TEXT",
    "HrefStart",
    "HrefText",
    "LinkClose",
    "LinkOpen",
    "Mismatch",
    "Stretch",
    "TextFunction",
    "Value",
    "text_function",
]

# What assemble() squeezes and strips: whitespace (only spaces in a clean stream) and markers.
EDGES: Final = LINE_BREAK + PARAGRAPH_BREAK + " "
# The elements of a run, weakest first: a run becomes its strongest.
_STRENGTH: Final = (" ", LINE_BREAK, PARAGRAPH_BREAK)
# What a value is to the text.
TEXT, HREF, ALT = "text", "href", "alt"

TextFunction = Callable[[Sequence[Any], Sequence[int]], "str | None"]


@attrs.frozen
class HrefStart:
    """A dynamic link target starts: what follows until the link opens is its text."""


@attrs.frozen
class HrefText:
    text: str


@attrs.frozen
class LinkOpen:
    href: str | None  # None: the target just captured


@attrs.frozen
class LinkClose:
    pass


class Value(NamedTuple):
    """A value chunk of a stretch: where it is, the planned operations before it, its role."""

    offset: int
    ops: Any
    role: str | None


class Stretch(NamedTuple):
    """A run of the one-pass template between control tags: it always yields ``size`` chunks;
    ``tail`` is the planned operations after its last value."""

    size: int
    values: tuple[Value, ...]
    tail: Any


class Mismatch(Exception):
    """The chunks are not what the plan predicts."""


# Escaping's entities, decoded last-to-first so that "&amp;lt;" stays "&lt;".
_ENTITIES: Final = (("&lt;", "<"), ("&gt;", ">"), ("&#39;", "'"), ("&#34;", '"'), ("&amp;", "&"))


def _unescaped(chunk: str) -> str:
    """An escaped plain value whose only ``&`` start escaping's entities, decoded."""
    text = str(chunk)
    for entity, char in _ENTITIES:
        text = text.replace(entity, char)
    return text


# An ampersand that does not start one of escaping's entities: the value is markup.
_STRAY_AMPERSAND: Final = re.compile(r"&(?!amp;|lt;|gt;|#39;|#34;)")


def _decoded(chunk: str) -> str | None:
    """The plain value behind an escaped chunk holding escaping's characters, or ``None`` when
    escaping a plain value could not have given it (it is markup): a raw ``<``, ``>`` or quote,
    or an ``&`` that starts none of escaping's entities."""
    text = str(chunk)
    if "<" in text or ">" in text or '"' in text or "'" in text or _STRAY_AMPERSAND.search(text):
        return None
    return _unescaped(text)


def _added(parts: list[str], piece: str) -> bool:
    """Append a computed piece (a link's suffix); whether the stream is now dirty."""
    if not piece:
        return False
    dirty = bool(piece[0] in EDGES and parts and parts[-1][-1] in EDGES)
    if not (piece.isprintable() and "  " not in piece):
        dirty = True
        piece = strip_markers(piece)
        if not piece:
            return True
    parts.append(piece)
    return dirty


def _settle(parts: list[str], piece: str, links: list[tuple[str, int]]) -> bool:
    """Append ``piece``, which starts with a space or marker, to a stream that ends with one:
    the run across the join becomes its strongest element, as assemble() would make it, so
    the stream stays clean; returns whether the stream is dirty instead.

    A last part that is that one character alone is dropped (what comes before it ends in
    neither), unless a link opened right after it: its label is counted from there."""
    last = parts[-1]
    strongest = max(last[-1], piece[0], key=_STRENGTH.index)
    if len(last) > 1:
        parts[-1] = last[:-1]
    elif any(start == len(parts) for _, start in links):
        parts.append(piece)
        return True
    else:
        parts.pop()
    parts.append(strongest + piece[1:])
    return False


def _finished(parts: list[str], dirty: bool) -> str:
    stream = "".join(parts)
    if dirty:
        return assemble(stream)
    # Nothing to squeeze: what assemble() does after its regular expression.
    stream = stream.strip(EDGES)
    return stream.replace(PARAGRAPH_BREAK, "\n\n").replace(LINE_BREAK, "\n")


_NAMESPACE: Final[dict[str, Any]] = {
    "_settle": _settle,
    "Markup": Markup,
    "Mismatch": Mismatch,
    "_decoded": _decoded,
    "_unescaped": _unescaped,
    "_stray_ampersand": _STRAY_AMPERSAND.search,
    "_added": _added,
    "_finished": _finished,
    "_strip_markers": strip_markers,
    "_link_label": link_label,
    "_link_suffix": link_suffix,
}


class _Writer:
    """Writes the function's source; ``edge`` is what is known of the stream's last character
    at the point being written: True (a space or marker), False (neither), None (unknown)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.edge: bool | None = False  # nothing written yet: no join to check

    def line(self, depth: int, code: str) -> None:
        self.lines.append("    " * depth + code)

    def static(self, depth: int, text: str, clean: bool) -> None:
        if not clean:
            self.line(depth, "dirty = True")
        elif text[0] in EDGES:
            if self.edge is None:
                self.line(depth, f"if parts and parts[-1][-1] in {EDGES!r}:")
                self.line(depth + 1, "dirty = True")
            elif self.edge:
                self.line(depth, "dirty = True")
        self.line(depth, f"append({text!r})")
        self.edge = text[-1] in EDGES

    def ops(self, depth: int, ops: Any, clean: bool) -> None:
        for op in (ops,) if isinstance(ops, str) else ops:
            if isinstance(op, str):
                self.static(depth, op, clean)
            elif isinstance(op, HrefStart):
                self.line(depth, "attribute = []")
            elif isinstance(op, HrefText):
                self.line(depth, f"attribute.append({op.text!r})")
            elif isinstance(op, LinkOpen):
                href = repr(op.href) if op.href is not None else '"".join(attribute).strip()'
                self.line(depth, f"links.append(({href}, len(parts)))")
            else:
                self.line(depth, "href, start = links.pop()")
                self.line(
                    depth,
                    "suffix = _link_suffix(href, _link_label(''.join(parts[start:])))",
                )
                self.line(depth, "dirty = _added(parts, suffix) or dirty")
                self.edge = None

    def value(self, depth: int, offset: str, role: str | None) -> None:
        self.line(depth, f"value = chunks[{offset}]")
        self.line(depth, "if type(value) is not Markup:")
        self.line(depth + 1, "raise Mismatch")
        self.line(depth, "value = str(value)")
        self.line(
            depth,
            """if "&" in value or "<" in value or ">" in value or '"' in value or "'" in value:""",
        )
        self.line(depth + 1, "value = _decoded(value)")
        self.line(depth + 1, "if value is None:")
        self.line(depth + 2, "return None")
        if role is None:
            return
        if role == HREF:
            self.line(depth, f"if {LINE_BREAK!r} in value or {PARAGRAPH_BREAK!r} in value:")
            self.line(depth + 1, "return None")
            self.line(depth, "attribute.append(value)")
            return
        self.line(
            depth,
            'if value and value.isprintable() and "  " not in value '
            'and value[0] != " " and value[-1] != " ":',
        )
        self.line(depth + 1, "append(value)")
        self.line(depth, "else:")
        if role == ALT:
            self.line(depth + 1, f"if {LINE_BREAK!r} in value or {PARAGRAPH_BREAK!r} in value:")
            self.line(depth + 2, "return None")
        self.line(depth + 1, "dirty = True")
        self.line(depth + 1, "value = _strip_markers(value)")
        self.line(depth + 1, "if value:")
        self.line(depth + 2, "append(value)")
        # A strict value ends in neither; otherwise the stream is dirty and joins don't matter.
        self.edge = False

    def stretch(
        self, depth: int, stretch: Stretch, base: str, clean: Callable[[Any], bool]
    ) -> None:
        """The code of one stretch: the common case in a few string operations when the
        stretch allows it (see :class:`_Pieces`), the value-by-value code otherwise."""
        if not stretch.values and not stretch.tail:
            return
        pieces = _Pieces.of(stretch)
        if pieces is None:
            self.slow(depth, stretch, base, clean)
            return
        edge = self.edge
        pieces.check(self, depth, base)
        pieces.append(self, depth)
        self.line(depth, "else:")
        after, self.edge = self.edge, edge
        self.slow(depth + 1, stretch, base, clean)
        self.edge = after if after == self.edge else None

    def slow(self, depth: int, stretch: Stretch, base: str, clean: Callable[[Any], bool]) -> None:
        for offset, ops, role in stretch.values:
            if ops:
                self.ops(depth, ops, clean(ops))
            self.value(depth, f"{base}{offset}", role)
        if stretch.tail:
            self.ops(depth, stretch.tail, clean(stretch.tail))


@attrs.define
class _Link:
    href: list[tuple[str, str]]  # ("s", text) or ("v", variable)
    static: str | None
    label: list[tuple[str, str]]  # its label: ("s", text as written) or ("v", variable)


@attrs.define
class _Pieces:
    """A stretch as the text pieces it gives when every value is strict and holds no markup:
    static text (``"s"``), values (``"v"``, by variable) and link suffixes (``"x"``, by link),
    squeezed as assemble() would, with the runs across their joins settled while generating.
    ``None`` from :meth:`of` when the stretch has something the common case does not cover (a
    link that opens or closes in another stretch, nested links, a marker before a suffix)."""

    pieces: list[tuple[str, Any]] = attrs.field(factory=list)
    values: list[str] = attrs.field(factory=list)  # text, image-text and link-target values
    silent: list[str] = attrs.field(factory=list)  # values that give no text
    links: list[_Link] = attrs.field(factory=list)  # in the order of their suffixes ("x")

    @classmethod
    def of(cls, stretch: Stretch) -> _Pieces | None:
        built = cls()
        try:
            for offset, ops, role in stretch.values:
                built._ops(ops)
                built._value(f"c{offset}", role)
            built._ops(stretch.tail)
        except _NotCommon:
            return None
        if built.href is not None or built.link is not None:
            return None
        return built

    href: list[tuple[str, str]] | None = None
    link: _Link | None = None

    def _ops(self, ops: Any) -> None:
        if not ops:
            return
        for op in (ops,) if isinstance(ops, str) else ops:
            if isinstance(op, str):
                if self.href is not None:
                    raise _NotCommon
                if self.link is not None:
                    self.link.label.append(("s", op))  # compared as it is
                # Static text is squeezed when planned, but in a dynamic link's label.
                self._static(squeeze(op))
            elif isinstance(op, HrefStart):
                self.href = []
            elif isinstance(op, HrefText):
                if self.href is None:
                    raise _NotCommon
                self.href.append(("s", op.text))
            elif isinstance(op, LinkOpen):
                if self.link is not None or (op.href is None and self.href is None):
                    raise _NotCommon
                self.link = _Link(self.href or [], op.href, [])
                self.href = None
            else:
                if self.link is None:
                    raise _NotCommon
                last = self.pieces[-1] if self.pieces else None
                if last is not None and last[0] == "s" and last[1][-1] in EDGES:
                    if last[1][-1] != " ":
                        raise _NotCommon
                    self._trim()  # the suffix brings its own space
                self.links.append(self.link)
                self.pieces.append(("x", len(self.links) - 1))
                self.link = None

    def _static(self, text: str) -> None:
        last = self.pieces[-1] if self.pieces else None
        if last is not None and last[0] == "s" and last[1][-1] in EDGES and text[0] in EDGES:
            # A run across the join: squeezed to its strongest element, as assemble() does.
            text = max(last[1][-1], text[0], key=_STRENGTH.index) + text[1:]
            self._trim()
        self.pieces.append(("s", text))

    def _trim(self) -> None:
        """Drop the last static piece's last character (an edge the next piece replaces)."""
        text = self.pieces[-1][1][:-1]
        if text:
            self.pieces[-1] = ("s", text)
        else:
            del self.pieces[-1]

    def _value(self, name: str, role: str | None) -> None:
        if role is None:
            self.silent.append(name)
        elif role == HREF:
            if self.href is None:
                raise _NotCommon
            self.href.append(("v", name))
            self.values.append(name)
        else:
            if self.href is not None:
                raise _NotCommon
            if self.link is not None:
                self.link.label.append(("v", name))
            self.pieces.append(("v", name))
            self.values.append(name)

    def check(self, writer: _Writer, depth: int, base: str) -> None:
        """Code that sets ``fast`` to whether this render is the common case, and if so
        decodes the values and computes the link suffixes."""
        names = [*self.values, *self.silent]
        for name in names:
            writer.line(depth, f"{name} = chunks[{base}{name[1:]}]")
        checks = " is ".join(["Markup", *(f"type({name})" for name in names)])
        writer.line(depth, f"fast = {checks}" if names else "fast = True")
        if self.values:
            writer.line(depth, f'joined = "|".join(({", ".join(self.values)},))')
            # Strict values (printable, no double space, none empty or edged with a space)
            # holding no markup character but escaping's entities.
            writer.line(
                depth,
                'fast = fast and joined.isprintable() and "  " not in joined '
                'and " |" not in joined and "| " not in joined and "||" not in joined '
                'and joined[:1] not in " |" and joined[-1:] not in " |" and "<" not in joined '
                """and ">" not in joined and '"' not in joined and "'" not in joined""",
            )
            # Entities: all the values decoded at once, when no value holds the separator.
            writer.line(depth, 'if fast and "&" in joined:')
            writer.line(
                depth + 1,
                "fast = _stray_ampersand(joined) is None and "
                f'joined.count("|") == {len(self.values) - 1}',
            )
            writer.line(depth + 1, "if fast:")
            writer.line(depth + 2, f'{", ".join(self.values)}, = _unescaped(joined).split("|")')
        if self.silent:
            writer.line(depth, f'silent = "".join(({", ".join(self.silent)},))')
            writer.line(
                depth,
                'fast = fast and "<" not in silent and ">" not in silent '
                """and '"' not in silent and "'" not in silent""",
            )
        for number, link in enumerate(self.links):
            self._suffix(writer, depth, number, link)

    def _suffix(self, writer: _Writer, depth: int, number: int, link: _Link) -> None:
        writer.line(depth, "if fast:")
        inner = depth + 1
        if link.static is not None:
            href = repr(link.static)
        elif len(link.href) == 1 and link.href[0][0] == "v":
            href = f"str({link.href[0][1]})"  # strict: nothing to strip
        else:
            href = f"''.join(({_joined(link.href)})).strip()"
        labels = link.label
        if all(kind == "s" for kind, _ in labels):
            label = repr(link_label("".join(text for _, text in labels)))
        else:
            label = f"_link_label(''.join(({_joined(labels)})))"
        writer.line(inner, f"href = {href}")
        writer.line(inner, f"label = {label}")
        # link_suffix() inlined for a target that is neither an anchor, a script nor mailto.
        writer.line(
            inner,
            'if label and href and href[0] != "#" and href != label '
            'and not href.startswith(("javascript:", "mailto:")):',
        )
        writer.line(inner + 1, f'x{number} = f" ({{href}})"')
        writer.line(inner, "else:")
        writer.line(inner + 1, f"x{number} = _link_suffix(href, label)")
        writer.line(inner + 1, f'fast = x{number}[:2] == " ("')

    def append(self, writer: _Writer, depth: int) -> None:
        """``if fast:`` and the code appending the stretch's text; the caller writes the
        ``else:``."""
        writer.line(depth, "if fast:")
        if self.pieces:
            first = self.pieces[0]
            starts_with_edge = first[0] == "x" or (first[0] == "s" and first[1][0] in EDGES)
            text = f"''.join(({_joined(self.pieces)}))"
            if starts_with_edge and writer.edge is not False:
                writer.line(depth + 1, f"if parts and parts[-1][-1] in {EDGES!r}:")
                writer.line(depth + 2, f"dirty = _settle(parts, {text}, links) or dirty")
                writer.line(depth + 1, "else:")
                writer.line(depth + 2, f"append({text})")
            else:
                writer.line(depth + 1, f"append({text})")
            last = self.pieces[-1]
            writer.edge = last[0] == "s" and last[1][-1] in EDGES
        else:
            writer.line(depth + 1, "pass")

    def final(self) -> str | None:
        """The whole text as one tuple display, when this stretch is the whole template: the
        ends stripped and the markers turned into line breaks, as assemble() does. ``None``
        when a link suffix's leading space would be stripped."""
        pieces = list(self.pieces)
        while pieces and pieces[0][0] == "s":
            text = pieces[0][1].lstrip(EDGES)
            if text:
                pieces[0] = ("s", text)
                break
            del pieces[0]
        while pieces and pieces[-1][0] == "s":
            text = pieces[-1][1].rstrip(EDGES)
            if text:
                pieces[-1] = ("s", text)
                break
            del pieces[-1]
        if pieces and pieces[0][0] == "x":
            return None
        return _joined(
            [
                ("s", text.replace(PARAGRAPH_BREAK, "\n\n").replace(LINE_BREAK, "\n"))
                if kind == "s"
                else (kind, text)
                for kind, text in pieces
            ]
        )


class _NotCommon(Exception):
    pass


def _joined(pieces: Sequence[tuple[str, Any]]) -> str:
    """A tuple display of ``pieces`` (a trailing comma keeps one piece a tuple)."""
    return "".join(
        f"{text!r}, " if kind == "s" else f"{text}, " if kind == "v" else f"x{text}, "
        for kind, text in pieces
    )


def text_function(
    stretches: Sequence[Stretch], clean: Callable[[Any], bool], *, origin: str
) -> TextFunction:
    """Generate the text function of ``stretches`` (the first runs from the start, each other
    one after the marker that names it). ``clean`` tells whether an operation list's static
    text has nothing to squeeze."""
    writer = _Writer()
    writer.line(0, "def text(chunks, seq):")
    writer.line(1, "parts = []")
    writer.line(1, "append = parts.append")
    writer.line(1, "dirty = False")
    writer.line(1, "links = []")
    writer.line(1, "attribute = []")
    first = stretches[0]
    if len(stretches) == 1:
        writer.line(1, f"if len(chunks) != {first.size}:")
        writer.line(2, "raise Mismatch")
        pieces = _Pieces.of(first)
        final = pieces.final() if pieces is not None else None
        if pieces is not None and final is not None:
            pieces.check(writer, 1, "")
            writer.line(1, "if fast:")
            writer.line(2, f"return ''.join(({final}))")
        writer.slow(1, first, "", clean)
        writer.line(1, "return _finished(parts, dirty)")
    else:
        writer.stretch(1, first, "", clean)
        writer.line(1, f"at = {first.size}")
        writer.line(1, "for number in seq:")
        writer.line(2, "at += 1")  # the marker's own (empty) chunk
        for number, stretch in enumerate(stretches[1:], start=1):
            writer.line(2, f"{'if' if number == 1 else 'elif'} number == {number}:")
            writer.edge = None  # whatever ran before is not known here
            writer.stretch(3, stretch, "at + ", clean)
            writer.line(3, f"at += {stretch.size}")
            writer.line(3, "continue")
        writer.line(2, "raise Mismatch")
        writer.line(1, "if at != len(chunks):")
        writer.line(2, "raise Mismatch")
        writer.line(1, "return _finished(parts, dirty)")
    namespace = dict(_NAMESPACE)
    source = "\n".join(writer.lines) + "\n"
    exec(compile(source, f"<text of {origin}>", "exec"), namespace)  # noqa: S102 - our own code
    function: TextFunction = namespace["text"]
    return function
