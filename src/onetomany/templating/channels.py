"""Channel-specific template files: SMS text, WhatsApp template or session text, in-app text.

Next to ``welcome.mjml`` a touch may have (each with the same locale and persona variants)::

    welcome.sms.txt        SMS text (Jinja, no autoescape); optional front matter:
                               +++
                               max_segments = 2
                               +++
    welcome.whatsapp.toml  an approved WhatsApp template:
                               template = "welcome_v2"
                               language = "pt_BR"        # optional: the render locale
                               parameters = ["contact.first_name", "account.name"]
                           each parameter is a Jinja expression rendered per recipient
    welcome.whatsapp.txt   WhatsApp session text (Jinja, no autoescape)
    welcome.inapp.txt      in-app body (Jinja, no autoescape); else the email's text

Rendered values are stripped of surrounding whitespace.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from typing import Any

import attrs
import jinja2

from onetomany.errors import TemplateError
from onetomany.templating.environment import BoundTemplate, compile_template

__all__ = [
    "SmsTemplate",
    "TextTemplate",
    "WhatsAppRendered",
    "WhatsAppTemplate",
    "compile_sms",
    "compile_text",
    "compile_whatsapp",
]

_DELIMITER = "+++"
_WHATSAPP_KEYS = frozenset({"template", "language", "parameters"})
_WHATSAPP_NAME = re.compile(r"^[a-z0-9_]{1,512}$")
_SPACES = re.compile(r"\s+")


@attrs.frozen(kw_only=True, eq=False)
class TextTemplate:
    """A plain-text channel file; ``source`` is the file content it was built from."""

    path: str
    source: str
    body: BoundTemplate

    def render(self, context: Mapping[str, Any]) -> str:
        return self.body.render(context).strip()


@attrs.frozen(kw_only=True, eq=False)
class SmsTemplate(TextTemplate):
    """An SMS text, with the most segments it may take (``None``: the Composer's setting)."""

    max_segments: int | None = None


@attrs.frozen(kw_only=True)
class WhatsAppRendered:
    """An approved template's name, language and parameters, rendered for one recipient."""

    template: str
    language: str
    parameters: list[str]


@attrs.frozen(kw_only=True, eq=False)
class WhatsAppTemplate:
    """A ``.whatsapp.toml`` file: an approved template and its parameter expressions."""

    path: str
    source: str
    template: str
    language: str | None
    parameters: tuple[BoundTemplate, ...]

    def render(self, context: Mapping[str, Any], *, locale: str | None) -> WhatsAppRendered:
        values = []
        for index, parameter in enumerate(self.parameters, 1):
            # WhatsApp refuses parameters with line breaks, tabs or runs of spaces.
            value = _SPACES.sub(" ", parameter.render(context)).strip()
            if not value:
                raise TemplateError(
                    f"WhatsApp parameter {index} renders empty, which WhatsApp refuses",
                    template=self.path,
                )
            values.append(value)
        language = self.language or (locale or "en").replace("-", "_")
        return WhatsAppRendered(template=self.template, language=language, parameters=values)


def _split(source: str, *, path: str) -> tuple[dict[str, Any], str, int]:
    lines = source.split("\n")
    if not lines or lines[0].strip() != _DELIMITER:
        return {}, source, 1
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == _DELIMITER)
    except StopIteration:
        raise TemplateError(
            f"the front matter opened on line 1 is never closed by a {_DELIMITER!r} line",
            template=path,
            line=1,
        ) from None
    try:
        data = tomllib.loads("\n".join(lines[1:end]))
    except tomllib.TOMLDecodeError as exc:
        raise TemplateError(f"front matter is not valid TOML: {exc}", template=path) from exc
    return data, "\n".join(lines[end + 1 :]), end + 2


def compile_text(environment: jinja2.Environment, source: str, *, path: str) -> TextTemplate:
    data, body, first_line = _split(source, path=path)
    if data:
        raise TemplateError(
            f"unknown front matter key(s) {', '.join(map(repr, data))}; this file takes none",
            template=path,
        )
    return TextTemplate(
        path=path,
        source=source,
        body=compile_template(environment, body, origin=path, first_line=first_line),
    )


def compile_sms(environment: jinja2.Environment, source: str, *, path: str) -> SmsTemplate:
    data, body, first_line = _split(source, path=path)
    unknown = set(data) - {"max_segments"}
    if unknown:
        raise TemplateError(
            f"unknown front matter key(s) {', '.join(sorted(map(repr, unknown)))}; "
            "an SMS file takes: max_segments",
            template=path,
        )
    limit = data.get("max_segments")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise TemplateError(
            f"max_segments must be a positive integer, not {limit!r}", template=path
        )
    return SmsTemplate(
        path=path,
        source=source,
        body=compile_template(environment, body, origin=path, first_line=first_line),
        max_segments=limit,
    )


def compile_whatsapp(
    environment: jinja2.Environment, source: str, *, path: str
) -> WhatsAppTemplate:
    try:
        data = tomllib.loads(source)
    except tomllib.TOMLDecodeError as exc:
        raise TemplateError(f"not valid TOML: {exc}", template=path) from exc
    unknown = set(data) - _WHATSAPP_KEYS
    if unknown:
        raise TemplateError(
            f"unknown key(s) {', '.join(sorted(map(repr, unknown)))}; "
            f"allowed: {', '.join(sorted(_WHATSAPP_KEYS))}",
            template=path,
        )
    name = data.get("template")
    if not isinstance(name, str) or not _WHATSAPP_NAME.match(name):
        raise TemplateError(
            f"'template' must name an approved WhatsApp template (lower-case letters, digits "
            f"and underscores), not {name!r}",
            template=path,
        )
    language = data.get("language")
    if language is not None and not isinstance(language, str):
        raise TemplateError(f"'language' must be a string, not {language!r}", template=path)
    parameters = data.get("parameters", [])
    if not isinstance(parameters, list) or not all(isinstance(p, str) for p in parameters):
        raise TemplateError("'parameters' must be a list of Jinja expressions", template=path)
    compiled = []
    for index, expression in enumerate(parameters, 1):
        if not expression.strip() or "}}" in expression or "{%" in expression:
            raise TemplateError(
                f"parameter {index} must be one Jinja expression such as "
                f"'contact.first_name', not {expression!r}",
                template=path,
            )
        compiled.append(
            compile_template(
                environment,
                "{{ (" + expression + ") }}",
                origin=path,
                filename=f"{path}#parameter{index}",
            )
        )
    return WhatsAppTemplate(
        path=path,
        source=source,
        template=name,
        language=language,
        parameters=tuple(compiled),
    )
