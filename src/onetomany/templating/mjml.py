"""MJML to HTML: compiled once per distinct source, with includes confined to the folder.

mjml-python turns any exception an include loader raises into a bare ``ValueError`` ("unable to
load included template"), so the loaders here keep the real :class:`TemplateError` aside and
:func:`run_mjml` re-raises it. MJML's own errors carry a byte position, which is turned into a
file line when the compiled text is the file's text.

Before MJML sees a file's text, :func:`~onetomany.templating.structure.check_structure` checks
that it is a well-formed tree of MJML elements (mrml lets some malformed MJML through), so the
error names the file, line and column: the template's body in :meth:`MjmlCache.compile`, and
each MJML partial as :class:`FolderLoader` loads it, with the partial's own path.

Jinja is not MJML: ``{% if seats < 5 %}`` is valid Jinja, but mrml reads its ``<`` as the start
of a tag and fails without saying where. So ``<`` and ``>`` inside Jinja tags are swapped for
plain-letter tokens before MJML sees the text (MJML rewrites characters outside ASCII in
attribute values) and swapped back in its output (:func:`mask_jinja`); everything else MJML
sees is the file's text.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

import attrs

from onetomany.errors import TemplateError
from onetomany.templating.environment import BoundTemplate
from onetomany.templating.files import read_text, resolve_inside
from onetomany.templating.placement import JINJA_TAG
from onetomany.templating.structure import Include, MjmlStructureError, check_structure

__all__ = [
    "FolderLoader",
    "IncludeLoader",
    "MjmlCache",
    "MjmlCompiler",
    "MjmlOutput",
    "RenderingLoader",
    "mask_jinja",
    "run_mjml",
    "unmask_jinja",
]

# More includes than this in one compile means an include cycle (MJML itself does not stop).
_MAX_INCLUDES = 50
# What ``<`` and ``>`` inside Jinja tags become while MJML compiles (no line breaks, so lines
# stay put).
_MASKS = (("<", "otmLTq7"), (">", "otmGTq7"))
_POSITION = re.compile(r"(?:from \"(?P<file>[^\"]+)\"|in root template) at position (?P<at>\d+):")


class IncludeLoader(Protocol):
    """What mjml-python calls with an ``mj-include`` path; returns the file's content."""

    def __call__(self, path: str) -> str: ...


class MjmlCompiler(Protocol):
    """The shape of :func:`mjml.mjml2html` this package relies on."""

    def __call__(self, input: str, /, *, include_loader: IncludeLoader | None = ...) -> str: ...


def mask_jinja(text: str) -> str:
    """``text`` with ``<`` and ``>`` inside Jinja tags replaced by tokens."""
    return JINJA_TAG.sub(_mask_tag, text)


def _mask_tag(found: re.Match[str]) -> str:
    tag = found.group()
    for char, mask in _MASKS:
        tag = tag.replace(char, mask)
    return tag


def unmask_jinja(html: str) -> str:
    """The inverse of :func:`mask_jinja`, on MJML's output."""
    for char, mask in _MASKS:
        html = html.replace(mask, char)
    return html


class _Loader:
    """Counts calls and keeps the first TemplateError, which mjml-python would swallow.

    ``masked`` tells whether a file it served had Jinja masked (see :func:`mask_jinja`), and
    ``token_in`` names a file that holds a mask token itself (its text would be unmasked
    too)."""

    def __init__(self, template: str) -> None:
        self.template = template
        self.error: TemplateError | None = None
        self.masked = False
        self.token_in: str | None = None
        self._calls = 0

    def __call__(self, path: str) -> str:
        try:
            self._calls += 1
            if self._calls > _MAX_INCLUDES:
                raise TemplateError(
                    f"more than {_MAX_INCLUDES} mj-include loads; does {path!r} include itself?",
                    template=self.template,
                )
            return self.mask(self._load(path), path)
        except TemplateError as exc:
            if self.error is None:
                self.error = exc
            raise

    def mask(self, text: str, name: str) -> str:
        """``text`` as MJML gets it (see :func:`mask_jinja`)."""
        masked = mask_jinja(text)
        self.masked = self.masked or masked != text
        if self.token_in is None and any(token in text for _, token in _MASKS):
            self.token_in = name
        return masked

    def _load(self, path: str) -> str:
        raise NotImplementedError


class FolderLoader(_Loader):
    """Loads includes from the template folder and records each file it served.

    Paths are relative to the folder root, whichever file the ``mj-include`` is in (mjml-python
    hands over the path as written, without the including file).

    Each file included as MJML is structure-checked (see
    :func:`~onetomany.templating.structure.check_structure`) under its own path. Which includes
    are MJML is known from the checked sources' ``type`` attributes (``includes``, from the
    template's own check, and those of every partial checked since); a path no checked source
    names (built by Jinja) counts as MJML when it ends in ``.mjml``.
    """

    def __init__(self, root: Path, template: str, includes: Iterable[Include] = ()) -> None:
        super().__init__(template)
        self.root = root
        self.files: dict[str, str] = {}
        self.paths: dict[str, Path] = {}
        self._types = {include.path: include.type for include in includes}
        # Where each path is first written: the file and line an error about it names.
        self._where = {include.path: (template, include.line) for include in includes}

    def _load(self, path: str) -> str:
        includer, line = self._where.get(path, (self.template, None))
        resolved = resolve_inside(self.root, path, template=includer, line=line)
        name = resolved.relative_to(self.root).as_posix()
        content = read_text(resolved, template=name)
        if self._types.get(path, "mjml" if path.endswith(".mjml") else "other") == "mjml":
            for include in check_structure(content, template=name):
                self._types.setdefault(include.path, include.type)
                self._where.setdefault(include.path, (name, include.line))
        self.files[path] = content
        self.paths[path] = resolved
        return content


class RenderingLoader(_Loader):
    """Serves includes rendered by Jinja (the jinja-first strategy), from the compile snapshot."""

    def __init__(
        self, partials: Mapping[str, BoundTemplate], context: Mapping[str, Any], template: str
    ) -> None:
        super().__init__(template)
        self.partials = partials
        self.context = context

    def _load(self, path: str) -> str:
        partial = self.partials.get(path)
        if partial is None:
            # The snapshot holds every include of the unrendered source; a new path can only
            # come from a Jinja-built path attribute, which cannot be checked ahead of time.
            raise TemplateError(
                f"mj-include path {path!r} is not a fixed include of this template",
                template=self.template,
            )
        return partial.render(self.context)


def run_mjml(
    compile_mjml: MjmlCompiler,
    source: str,
    loader: _Loader,
    *,
    template: str,
    first_line: int | None,
) -> str:
    """Compile ``source``; any failure is a TemplateError naming ``template``.

    ``first_line`` is the file line ``source`` starts on, or ``None`` when ``source`` is not the
    file's text (rendered MJML), in which case no line is reported.
    """
    compiled_source = loader.mask(source, template)
    try:
        html = compile_mjml(compiled_source, include_loader=loader)
    except ValueError as exc:  # mjml-python reports every failure as ValueError
        if loader.error is not None:
            raise loader.error from exc
        if first_line is None:
            # Rendered MJML (Jinja built part of its structure): mrml gives no position, the
            # structure check gives one in the rendered text, with that line to find it by.
            where = _rendered_problem(source)
            if where is not None:
                raise TemplateError(
                    f"invalid MJML once rendered: {where}", template=template
                ) from exc
        raise TemplateError(
            f"invalid MJML: {exc}",
            template=template,
            line=_error_line(str(exc), compiled_source, first_line),
        ) from exc
    if not loader.masked:
        return html
    if loader.token_in is not None:
        raise TemplateError(
            f"{loader.token_in} holds {_MASKS[0][1]!r} or {_MASKS[1][1]!r}, which onetomany "
            "uses while MJML compiles Jinja tags holding < or >; remove it",
            template=template,
        )
    return unmask_jinja(html)


def _rendered_problem(source: str) -> str | None:
    try:
        check_structure(source, template="(rendered)")
    except MjmlStructureError as found:
        line = found.line or 1
        lines = source.splitlines()
        text = lines[line - 1].strip() if line <= len(lines) else ""
        return (
            f"{found.problem}, at line {line}, column {found.column} of the MJML as "
            f"rendered for this recipient: {text[:120]!r}"
        )
    return None


def _error_line(message: str, source: str, first_line: int | None) -> int | None:
    found = _POSITION.search(message)
    if found is None or first_line is None or found["file"] is not None:
        # Positions inside an included file would point into a different file's text.
        return None
    before = source.encode("utf-8")[: int(found["at"])]
    return first_line + before.count(b"\n")


@attrs.frozen(kw_only=True)
class MjmlOutput:
    """Compiled HTML, and the include files it was built from (path as written -> content,
    and -> the resolved file)."""

    html: str
    includes: Mapping[str, str]
    paths: Mapping[str, Path]


class MjmlCache:
    """MJML compiles keyed by sha256 of the source and of every file it included.

    Which files a source includes is only known after compiling it, so the dependency list of
    the last compile of each source is kept; a lookup re-reads those files and hashes them with
    the source. A changed include changes the key, and the recompile finds the new dependencies.
    Not thread-safe by itself; :class:`~onetomany.templating.TemplateSet` serialises compiles.
    """

    def __init__(self, root: Path, compile_mjml: MjmlCompiler, *, max_entries: int = 256) -> None:
        self.root = root
        self.compile_mjml = compile_mjml
        self.max_entries = max_entries
        self._outputs: OrderedDict[str, MjmlOutput] = OrderedDict()
        self._includes: OrderedDict[str, tuple[str, ...]] = OrderedDict()

    def compile(self, source: str, *, template: str, first_line: int) -> MjmlOutput:
        source_key = _sha256(source)
        cached = self._lookup(source, source_key)
        if cached is not None:
            return cached
        includes = check_structure(source, template=template, first_line=first_line)
        loader = FolderLoader(self.root, template, includes)
        html = run_mjml(self.compile_mjml, source, loader, template=template, first_line=first_line)
        output = MjmlOutput(html=html, includes=dict(loader.files), paths=dict(loader.paths))
        self._remember(self._outputs, _digest(source, output.includes), output)
        self._remember(self._includes, source_key, tuple(output.includes))
        return output

    def _lookup(self, source: str, source_key: str) -> MjmlOutput | None:
        paths = self._includes.get(source_key)
        if paths is None:
            return None
        current: dict[str, str] = {}
        for path in paths:
            try:
                resolved = resolve_inside(self.root, path, template=path)
                current[path] = read_text(resolved, template=path)
            except TemplateError:
                return None  # let the recompile report it against the right template
        key = _digest(source, current)
        output = self._outputs.get(key)
        if output is not None:
            self._outputs.move_to_end(key)
        return output

    def _remember(self, store: OrderedDict[str, Any], key: str, value: Any) -> None:
        store[key] = value
        store.move_to_end(key)
        while len(store) > self.max_entries:
            store.popitem(last=False)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _digest(source: str, includes: Mapping[str, str]) -> str:
    digest = hashlib.sha256()
    parts = [source]
    for path in sorted(includes):
        parts += [path, includes[path]]
    for part in parts:
        # Length prefixes keep the concatenation unambiguous.
        encoded = part.encode("utf-8")
        digest.update(len(encoded).to_bytes(8, "big"))
        digest.update(encoded)
    return digest.hexdigest()
