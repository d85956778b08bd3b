"""A compiled template, ready to render per recipient, and what rendering it gives.

Rendering is the hot path: for the "mjml-first" strategy it is a Jinja render of the compiled
HTML, one of the text template derived from it once (:mod:`onetomany.templating.derived`) and
one per front matter value. Only templates whose Jinja tags MJML could mangle pay for an MJML
compile per render ("jinja-first"), and derive their text from each rendered HTML.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, NamedTuple

import attrs

from onetomany.errors import TemplateError
from onetomany.templating.derived import DerivedText
from onetomany.templating.environment import BoundTemplate
from onetomany.templating.mjml import MjmlCompiler, RenderingLoader, run_mjml
from onetomany.templating.text import html_to_text

__all__ = ["CompiledTemplate", "Rendered", "Strategy"]

Strategy = Literal["mjml-first", "jinja-first"]

# Front matter values that end up in message headers: a line break in them would let a
# recipient-controlled value (a name, a trait) add headers of its own.
_SINGLE_LINE = frozenset({"subject", "from", "reply_to", "url", "title"})
_FIELDS = ("subject", "preheader", "from", "reply_to", "url", "title")


class Rendered(NamedTuple):
    """One template rendered for one recipient (a named tuple: built once per message)."""

    subject: str
    preheader: str
    html: str
    text: str
    sender: str | None
    reply_to: str | None
    url: str | None
    title: str | None = None


@attrs.frozen(kw_only=True, eq=False)
class CompiledTemplate:
    """Everything needed to render one template; built by :class:`TemplateSet`.

    ``strategy`` says how the body renders: ``"mjml-first"`` (MJML compiled once, ``body`` is
    Jinja over the compiled HTML) or ``"jinja-first"`` (``body`` is Jinja over the MJML source,
    compiled by MJML on every render; ``reason`` says why). ``source``, ``text_source`` and
    ``includes`` are the file contents it was built from (``include_paths`` says where each
    include was found), used to notice edits. ``derived`` is the text template derived from the
    compiled HTML, used instead of parsing the HTML per recipient (``None``, with
    ``derived_reason``, when the template has a hand-written text, renders "jinja-first", or its
    shape does not allow it).
    """

    name: str
    path: str
    strategy: Strategy
    reason: str | None
    source: str
    text_source: str | None
    includes: Mapping[str, str]
    include_paths: Mapping[str, Path]
    front_matter: Mapping[str, BoundTemplate]
    field_lines: Mapping[str, int]
    body: BoundTemplate
    partials: Mapping[str, BoundTemplate]
    text_template: BoundTemplate | None
    compile_mjml: MjmlCompiler
    max_bytes: int
    # The Jinja source ``body`` was compiled from when it is MJML's output ("mjml-first").
    compiled_html: str | None = None
    derived: DerivedText | None = None
    derived_reason: str | None = None
    # Front matter values without any Jinja: the same for everyone, so never rendered.
    constant_fields: Mapping[str, str] = attrs.field(factory=dict)
    # ``subject`` and ``preheader`` from the MJML's <mj-title> and <mj-preview>, for those the
    # front matter does not set: the last resort after the touch's (see TemplateSet.render).
    head_fields: Mapping[str, BoundTemplate] = attrs.field(factory=dict)
    # The constant and absent fields, checked once (the same for everyone): see _settled_fields.
    _settled: dict[str, str | None] | None = attrs.field(default=None, init=False, repr=False)

    def render(self, context: Mapping[str, Any]) -> Rendered:
        """Render for one recipient; every failure is a TemplateError naming the file."""
        try:
            return self._render(context)
        except TemplateError:
            raise
        except Exception as exc:  # MJML or the text derivation; Jinja's are translated already
            raise TemplateError(f"{type(exc).__name__}: {exc}", template=self.path) from exc

    def _render(self, context: Mapping[str, Any]) -> Rendered:
        subject = self._field("subject", context) or ""
        preheader = self._field("preheader", context) or ""
        sender = self._field("from", context)
        reply_to = self._field("reply_to", context)
        url = self._field("url", context)
        title = self._field("title", context)
        html = self._html(context)
        self._check_size("HTML", html, self.path)
        if self.text_template is None:
            text = self.derived_text(context, html)
        else:
            text = self.text_template.render(context).lstrip("\n").rstrip()
            self._check_size("text", text, self.text_template.origin)
        return Rendered(
            subject=subject,
            preheader=preheader,
            html=html,
            text=text,
            sender=sender or None,
            reply_to=reply_to or None,
            url=url or None,
            title=title or None,
        )

    def _settled_fields(self) -> dict[str, str | None]:
        """The front matter values that are the same for every recipient (constant or
        absent), checked once."""
        settled = self._settled
        if settled is None:
            settled = {
                key: (
                    self._checked_field(key, self.constant_fields[key]) or None
                    if key in self.constant_fields
                    else None
                )
                for key in _FIELDS
                if key in self.constant_fields or key not in self.front_matter
            }
            object.__setattr__(self, "_settled", settled)
        return settled

    def derived_text(self, context: Mapping[str, Any], html: str) -> str:
        """``html_to_text(html)``, through the derived text template when there is one;
        ``html`` must be this template's rendering for ``context``."""
        if self.derived is None:
            return html_to_text(html)
        return self.derived.render(context, html)

    def _html(self, context: Mapping[str, Any]) -> str:
        if self.strategy == "mjml-first":
            return self.body.render(context)
        source = self.body.render(context)
        loader = RenderingLoader(self.partials, context, self.path)
        return run_mjml(self.compile_mjml, source, loader, template=self.path, first_line=None)

    def _field(self, key: str, context: Mapping[str, Any]) -> str | None:
        if key in self.constant_fields:
            return self._settled_fields()[key]
        template = self.front_matter.get(key)
        if template is None:
            return None
        return self._checked_field(key, template.render(context))

    def checked_field(self, key: str, value: str, *, line: int | None = None) -> str:
        """``value`` of field ``key`` stripped, and refused if it holds a line break where a
        header cannot (``line``: where it was written, else its front matter line)."""
        return self._checked_field(key, value, line=line)

    def _checked_field(self, key: str, value: str, *, line: int | None = None) -> str:
        # Surrounding whitespace (a TOML multi-line string's last newline) is never meant.
        value = value.strip()
        # Printable text holds no line break of any kind: splitting it is only needed if not.
        if key in _SINGLE_LINE and not value.isprintable() and len(value.splitlines()) > 1:
            raise TemplateError(
                f"the rendered {key!r} contains a line break, which could inject mail headers: "
                f"{value!r}",
                template=self.path,
                line=line or self.field_lines.get(key),
            )
        return value

    def _check_size(self, what: str, value: str, origin: str) -> None:
        # len() is a lower bound of the UTF-8 size; only encode when it might matter.
        if len(value) * 4 <= self.max_bytes:
            return
        size = len(value.encode("utf-8"))
        if size > self.max_bytes:
            raise TemplateError(
                f"rendered {what} is {size} bytes, over the {self.max_bytes}-byte cap",
                template=origin,
            )
