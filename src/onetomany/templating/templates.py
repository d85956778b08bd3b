"""A program's template folder: listing, compiling (cached) and rendering its templates.

Layout of the folder::

    welcome.mjml              a template: TOML front matter between +++ lines, then MJML
    welcome.txt               optional hand-written plain text (else derived from the HTML)
    welcome.pt-BR.mjml        a locale variant (and welcome.pt-BR.txt its hand-written text)
    welcome.sponsor.mjml      a persona variant (the contact's role)
    welcome.sponsor.pt-BR.mjml  persona and locale: persona first, then locale
    welcome.sms.txt           SMS text; also .whatsapp.toml, .whatsapp.txt, .inapp.txt (see
                              :mod:`onetomany.templating.channels`), with the same variants
    partials/header.mjml      included with <mj-include path="partials/header.mjml" />
    _draft.mjml               ignored: names starting with "_" are not templates

A template's name is the file name up to its first dot, so names hold no dots. For a contact
with locale ``pt-BR`` and role ``sponsor`` a file kind is looked up as ``welcome.sponsor.pt-BR``,
``welcome.sponsor.pt``, ``welcome.sponsor``, ``welcome.pt-BR``, ``welcome.pt``, ``welcome``:
the first that exists wins. A ``.txt`` belongs to the ``.mjml`` of the same variant: the
``welcome.pt-BR.mjml`` email uses ``welcome.pt-BR.txt`` or else its own derived text, never the
default's ``welcome.txt``. Includes are not resolved: a variant names its partials
(``partials/footer.pt-BR.mjml``).

Compiling a template parses its front matter, compiles MJML once (cached by content, see
:class:`~onetomany.templating.mjml.MjmlCache`) and compiles the resulting HTML with Jinja. The
compiled template is kept until one of its files changes. :meth:`TemplateSet.compiled` (and
``check``, ``problems``, the channel lookups) re-read the files, which are small, on every call,
so edits are picked up without a restart and without trusting modification times. The send path,
:meth:`TemplateSet.render`, keeps the variant it resolved and the compiled template it loaded
and checks the files again at most once per ``recheck_every`` seconds (or after
:meth:`TemplateSet.refresh`).
"""

from __future__ import annotations

import posixpath
import re
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jinja2
import mjml as mjml_python

from onetomany.errors import TemplateError
from onetomany.templating.channels import (
    SmsTemplate,
    TextTemplate,
    WhatsAppTemplate,
    compile_sms,
    compile_text,
    compile_whatsapp,
)
from onetomany.templating.compiled import CompiledTemplate, Rendered, Strategy
from onetomany.templating.derived import FILTERS as DERIVED_FILTERS
from onetomany.templating.derived import DerivedText, derive_text
from onetomany.templating.environment import (
    BoundTemplate,
    Locator,
    compile_template,
    make_environment,
)
from onetomany.templating.files import read_text
from onetomany.templating.frontmatter import mjml_head_fields, split_front_matter
from onetomany.templating.limits import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_SECONDS,
    DEFAULT_MAX_STEPS,
    Limits,
)
from onetomany.templating.locales import canonical_locale, locale_chain, locale_filters
from onetomany.templating.mjml import MjmlCache, MjmlCompiler, MjmlOutput
from onetomany.templating.placement import (
    JINJA_TAG,
    expand_includes,
    placement_problem,
    same_tags,
)

__all__ = ["TemplateSet", "with_lang"]

_SUFFIX = ".mjml"
_TEXT_SUFFIX = ".txt"
_BAD_NAME = re.compile(r"[/\\\x00]|^[._]|^$")
_PERSONA = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
# The channel files, by suffix (longest first, so ".sms.txt" is not taken for ".txt").
SMS_SUFFIX = ".sms.txt"
WHATSAPP_SUFFIX = ".whatsapp.toml"
WHATSAPP_TEXT_SUFFIX = ".whatsapp.txt"
INAPP_SUFFIX = ".inapp.txt"
_CHANNEL_SUFFIXES = (SMS_SUFFIX, WHATSAPP_SUFFIX, WHATSAPP_TEXT_SUFFIX, INAPP_SUFFIX)
_TEMPLATE_SUFFIXES = (*_CHANNEL_SUFFIXES, _SUFFIX)

ChannelFile = TextTemplate | SmsTemplate | WhatsAppTemplate

#: The front matter keys a touch or the MJML head can give a template that does not set them.
STAND_IN_FIELDS = frozenset({"subject", "preheader"})


class TemplateSet:
    """The templates of one program, in ``folder``.

    ``filters`` and ``constants`` (Jinja filters and globals, typically from plugins and the
    program) are available to every template, on top of the locale-aware filters of
    :mod:`onetomany.templating.locales`. ``max_bytes`` caps the rendered HTML (and text), and
    every width and string a template builds; ``max_steps`` and ``max_seconds`` bound the loop
    iterations and calls, and the time, of one render (see :mod:`onetomany.templating.limits`).
    ``compile_mjml`` replaces :func:`mjml.mjml2html`, e.g. to count or instrument compiles.
    ``touch_fields`` maps a touch name to the ``subject`` and ``preheader`` (Jinja templates)
    the touch gives the templates it sends, for those that do not set them in front matter
    (:meth:`render`). :meth:`render` checks a template's files for edits at most once per
    ``recheck_every`` seconds; :meth:`refresh` makes the next render check at once. Safe to
    share between threads.
    """

    def __init__(
        self,
        folder: Path,
        *,
        filters: Mapping[str, Callable[..., Any]] | None = None,
        constants: Mapping[str, Any] | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_steps: int = DEFAULT_MAX_STEPS,
        max_seconds: float = DEFAULT_MAX_SECONDS,
        compile_mjml: MjmlCompiler = mjml_python.mjml2html,
        touch_fields: Mapping[str, Mapping[str, str]] | None = None,
        recheck_every: float = 1.0,
    ) -> None:
        folder = Path(folder)
        limits = Limits(max_bytes=max_bytes, max_steps=max_steps, max_seconds=max_seconds)
        self.folder = folder
        self._root = folder.resolve()
        self._html_env, self._text_env = make_environment(
            filters={**locale_filters(), **(filters or {}), **DERIVED_FILTERS},
            constants=constants or {},
            limits=limits,
        )
        self._compile_mjml = compile_mjml
        self._mjml = MjmlCache(self._root, compile_mjml)
        self._max_bytes = max_bytes
        self._compiled: dict[str, CompiledTemplate] = {}
        # What the send path (render and the channel lookups) resolved and loaded, by (suffix,
        # name, locale, persona), and when it looked at the files.
        self._rendered: dict[tuple[str | None, ...], tuple[Any, float]] = {}
        self._recheck_every = recheck_every
        self._channel_files: dict[str, ChannelFile] = {}
        self._lock = threading.Lock()
        self._touch_fields = {
            touch: {
                key: compile_template(
                    self._text_env,
                    value,
                    origin=f"touches.{touch}.{key}",
                    filename=f"touches.{touch}.{key}",
                )
                for key, value in fields.items()
                if key in STAND_IN_FIELDS
            }
            for touch, fields in (touch_fields or {}).items()
        }

    def names(self) -> list[str]:
        """The template names: the part before the first dot of the ``.mjml`` and channel files
        at the top of the folder (so ``welcome``, never ``welcome.pt-BR``).

        A folder that does not exist has no templates (so a program naming one gets an
        "unknown template" problem rather than a crash while it is loaded).
        """
        if not self._root.is_dir():
            return []
        names = set()
        for path in self._root.iterdir():
            if not path.name.endswith(_TEMPLATE_SUFFIXES) or not path.is_file():
                continue
            base = path.name.split(".", 1)[0]
            if not _BAD_NAME.search(base):
                names.add(base)
        return sorted(names)

    def variants(self, name: str, suffix: str = _SUFFIX) -> list[str]:
        """Every variant of ``name`` that has a ``suffix`` file (``welcome``, ``welcome.pt-BR``,
        ...), sorted."""
        if _BAD_NAME.search(name) or "." in name or not self._root.is_dir():
            return []
        found = []
        for path in self._root.glob(f"{name}*{suffix}"):
            variant = path.name[: -len(suffix)]
            if not path.is_file() or (variant != name and not variant.startswith(name + ".")):
                continue
            if suffix == _TEXT_SUFFIX and variant.endswith((".sms", ".whatsapp", ".inapp")):
                continue  # welcome.sms.txt is not the text of a "welcome.sms" variant
            found.append(variant)
        return sorted(found)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.names()

    def candidates(self, name: str, *, locale: str | None, persona: str | None) -> list[str]:
        """The variant names tried for ``locale`` and ``persona``, in order: persona with each
        locale fallback, persona alone, each locale fallback, then ``name``."""
        locales = locale_chain(locale, template=name) if locale else []
        found: list[str] = []
        if persona and _PERSONA.match(persona):
            found += [f"{name}.{persona}.{tag}" for tag in locales] + [f"{name}.{persona}"]
        return [*found, *(f"{name}.{tag}" for tag in locales), name]

    def find(
        self, name: str, suffix: str, *, locale: str | None = None, persona: str | None = None
    ) -> str | None:
        """The variant of ``name`` chosen for ``locale`` and ``persona`` among its ``suffix``
        files, or ``None`` when it has none."""
        if _BAD_NAME.search(name) or "." in name:
            return None
        for variant in self.candidates(name, locale=locale, persona=persona):
            if (self._root / f"{variant}{suffix}").is_file():
                return variant
        return None

    def resolve(self, name: str, *, locale: str | None = None, persona: str | None = None) -> str:
        """The variant of email template ``name`` (its ``.mjml`` file, without the suffix)
        rendered for a contact with ``locale`` and ``persona`` (role). A malformed locale or an
        unknown template is a TemplateError."""
        variant = self.find(name, _SUFFIX, locale=locale, persona=persona)
        if variant is None:
            known = ", ".join(self.names()) or f"(none in {self.folder})"
            what = (
                f"template {name!r} has no .mjml file"
                if name in self
                else f"unknown template {name!r}"
            )
            raise TemplateError(f"{what}; known templates: {known}", template=name)
        return variant

    def compiled(self, name: str) -> CompiledTemplate:
        """The compiled template ``name`` (a base name or a variant such as
        ``welcome.pt-BR``); compiled on first use and again after any of its files (``.mjml``,
        ``.txt``, includes) changes."""
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
            try:
                compiled = self._compile(name, source, text_source)
            except TemplateError:
                raise
            except Exception as exc:  # MJML, or anything else that gave up on this file
                raise TemplateError(
                    f"cannot compile: {type(exc).__name__}: {exc}", template=f"{name}{_SUFFIX}"
                ) from exc
            self._compiled[name] = compiled
            return compiled

    def render(
        self,
        name: str,
        context: Mapping[str, Any],
        *,
        locale: str | None = None,
        persona: str | None = None,
    ) -> Rendered:
        """Render template ``name`` with ``context`` (see :meth:`CompiledTemplate.render`),
        in the variant :meth:`resolve` picks. ``locale``, when given, is also the ``locale``
        context variable the locale-aware filters use, and the HTML's ``lang`` unless the
        template's ``<mjml lang="...">`` sets one (see :func:`with_lang`). The variant and its
        compiled template are kept: files are checked for edits at most once per
        ``recheck_every`` seconds (see :meth:`refresh`)."""
        compiled: CompiledTemplate = self._kept(
            (_SUFFIX, name, locale, persona),
            lambda: self.compiled(self.resolve(name, locale=locale, persona=persona)),
        )
        if locale is not None:
            context = {**context, "locale": canonical_locale(locale, template=name)}
        rendered = compiled.render(context)
        if not compiled.front_matter.keys() >= STAND_IN_FIELDS:
            rendered = rendered._replace(**self._stand_ins(compiled, context))
        if locale is None:
            return rendered
        return rendered._replace(html=with_lang(rendered.html, context["locale"]))

    def refresh(self) -> None:
        """Make the next :meth:`render` of every template resolve its variant and check its
        files again, instead of up to ``recheck_every`` seconds later."""
        self._rendered = {}

    def _kept(self, key: tuple[str | None, ...], load: Callable[[], Any]) -> Any:
        """``load()``, kept under ``key`` for ``recheck_every`` seconds (the send path)."""
        now = time.monotonic()
        found = self._rendered.get(key)
        if found is not None and now - found[1] < self._recheck_every:
            return found[0]
        value = load()
        if len(self._rendered) >= 10_000:  # locales and roles are data: keep the memory bounded
            self._rendered = {}
        self._rendered[key] = (value, now)
        return value

    def _stand_ins(self, compiled: CompiledTemplate, context: Mapping[str, Any]) -> dict[str, str]:
        """The ``subject`` and ``preheader`` the front matter does not set: the touch's (named
        by ``context["touch"]["name"]``, as the Composer sets it), else the MJML's
        ``<mj-title>`` / ``<mj-preview>``. A subject none of them gives is a TemplateError."""
        touch = context.get("touch")
        touch_name = touch.get("name") if isinstance(touch, Mapping) else None
        given = self._touch_fields.get(touch_name, {}) if isinstance(touch_name, str) else {}
        values: dict[str, str] = {}
        for key in sorted(STAND_IN_FIELDS - compiled.front_matter.keys()):
            source = given.get(key) or compiled.head_fields.get(key)
            if source is not None:
                line = source.first_line if source.origin == compiled.path else None
                values[key] = compiled.checked_field(key, source.render(context), line=line)
            elif key == "subject":
                sender = f"touch {touch_name!r}" if touch_name else "the touch that sends it"
                raise TemplateError(
                    f"no subject: {compiled.path} sets none in front matter (a +++ block "
                    f'opening the file with subject = "..."), {sender} has no subject in '
                    "program.toml, and the MJML has no <mj-title>; give it one of the three",
                    template=compiled.path,
                )
        return values

    def sms(
        self, name: str, *, locale: str | None = None, persona: str | None = None
    ) -> SmsTemplate | None:
        """The compiled ``.sms.txt`` variant of ``name`` for ``locale``/``persona``, if any
        (kept like :meth:`render`'s)."""
        found = self._channel(name, SMS_SUFFIX, locale, persona)
        assert found is None or isinstance(found, SmsTemplate)
        return found

    def whatsapp(
        self, name: str, *, locale: str | None = None, persona: str | None = None
    ) -> WhatsAppTemplate | TextTemplate | None:
        """The ``.whatsapp.toml`` (approved template) or ``.whatsapp.txt`` (session text)
        variant of ``name``; for the same variant, the approved template wins (kept like
        :meth:`render`'s)."""
        found: WhatsAppTemplate | TextTemplate | None = self._kept(
            (WHATSAPP_SUFFIX, name, locale, persona),
            lambda: self._whatsapp(name, locale=locale, persona=persona),
        )
        return found

    def _whatsapp(
        self, name: str, *, locale: str | None, persona: str | None
    ) -> WhatsAppTemplate | TextTemplate | None:
        template = self.find(name, WHATSAPP_SUFFIX, locale=locale, persona=persona)
        text = self.find(name, WHATSAPP_TEXT_SUFFIX, locale=locale, persona=persona)
        if template is None and text is None:
            return None
        order = self.candidates(name, locale=locale, persona=persona)
        if text is None or (template is not None and order.index(template) <= order.index(text)):
            return self._load_channel(f"{template}{WHATSAPP_SUFFIX}")
        return self._load_channel(f"{text}{WHATSAPP_TEXT_SUFFIX}")

    def inapp_text(
        self, name: str, *, locale: str | None = None, persona: str | None = None
    ) -> TextTemplate | None:
        """The ``.inapp.txt`` variant of ``name`` for ``locale``/``persona``, if any (kept like
        :meth:`render`'s)."""
        found = self._channel(name, INAPP_SUFFIX, locale, persona)
        assert found is None or isinstance(found, TextTemplate)
        return found

    def check(self, name: str) -> None:
        """Compile every variant of ``name`` (email and channel files) without rendering;
        raises TemplateError on the first problem."""
        if name not in self:
            known = ", ".join(self.names()) or f"(none in {self.folder})"
            raise TemplateError(
                f"unknown template {name!r}; known templates: {known}", template=name
            )
        for variant in self.variants(name):
            self.compiled(variant)
        for suffix in _CHANNEL_SUFFIXES:
            for variant in self.variants(name, suffix):
                self._load_channel(f"{variant}{suffix}")

    def problems(self) -> list[TemplateError]:
        """Every template of the folder compiled without rendering: each variant of each name
        (its MJML, includes, front matter and text) and each channel file; one problem per
        file that fails, in name order."""
        found: list[TemplateError] = []
        for name in self.names():
            for variant in self.variants(name):
                try:
                    self.compiled(variant)
                except TemplateError as exc:
                    found.append(exc)
            for suffix in _CHANNEL_SUFFIXES:
                for variant in self.variants(name, suffix):
                    try:
                        self._load_channel(f"{variant}{suffix}")
                    except TemplateError as exc:
                        found.append(exc)
        return found

    def _channel(self, name: str, suffix: str, locale: str | None, persona: str | None) -> Any:
        def load() -> ChannelFile | None:
            variant = self.find(name, suffix, locale=locale, persona=persona)
            return None if variant is None else self._load_channel(f"{variant}{suffix}")

        return self._kept((suffix, name, locale, persona), load)

    def _load_channel(self, filename: str) -> ChannelFile:
        source = read_text(self._root / filename, template=filename)
        cached = self._channel_files.get(filename)
        if cached is not None and cached.source == source:
            return cached
        compiled: ChannelFile
        try:
            if filename.endswith(SMS_SUFFIX):
                compiled = compile_sms(self._text_env, source, path=filename)
            elif filename.endswith(WHATSAPP_SUFFIX):
                compiled = compile_whatsapp(self._text_env, source, path=filename)
            else:
                compiled = compile_text(self._text_env, source, path=filename)
        except TemplateError:
            raise
        except Exception as exc:  # anything else that gave up on this file
            raise TemplateError(
                f"cannot compile: {type(exc).__name__}: {exc}", template=filename
            ) from exc
        with self._lock:
            self._channel_files[filename] = compiled
        return compiled

    def _exists(self, name: str) -> bool:
        base = name.split(".", 1)[0]
        return (
            not _BAD_NAME.search(base)
            and not _BAD_NAME.search(name)
            and ".." not in name
            and (self._root / f"{name}{_SUFFIX}").is_file()
        )

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
        derived: DerivedText | None = None
        derived_reason: str | None = "the template has a hand-written text"
        if text_source is not None:
            text_template = compile_template(
                self._text_env, text_source, origin=f"{name}{_TEXT_SUFFIX}"
            )
        elif body is None:
            derived_reason = f"renders jinja-first: {reason}"
        else:
            derived, derived_reason = derive_text(self._html_env, output.html, origin=path)
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
            compiled_html=output.html if body is not None else None,
            partials=partials,
            text_template=text_template,
            compile_mjml=self._compile_mjml,
            max_bytes=self._max_bytes,
            derived=derived,
            derived_reason=derived_reason,
            constant_fields={
                key: value
                for key, value in head.fields.items()
                if "{" not in value and "}" not in value
            },
            head_fields={
                key: compile_template(
                    self._text_env,
                    found.text,
                    origin=path,
                    filename=f"{path}#{found.element}",
                    first_line=found.line,
                )
                for key, found in mjml_head_fields(head.body, body_line=head.body_line).items()
                if key not in head.fields
            },
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


# What MJML writes when the ``<mjml>`` root has no ``lang``: "undetermined".
_NO_LANG = '<html lang="und"'


def with_lang(html: str, locale: str) -> str:
    """``html`` with ``lang`` set to ``locale`` on its ``<html>`` tag, if MJML left it
    undetermined (the template's ``<mjml>`` root named no ``lang``); an author's choice stays.

    ``locale`` is the one the message is rendered for: the variant picked and the locale
    filters follow it too. A template written in one language for every locale says so with
    ``<mjml lang="en">``.
    """
    at = html.find(_NO_LANG, 0, 200)  # the doctype, then the <html> tag
    if at < 0:
        return html
    return f'{html[:at]}<html lang="{locale}"{html[at + len(_NO_LANG) :]}'


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
