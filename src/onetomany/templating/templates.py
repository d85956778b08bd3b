"""A program's template folder: listing, compiling (cached) and rendering its templates.

Layout of the folder::

    welcome.mjml          a template: TOML front matter between +++ lines, then MJML
    welcome.txt           optional hand-written plain text (else derived from the HTML)
    partials/header.mjml  included with <mj-include path="partials/header.mjml" />
    _draft.mjml           ignored: names starting with "_" are not templates

Compiling a template parses its front matter, compiles MJML once (cached by content, see
:class:`~onetomany.templating.mjml.MjmlCache`) and compiles the resulting HTML with Jinja. The
compiled template is kept until one of its files changes; every lookup re-reads the files, which
are small, so edits are picked up without a restart and without trusting modification times.
"""

from __future__ import annotations

import posixpath
import re
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jinja2
import mjml as mjml_python

from onetomany.errors import TemplateError
from onetomany.templating.compiled import CompiledTemplate, Rendered, Strategy
from onetomany.templating.environment import (
    BoundTemplate,
    Locator,
    compile_template,
    make_environment,
)
from onetomany.templating.files import read_text
from onetomany.templating.frontmatter import split_front_matter
from onetomany.templating.mjml import MjmlCache, MjmlCompiler, MjmlOutput
from onetomany.templating.placement import (
    JINJA_TAG,
    expand_includes,
    placement_problem,
    same_tags,
)

__all__ = ["TemplateSet"]

_SUFFIX = ".mjml"
_TEXT_SUFFIX = ".txt"
_BAD_NAME = re.compile(r"[/\\\x00]|^[._]|^$")


class TemplateSet:
    """The templates of one program, in ``folder``.

    ``filters`` and ``constants`` (Jinja filters and globals, typically from plugins and the
    program) are available to every template. ``max_bytes`` caps the rendered HTML (and text).
    ``compile_mjml`` replaces :func:`mjml.mjml2html`, e.g. to count or instrument compiles.
    Safe to share between threads.
    """

    def __init__(
        self,
        folder: Path,
        *,
        filters: Mapping[str, Callable[..., Any]] | None = None,
        constants: Mapping[str, Any] | None = None,
        max_bytes: int = 512 * 1024,
        compile_mjml: MjmlCompiler = mjml_python.mjml2html,
    ) -> None:
        folder = Path(folder)
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, not {max_bytes}")
        self.folder = folder
        self._root = folder.resolve()
        self._html_env, self._text_env = make_environment(
            filters=filters or {}, constants=constants or {}, max_bytes=max_bytes
        )
        self._compile_mjml = compile_mjml
        self._mjml = MjmlCache(self._root, compile_mjml)
        self._max_bytes = max_bytes
        self._compiled: dict[str, CompiledTemplate] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        """The template names: stems of the ``.mjml`` files at the top of the folder.

        A folder that does not exist has no templates (so a program naming one gets an
        "unknown template" problem rather than a crash while it is loaded).
        """
        if not self._root.is_dir():
            return []
        return sorted(
            path.stem
            for path in self._root.glob(f"*{_SUFFIX}")
            if path.is_file() and not _BAD_NAME.search(path.stem)
        )

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._exists(name)

    def compiled(self, name: str) -> CompiledTemplate:
        """The compiled template ``name``; compiled on first use and again after any of its
        files (``.mjml``, ``.txt``, includes) changes."""
        if not self._exists(name):
            known = ", ".join(self.names()) or f"(none in {self.folder})"
            raise TemplateError(
                f"unknown template {name!r}; known templates: {known}", template=name
            )
        source = read_text(self._root / f"{name}{_SUFFIX}", template=f"{name}{_SUFFIX}")
        text_path = self._root / f"{name}{_TEXT_SUFFIX}"
        text_source = (
            read_text(text_path, template=f"{name}{_TEXT_SUFFIX}") if text_path.is_file() else None
        )
        cached = self._compiled.get(name)
        if cached is not None and self._fresh(cached, source, text_source):
            return cached
        with self._lock:
            cached = self._compiled.get(name)
            if cached is not None and self._fresh(cached, source, text_source):
                return cached  # another thread compiled it meanwhile
            compiled = self._compile(name, source, text_source)
            self._compiled[name] = compiled
            return compiled

    def render(self, name: str, context: Mapping[str, Any]) -> Rendered:
        """Render template ``name`` with ``context`` (see :meth:`CompiledTemplate.render`)."""
        return self.compiled(name).render(context)

    def check(self, name: str) -> None:
        """Compile ``name`` without rendering it; raises TemplateError on any problem."""
        self.compiled(name)

    def _exists(self, name: str) -> bool:
        return not _BAD_NAME.search(name) and (self._root / f"{name}{_SUFFIX}").is_file()

    def _fresh(self, cached: CompiledTemplate, source: str, text_source: str | None) -> bool:
        if cached.source != source or cached.text_source != text_source:
            return False
        for path, content in cached.includes.items():
            try:
                # The path resolved (and confined) at compile time; if it became a symlink out
                # of the folder its content differs, and the recompile refuses it.
                current = read_text(cached.include_paths[path], template=path)
            except TemplateError:
                return False  # recompiling reports it properly
            if current != content:
                return False
        return True

    def _compile(self, name: str, source: str, text_source: str | None) -> CompiledTemplate:
        path = f"{name}{_SUFFIX}"
        head = split_front_matter(source, template=path)
        front_matter = {
            key: compile_template(
                self._text_env,
                value,
                origin=path,
                filename=f"{path}#{key}",
                first_line=head.lines[key],
            )
            for key, value in head.fields.items()
        }
        # Compiled even when the HTML one is used: syntax errors get the source's line numbers.
        source_body = compile_template(
            self._html_env,
            head.body,
            origin=path,
            filename=f"{path}#source",
            first_line=head.body_line,
        )
        output = self._mjml.compile(head.body, template=path, first_line=head.body_line)
        partials = {
            include: compile_template(
                self._html_env,
                content,
                origin=_partial_name(include),
                filename=f"{path}#include:{include}",
            )
            for include, content in output.includes.items()
        }
        body, reason = self._fast_body(path, head.body, head.body_line, output)
        text_template = None
        if text_source is not None:
            text_template = compile_template(
                self._text_env, text_source, origin=f"{name}{_TEXT_SUFFIX}"
            )
        strategy: Strategy = "mjml-first" if body is not None else "jinja-first"
        return CompiledTemplate(
            name=name,
            path=path,
            strategy=strategy,
            reason=reason,
            source=source,
            text_source=text_source,
            includes=output.includes,
            include_paths=output.paths,
            front_matter=front_matter,
            field_lines=head.lines,
            body=body or source_body,
            partials=partials,
            text_template=text_template,
            compile_mjml=self._compile_mjml,
            max_bytes=self._max_bytes,
        )

    def _fast_body(
        self, path: str, body: str, body_line: int, output: MjmlOutput
    ) -> tuple[BoundTemplate | None, str | None]:
        """Jinja over the compiled HTML if that renders like Jinja-then-MJML would, else
        ``None`` and the reason it would not (see :mod:`onetomany.templating.placement`)."""
        expanded = expand_includes(body, output.includes)
        reason = placement_problem(expanded)
        if reason is None and not same_tags(expanded, output.html):
            reason = "MJML dropped, reordered or changed a Jinja tag"
        if reason is not None:
            return None, reason
        try:
            compiled = compile_template(
                self._html_env,
                output.html,
                origin=path,
                filename=f"{path}#compiled",
                locator=_locator(self._html_env, path, body, body_line, output),
            )
        except TemplateError:
            return None, "the HTML MJML produced is not a valid Jinja template"
        return compiled, None


def _partial_name(include: str) -> str:
    return posixpath.normpath(include.replace("\\", "/"))


def _locator(
    environment: jinja2.Environment, path: str, body: str, body_line: int, output: MjmlOutput
) -> Locator:
    """Find the Jinja tag that failed in the compiled HTML, back in the template's source.

    Lines in the compiled HTML mean nothing to a template author, and MJML puts most of its
    output on one line anyway. So each source tag (template first, then its includes) that uses
    the failing name (every expression, for errors naming none) is evaluated on its own with the
    same context: the first one failing with the same message is the culprit. Failing that (a
    loop variable, a block tag), the first tag using the name is the best guess. Runs only when
    rendering has already failed.
    """
    sources = [
        (path, body, body_line),
        *((_partial_name(include), text, 1) for include, text in output.includes.items()),
    ]

    def locate(
        name: str | None, message: str, context: Mapping[str, Any]
    ) -> tuple[str, int | None]:
        word = re.compile(rf"(?<!\w){re.escape(name)}(?!\w)") if name else None
        guess: tuple[str, int | None] = (path, None)
        for origin, text, first_line in sources:
            for tag in JINJA_TAG.finditer(text):
                if word is not None and not word.search(tag.group()):
                    continue
                where = (origin, first_line + text.count("\n", 0, tag.start()))
                if guess[1] is None and word is not None:
                    guess = where
                if tag.group().startswith("{{") and _fails_with(
                    environment, tag.group(), message, context
                ):
                    return where
        return guess

    return locate


def _fails_with(
    environment: jinja2.Environment, tag: str, message: str, context: Mapping[str, Any]
) -> bool:
    try:
        environment.from_string(tag).render(context)
    except Exception as exc:
        return str(exc) == message
    return False
