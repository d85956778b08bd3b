"""Render a program's touches to files, to look at them before anyone receives them.

:func:`write_preview` renders one touch (or all) for one contact exactly as the dispatcher
would (same Composer, same variants, same filters), and writes what exists for the touch:

* ``<touch>.<locale>.html`` and ``<touch>.<locale>.txt`` (email: HTML and its text, with the
  subject and preheader as a header block at the top of the ``.txt``),
* ``<touch>.<locale>.sms.txt`` when the touch has an SMS template (with its encoding and
  segment count in a header block),
* ``<touch>.<locale>.whatsapp.txt`` when it has a WhatsApp template or session text,
* ``<touch>.<locale>.inapp.txt`` when its channel is an in-app one or it has an ``.inapp.txt``
  (title, url and body).

:func:`write_previews` does that for several sample (contact, account) pairs in several locales,
into one sub-folder per contact and locale.

Templates usually read the triggering event (``event.properties.day``); a preview has no real
event, so unless ``event`` is given, every ``event.properties`` key renders as ``[key]`` and
``event.occurred_at`` is the time of the preview.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs

from onetomany.delivery.compose import Composer
from onetomany.errors import ConfigError, DeliveryError, TemplateError
from onetomany.model import Account, ChannelKind, Contact
from onetomany.program import CadenceTrigger, Program, Touch
from onetomany.store import OutboxRow
from onetomany.templating import TemplateSet

__all__ = ["DEFAULT_LOCALES", "write_preview", "write_previews"]

DEFAULT_LOCALES = ("en", "pt-BR", "id")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class _Placeholders(dict[str, Any]):
    """Event properties for a preview: any key renders as ``[key]``."""

    def __missing__(self, key: str) -> str:
        return f"[{key}]"


def write_preview(
    program: Program,
    touch_name: str | None,
    *,
    contact: Contact,
    account: Account | None,
    locale: str | None,
    out_dir: Path,
    templates: TemplateSet | None = None,
    event: Mapping[str, Any] | None = None,
) -> list[Path]:
    """Render ``touch_name`` (``None``: every touch of the program) for ``contact`` and write
    the renderings into ``out_dir`` (created if missing); returns the paths written, in order.

    ``locale`` overrides the contact's locale (variants and filters). ``templates`` defaults to
    the program's folder with no plugin filters (the engine's set, ``engine.templates``, renders
    exactly as dispatch does). ``event`` is the ``event`` the template sees (``id``, ``name``,
    ``occurred_at``, ``properties``). An unknown touch is a ConfigError; a template that cannot
    render is a TemplateError (an SMS over its segment limit: a DeliveryError), naming it.
    """
    if templates is None:
        templates = TemplateSet(
            program.base_dir / program.templates_dir,
            constants={"constants": dict(program.constants)},
            touch_fields=program.touch_fields(),
        )
    if locale is not None:
        contact = attrs.evolve(contact, locale=locale)
    touches = _touches(program, touch_name)
    composer = Composer(program, templates)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for touch in touches:
        written += _write_touch(composer, program, touch, contact, account, event, out_dir)
    return written


def write_previews(
    program: Program,
    samples: Iterable[tuple[Contact, Account | None]],
    *,
    out_dir: Path,
    locales: Iterable[str] = DEFAULT_LOCALES,
    touch_name: str | None = None,
    templates: TemplateSet | None = None,
    event: Mapping[str, Any] | None = None,
) -> list[Path]:
    """:func:`write_preview` of ``touch_name`` (``None``: every touch) for each sample
    (contact, account) in each of ``locales``, into ``out_dir/<contact id>/<locale>/``."""
    written: list[Path] = []
    for contact, account in samples:
        for locale in locales:
            folder = out_dir / _safe(contact.id) / _safe(locale)
            written += write_preview(
                program,
                touch_name,
                contact=contact,
                account=account,
                locale=locale,
                out_dir=folder,
                templates=templates,
                event=event,
            )
    return written


def _touches(program: Program, name: str | None) -> list[Touch]:
    if name is None:
        return list(program.touches)
    for touch in program.touches:
        if touch.name == name:
            return [touch]
    known = ", ".join(t.name for t in program.touches) or "none"
    raise ConfigError(f"unknown touch {name!r}; touches: {known}", file=program.origin)


def _write_touch(
    composer: Composer,
    program: Program,
    touch: Touch,
    contact: Contact,
    account: Account | None,
    event: Mapping[str, Any] | None,
    out_dir: Path,
) -> list[Path]:
    templates = composer.templates
    row = OutboxRow(
        id=0,
        idempotency_key=f"preview-{touch.name}-{contact.id}",
        program=program.name,
        touch=touch.name,
        channel=touch.channel,
        template=touch.template,
        contact_id=contact.id,
        account_id=contact.account_id,
        event_id=None,
        payload={
            "event": dict(event) if event is not None else _preview_event(touch),
            **_preview_occurrence(touch),
        },
        status="pending",
        attempts=0,
        available_at=datetime.now(UTC),
    )
    context = composer.context(row, contact, account)
    stem = f"{_safe(touch.name)}.{_safe(contact.locale)}"
    locale, persona = contact.locale, contact.role
    written: list[Path] = []

    def write(suffix: str, text: str) -> None:
        path = out_dir / f"{stem}{suffix}"
        path.write_text(text, encoding="utf-8")
        written.append(path)

    def fields(kind: ChannelKind) -> dict[str, Any]:
        try:
            return composer.render_fields(
                touch.template, context, kind=kind, locale=locale, persona=persona
            )
        except DeliveryError as exc:
            raise TemplateError(str(exc), template=touch.template) from exc

    name = touch.template
    if templates.find(name, ".mjml", locale=locale, persona=persona) is not None:
        variant = templates.resolve(name, locale=locale, persona=persona)
        email = fields(ChannelKind.EMAIL)
        write(".html", email["html"])
        head = f"Template: {variant}.mjml\nSubject: {email['subject']}\n"
        head += f"Preheader: {email['preheader']}\n" if email["preheader"] else ""
        write(".txt", f"{head}\n{email['text']}\n")
        channel = program.channels.get(touch.channel)
        inapp = channel is not None and "inapp" in (channel.plugin, channel.options.get("kind"))
        if inapp or templates.inapp_text(name, locale=locale, persona=persona) is not None:
            card = fields(ChannelKind.INAPP)
            write(
                ".inapp.txt",
                f"Title: {card['subject']}\nURL: {card['url'] or ''}\n\n{card['text']}\n",
            )
    sms = templates.sms(name, locale=locale, persona=persona)
    if sms is not None:
        message = fields(ChannelKind.SMS)
        data = message["data"]
        write(
            ".sms.txt",
            f"Template: {sms.path}\nEncoding: {data['sms_encoding']}, "
            f"{data['sms_segments']} segment(s), {len(message['text'])} characters\n\n"
            f"{message['text']}\n",
        )
    if templates.whatsapp(name, locale=locale, persona=persona) is not None:
        message = fields(ChannelKind.WHATSAPP)
        data = message["data"]
        if "whatsapp_template" in data:
            parameters = "".join(
                f"  {{{{{index}}}}} = {value}\n"
                for index, value in enumerate(data["whatsapp_parameters"], 1)
            )
            body = (
                f"Approved template: {data['whatsapp_template']} "
                f"({data['whatsapp_language']})\nParameters:\n{parameters}"
            )
        else:
            body = f"Session message:\n\n{message['text']}\n"
        write(".whatsapp.txt", body)
    return written


def _preview_event(touch: Touch) -> dict[str, Any]:
    trigger = touch.trigger
    name = getattr(trigger, "event_name", None) or getattr(trigger, "event", None) or touch.name
    return {
        "id": "preview",
        "name": name,
        "occurred_at": datetime.now(UTC).isoformat(),
        "properties": _Placeholders(),
    }


def _preview_occurrence(touch: Touch) -> dict[str, Any]:
    """A cadence touch's first firing, with a day of sample activity to recap."""
    if not isinstance(touch.trigger, CadenceTrigger):
        return {}
    at = datetime.now(UTC)
    since = at - timedelta(days=1)
    activity = [
        {"id": f"preview-{n}", "name": name, "occurred_at": since.isoformat(), "properties": {}}
        for n, name in enumerate(("integration_connected", "report_created", "teammate_invited"))
    ]
    return {
        "cadence": {"at": at.isoformat(), "number": 1, "since": since.isoformat()},
        "activity": activity,
    }


def _safe(part: str) -> str:
    return _UNSAFE.sub("_", part) or "_"
