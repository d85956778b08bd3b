"""Turning a queued outbox row into a rendered :class:`~onetomany.model.Message`.

Rendering happens at dispatch time, not when the touch is queued, so a fixed template or a
corrected profile applies to rows still waiting. A row that cannot be rendered (missing
variable, no address for the channel, no consent) raises
:class:`~onetomany.errors.PermanentDeliveryError`, and the dispatcher dead-letters it with the
reason.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import attrs

from onetomany.delivery.mime import mailbox
from onetomany.delivery.sms import count_segments
from onetomany.errors import PermanentDeliveryError, TemplateError
from onetomany.model import Account, ChannelKind, Contact, Message
from onetomany.model.clock import Clock, SystemClock
from onetomany.program import Program
from onetomany.rules.tracking_links import LinkRewriter, nps_link
from onetomany.rules.unsubscribe import make_token
from onetomany.store import OutboxRow
from onetomany.templating import TemplateSet
from onetomany.templating.channels import WhatsAppTemplate
from onetomany.templating.locales import canonical_locale


def _fields(value: Account | Contact) -> dict[str, Any]:
    # A shallow copy: the traits and consent mappings are shared, not copied (attrs.asdict's
    # deep copy cost more than the rest of the context), as templates run in a sandbox that
    # cannot change them.
    names = _TEMPLATE_FIELDS.get(type(value)) or _template_fields(type(value))
    return {name: getattr(value, name) for name in names}


def _template_fields(cls: type[Account | Contact]) -> tuple[str, ...]:
    # ``given`` is how a value was built (for identify's merge), not data a template shows.
    return tuple(field.name for field in attrs.fields(cls) if field.name != "given")


_TEMPLATE_FIELDS = {cls: _template_fields(cls) for cls in (Account, Contact)}


def contact_context(contact: Contact) -> dict[str, Any]:
    return _fields(contact) | {"first_name": contact.first_name}


def account_context(account: Account | None) -> dict[str, Any]:
    if account is None:
        return {"id": None, "name": "", "traits": {}}
    return _fields(account)


def recipient(contact: Contact, kind: ChannelKind, account: Account | None) -> str:
    """The address ``kind`` reaches ``contact`` at, after checking consent.

    A CSM task goes to the account's owner, not to the contact, so the contact's consent
    does not apply to it.
    """
    if kind is not ChannelKind.CSM and not contact.allows(kind):
        raise PermanentDeliveryError(f"contact {contact.id!r} has not consented to {kind}")
    if kind is ChannelKind.EMAIL:
        address = mailbox(contact.name, contact.email) if contact.email else None
    elif kind in (ChannelKind.SMS, ChannelKind.WHATSAPP):
        address = contact.phone
    elif kind is ChannelKind.CSM:
        owner = account.traits.get("owner") if account else None
        address = str(owner) if owner else None
    else:
        address = contact.id
    if not address:
        field = {ChannelKind.EMAIL: "email address", ChannelKind.CSM: "account owner"}.get(
            kind, "phone number"
        )
        raise PermanentDeliveryError(f"contact {contact.id!r} has no {field} for {kind}")
    return address


def csm_task(
    row: OutboxRow, contact: Contact, account: Account | None, *, owner: str
) -> dict[str, Any]:
    """What a CSM needs beside the rendered text: whom to call, why, and what came before.

    ``reason`` and ``ladder`` (the earlier steps, each with its touch, channel, key and send
    time) come from an escalation step's payload; other CSM touches say which touch fired.
    """
    escalation = row.payload.get("escalation")
    escalation = escalation if isinstance(escalation, Mapping) else {}
    return {
        "owner": owner,
        "account": {"id": account.id, "name": account.name} if account else None,
        "contact": {
            "id": contact.id,
            "name": contact.name,
            "email": contact.email,
            "phone": contact.phone,
            "role": contact.role,
        },
        "reason": escalation.get("reason") or f"touch {row.touch!r} fired",
        "ladder": list(escalation.get("steps", [])),
        "queued_at": row.available_at.isoformat(),
    }


class Composer:
    """Renders outbox rows with a program's templates, per channel kind.

    * EMAIL (and CSM): the ``.mjml`` template: HTML, text, subject, preheader. A CSM
      message is addressed to the account's ``owner`` trait, and ``data["task"]`` holds
      :func:`csm_task` (the contact to reach, the reason, the ladder history).
    * SMS: the ``.sms.txt`` template -> ``text``; ``data`` holds ``sms_encoding`` (``GSM-7`` or
      ``UCS-2``) and ``sms_segments``. More segments than the file's ``max_segments`` (else
      ``max_sms_segments``) is a PermanentDeliveryError naming the template.
    * WHATSAPP: ``.whatsapp.toml`` -> ``data`` holds ``whatsapp_template``,
      ``whatsapp_language`` and ``whatsapp_parameters`` (``text`` is empty); or
      ``.whatsapp.txt`` -> ``text`` (a session message).
    * INAPP: ``subject`` is the front matter ``title`` (else the subject), ``text`` the
      ``.inapp.txt`` rendering (else the email's text), ``url`` the front matter ``url``.

    Every kind picks its files' variant from the contact's locale and role.
    """

    def __init__(
        self,
        program: Program,
        templates: TemplateSet,
        *,
        max_sms_segments: int = 3,
        clock: Clock | None = None,
    ) -> None:
        if max_sms_segments < 1:
            raise ValueError(f"max_sms_segments must be positive, not {max_sms_segments}")
        self.program = program
        self.templates = templates
        self.max_sms_segments = max_sms_segments
        #: Dates the unsubscribe tokens (their expiry).
        self.clock = clock or SystemClock()
        self._topics = {t.name: t.topic for t in program.touches}
        self._untracked = {t.name for t in program.touches if not t.track}

    def links(self, row: OutboxRow, contact: Contact) -> dict[str, Any]:
        """``unsubscribe_url`` and ``preferences_url`` for ``row``'s recipient, and the
        List-Unsubscribe headers (RFC 2369 and RFC 8058 one-click) when the touch's topic is
        not transactional. The links carry a signed token (``[unsubscribe]``); a
        ``[program] unsubscribe_url`` without one is substituted as before."""
        settings = self.program.unsubscribe
        found: dict[str, Any] = {"unsubscribe_url": "", "preferences_url": "", "headers": {}}
        token = ""
        if settings.enabled:
            topic = self._topics.get(row.touch)
            now = self.clock.now()
            token = make_token(settings, contact.id, topic, now=now)
            if settings.preferences_url:
                found["preferences_url"] = settings.link(
                    settings.preferences_url, make_token(settings, contact.id, None, now=now)
                )
            declared = self.program.topics.get(topic) if topic else None
            if settings.url:
                found["unsubscribe_url"] = settings.link(settings.url, token)
            if not (declared and declared.transactional):
                found["headers"] = list_unsubscribe(
                    settings.link(settings.url, token) if settings.url else "",
                    settings.mailto,
                    token,
                )
        if self.program.unsubscribe_url and not found["unsubscribe_url"]:
            # Plain substitution, not str.format: the URL comes from configuration and
            # format() would let it reach attributes of the values.
            found["unsubscribe_url"] = _substitute(
                self.program.unsubscribe_url,
                {"contact_id": contact.id, "key": row.idempotency_key, "token": token},
            )
        return found

    def context(
        self,
        row: OutboxRow,
        contact: Contact,
        account: Account | None,
        links: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        base: dict[str, Any] = {
            "contact": contact_context(contact),
            "account": account_context(account),
            "touch": {"name": row.touch, "key": row.idempotency_key},
            "event": row.payload.get("event"),
            # A cadence's firing ({"at", "local", "number", "since", ...}), and the account's
            # events between the previous firing (or the anchor) and this one, for recaps.
            "occurrence": row.payload.get("cadence"),
            "activity": row.payload.get("activity") or [],
            "escalation": row.payload.get("escalation"),
            "program": {"name": self.program.name, "constants": dict(self.program.constants)},
            "locale": contact.locale,
            "timezone": contact.timezone,
        }
        links = links if links is not None else self.links(row, contact)
        base["unsubscribe_url"] = links["unsubscribe_url"]
        base["preferences_url"] = links["preferences_url"]
        if self.program.tracking.enabled:
            # ``{{ nps_url(9) }}``: a signed link answering 9 to this message (web app /nps).
            base["nps_url"] = functools.partial(
                nps_link, self.program.tracking, self.program.unsubscribe, row.idempotency_key
            )
        return base

    def compose(
        self,
        row: OutboxRow,
        *,
        contact: Contact,
        account: Account | None,
        kind: ChannelKind,
        extra: Mapping[str, Any] | None = None,
    ) -> Message:
        to = recipient(contact, kind, account)
        links = self.links(row, contact)
        context = self.context(row, contact, account, links)
        headers = links["headers"] if kind is ChannelKind.EMAIL else {}
        try:
            fields = self.render_fields(
                row.template, context, kind=kind, locale=contact.locale, persona=contact.role
            )
        except TemplateError as exc:
            raise PermanentDeliveryError(f"template {row.template!r}: {exc}") from exc
        if kind is ChannelKind.EMAIL and fields.get("html"):
            fields.update(self.tracked(row, fields["html"], fields.get("text"), links))
        data = {**fields.pop("data"), **(extra or {})}
        if kind is ChannelKind.CSM:
            data.setdefault("task", csm_task(row, contact, account, owner=to))
        if fields.get("sender") is None:
            fields["sender"] = self.program.sender or None
        return Message(
            idempotency_key=row.idempotency_key,
            channel=row.channel,
            kind=kind,
            to=to,
            touch=row.touch,
            contact_id=contact.id,
            account_id=contact.account_id or row.account_id,
            data=data,
            headers=headers,
            **fields,
        )

    def tracked(
        self, row: OutboxRow, body: str, text: str | None, links: Mapping[str, Any]
    ) -> dict[str, str]:
        """The ``html`` part with its links signed through the web app and an open pixel, and
        the ``text`` part's links signed with the same tokens, when ``[tracking]`` is set and
        the touch does not say ``track = false``."""
        if not self.program.tracking.enabled or row.touch in self._untracked:
            return {"html": body}
        rewriter = LinkRewriter(
            key=row.idempotency_key,
            touch=row.touch,
            settings=self.program.tracking,
            keys=self.program.unsubscribe,
            keep={links["unsubscribe_url"], links["preferences_url"]} - {""},
        )
        parts = {"html": rewriter.html(body)}
        if text:
            parts["text"] = rewriter.text(text)
        return parts

    def render_fields(
        self,
        template: str,
        context: Mapping[str, Any],
        *,
        kind: ChannelKind,
        locale: str | None,
        persona: str | None,
    ) -> dict[str, Any]:
        """The Message fields (``subject``, ``preheader``, ``html``, ``text``, ``sender``,
        ``reply_to``, ``url``, ``data``) of ``template`` rendered for ``kind``. Raises
        TemplateError, or PermanentDeliveryError for an SMS over its segment limit."""
        templates = self.templates
        if kind is ChannelKind.SMS:
            return self._sms(template, context, locale=locale, persona=persona)
        if kind is ChannelKind.WHATSAPP:
            whatsapp = templates.whatsapp(template, locale=locale, persona=persona)
            if whatsapp is None:
                raise TemplateError(
                    f"no {template}.whatsapp.toml or {template}.whatsapp.txt for the WhatsApp "
                    "channel",
                    template=template,
                )
            if isinstance(whatsapp, WhatsAppTemplate):
                rendered = whatsapp.render(
                    context, locale=canonical_locale(locale, template=template) if locale else None
                )
                return {
                    "text": "",
                    "data": {
                        "whatsapp_template": rendered.template,
                        "whatsapp_language": rendered.language,
                        "whatsapp_parameters": rendered.parameters,
                    },
                }
            return {"text": whatsapp.render(context), "data": {}}
        email = templates.render(template, context, locale=locale, persona=persona)
        fields: dict[str, Any] = {
            "subject": email.subject,
            "preheader": email.preheader,
            "html": email.html,
            "text": email.text,
            "sender": email.sender,
            "reply_to": email.reply_to,
            "url": email.url,
            "data": {},
        }
        if kind is ChannelKind.INAPP:
            fields["subject"] = email.title or email.subject
            body = templates.inapp_text(template, locale=locale, persona=persona)
            if body is not None:
                fields["text"] = body.render(context)
        return fields

    def _sms(
        self,
        template: str,
        context: Mapping[str, Any],
        *,
        locale: str | None,
        persona: str | None,
    ) -> dict[str, Any]:
        sms = self.templates.sms(template, locale=locale, persona=persona)
        if sms is None:
            raise TemplateError(f"no {template}.sms.txt for the SMS channel", template=template)
        text = sms.render(context)
        counted = count_segments(text)
        limit = sms.max_segments or self.max_sms_segments
        if counted.segments > limit:
            raise PermanentDeliveryError(
                f"template {sms.path!r}: the SMS takes {counted.segments} {counted.encoding} "
                f"segments ({counted.units} characters), over the limit of {limit}"
            )
        return {
            "text": text,
            "data": {"sms_encoding": counted.encoding, "sms_segments": counted.segments},
        }


def list_unsubscribe(url: str, mailto: str, token: str) -> dict[str, str]:
    """The RFC 2369 ``List-Unsubscribe`` header (the https link, then a mailto: carrying the
    token in its subject) and, with a link, RFC 8058's ``List-Unsubscribe-Post``."""
    targets = [f"<{url}>"] if url else []
    if mailto:
        targets.append(f"<mailto:{mailto}?subject={quote('unsubscribe ' + token, safe='')}>")
    if not targets:
        return {}
    headers = {"List-Unsubscribe": ", ".join(targets)}
    if url:
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return headers


def _substitute(url: str, values: Mapping[str, str]) -> str:
    """``url`` with each ``{name}`` of ``values`` replaced by the value, percent-encoded
    (``quote`` is only called for the names the URL holds: it costs microseconds per call)."""
    for name, value in values.items():
        placeholder = f"{{{name}}}"
        if placeholder in url:
            url = url.replace(placeholder, quote(value, safe=""))
    return url
