"""Turning a queued outbox row into a rendered :class:`~onetomany.model.Message`.

Rendering happens at dispatch time, not when the touch is queued, so a fixed template or a
corrected profile applies to rows still waiting. A row that cannot be rendered (missing
variable, no address for the channel, no consent) raises
:class:`~onetomany.errors.PermanentDeliveryError`, and the dispatcher dead-letters it with the
reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from email.utils import formataddr
from typing import Any
from urllib.parse import quote

import attrs

from onetomany.errors import PermanentDeliveryError, TemplateError
from onetomany.model import Account, ChannelKind, Contact, Message
from onetomany.program import Program
from onetomany.store import OutboxRow
from onetomany.templating import TemplateSet


def contact_context(contact: Contact) -> dict[str, Any]:
    return attrs.asdict(contact) | {"first_name": contact.first_name}


def account_context(account: Account | None) -> dict[str, Any]:
    if account is None:
        return {"id": None, "name": "", "traits": {}}
    return attrs.asdict(account)


def recipient(contact: Contact, kind: ChannelKind, account: Account | None) -> str:
    """The address ``kind`` reaches ``contact`` at, after checking consent."""
    if not contact.allows(kind):
        raise PermanentDeliveryError(f"contact {contact.id!r} has not consented to {kind}")
    if kind is ChannelKind.EMAIL:
        address = formataddr((contact.name, contact.email)) if contact.email else None
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


class Composer:
    """Renders outbox rows with a program's templates."""

    def __init__(self, program: Program, templates: TemplateSet) -> None:
        self.program = program
        self.templates = templates

    def context(self, row: OutboxRow, contact: Contact, account: Account | None) -> dict[str, Any]:
        base: dict[str, Any] = {
            "contact": contact_context(contact),
            "account": account_context(account),
            "touch": {"name": row.touch, "key": row.idempotency_key},
            "event": row.payload.get("event"),
            "program": {"name": self.program.name, "constants": dict(self.program.constants)},
            "unsubscribe_url": "",
        }
        if self.program.unsubscribe_url:
            # Plain substitution, not str.format: the URL comes from configuration and
            # format() would let it reach attributes of the values.
            base["unsubscribe_url"] = self.program.unsubscribe_url.replace(
                "{contact_id}", quote(contact.id, safe="")
            ).replace("{key}", quote(row.idempotency_key, safe=""))
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
        try:
            rendered = self.templates.render(row.template, self.context(row, contact, account))
        except TemplateError as exc:
            raise PermanentDeliveryError(f"template {row.template!r}: {exc}") from exc
        return Message(
            idempotency_key=row.idempotency_key,
            channel=row.channel,
            kind=kind,
            to=to,
            touch=row.touch,
            contact_id=contact.id,
            account_id=contact.account_id or row.account_id,
            subject=rendered.subject,
            preheader=rendered.preheader,
            html=rendered.html,
            text=rendered.text,
            sender=rendered.sender or self.program.sender or None,
            reply_to=rendered.reply_to,
            url=rendered.url,
            data=dict(extra or {}),
        )
