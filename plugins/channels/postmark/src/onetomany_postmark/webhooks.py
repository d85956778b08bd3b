"""Postmark's webhooks: delivery, bounce, spam complaint, open and click, read into
:class:`~onetomany.delivery.webhooks.ProviderEvent` values for the web app's
``/webhooks/<channel>``. Pure: no I/O.

Postmark signs nothing. Its documentation offers HTTP Basic auth written into the webhook URL
(``https://user:password@host/...``) and custom headers; we take Basic auth
(``webhook_username`` and ``webhook_password``) and a secret last path segment
(``webhook_secret_path``), and require each one the channel sets; with neither set, every
webhook is refused. Replays are bounded twice: an event dated more than
``webhook_max_age_hours`` ago is refused, and any event is recorded once, by its id.

Each event maps back to the outbox row by the ``onetomany_key`` metadata the channel attached
when it sent the message (:func:`~onetomany_postmark.wire.key_from_metadata`). Event ids: a
bounce's and a complaint's ``ID``; ``delivery:<MessageID>``; an open's and a click's
``MessageID`` with their ``ReceivedAt`` (and the link, for a click).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from onetomany.delivery.channels import Channel
from onetomany.delivery.webhooks import ProviderEvent, WebhookRefused, WebhookRequest
from onetomany.rules.machine_opens import machine_open
from onetomany_postmark.channel import PostmarkOptions
from onetomany_postmark.wire import key_from_metadata

#: Bounce types after which the address will not take mail: it goes to the suppression list.
HARD_BOUNCE_TYPES = frozenset({"HardBounce", "BadEmailAddress", "ManuallyDeactivated"})
#: Record types read; others (``SubscriptionChange``, inbound) are acknowledged and ignored.
RECORD_TYPES = frozenset({"Delivery", "Bounce", "SpamComplaint", "Open", "Click"})


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def authenticate(options: PostmarkOptions, request: WebhookRequest) -> None:
    """Raise WebhookRefused (401) unless the request carries each credential the channel
    sets; a channel that sets none takes no webhooks."""
    basic = bool(options.webhook_username or options.webhook_password)
    if not basic and not options.webhook_secret_path:
        raise WebhookRefused(
            "this channel takes no webhooks: set webhook_username and webhook_password, or "
            "webhook_secret_path",
            status=401,
        )
    if options.webhook_secret_path and not _same(request.secret_path, options.webhook_secret_path):
        raise WebhookRefused("the webhook URL's secret path does not match", status=401)
    if basic:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user = password = ""
        if scheme.lower() != "basic" or not (
            _same(user, options.webhook_username) & _same(password, options.webhook_password)
        ):
            raise WebhookRefused("the webhook's Basic auth credentials do not match", status=401)


def _text(document: Mapping[str, Any], field: str) -> str:
    value = document.get(field)
    if not isinstance(value, str | int) or isinstance(value, bool) or value == "":
        raise WebhookRefused(f"the {document.get('RecordType')} event has no {field}")
    return str(value)


def _time(document: Mapping[str, Any], field: str) -> datetime:
    text = _text(document, field)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise WebhookRefused(f"{field} {text[:40]!r} is not an ISO 8601 time") from exc
    if moment.tzinfo is None:
        raise WebhookRefused(f"{field} {text[:40]!r} has no UTC offset")
    return moment


def read_event(document: Mapping[str, Any]) -> ProviderEvent | None:
    """The event a Postmark webhook body describes, or None for a record type not read."""
    record = document.get("RecordType")
    if record not in RECORD_TYPES:
        return None
    metadata = document.get("Metadata")
    fields = {str(k): str(v) for k, v in metadata.items()} if isinstance(metadata, Mapping) else {}
    key = key_from_metadata(fields)
    message = _text(document, "MessageID")
    if record == "Delivery":
        return ProviderEvent(
            id=f"delivery:{message}",
            kind="delivered",
            key=key,
            at=_time(document, "DeliveredAt"),
            address=str(document.get("Recipient", "")),
            properties={"provider_message_id": message},
        )
    if record in ("Bounce", "SpamComplaint"):
        kind_name = str(document.get("Type", ""))
        complaint = record == "SpamComplaint" or kind_name == "SpamComplaint"
        return ProviderEvent(
            id=f"bounce:{_text(document, 'ID')}",
            kind="complained" if complaint else "bounced",
            key=key,
            at=_time(document, "BouncedAt"),
            address=str(document.get("Email", "")),
            hard=kind_name in HARD_BOUNCE_TYPES,
            properties={
                "provider_message_id": message,
                "type": kind_name,
                "description": str(document.get("Description", ""))[:500],
            },
        )
    at = _time(document, "ReceivedAt")
    agent = str(document.get("UserAgent", ""))
    if record == "Open":
        properties: dict[str, Any] = {"provider_message_id": message, "user_agent": agent[:300]}
        reason = machine_open(agent, sent_at=None, opened_at=at)
        if reason is not None:
            properties |= {"machine": True, "machine_reason": reason}
        return ProviderEvent(
            id=f"open:{message}:{at.isoformat()}",
            kind="opened",
            key=key,
            at=at,
            properties=properties,
        )
    link = _text(document, "OriginalLink")
    return ProviderEvent(
        id=f"click:{message}:{at.isoformat()}:{link}",
        kind="clicked",
        key=key,
        at=at,
        properties={"provider_message_id": message, "url": link[:2000]},
    )


def parse_webhook(channel: Channel, request: WebhookRequest) -> list[ProviderEvent]:
    """The events of one Postmark webhook request to ``channel``, once it is authenticated
    and dated within the replay window; WebhookRefused says why another is refused."""
    options = channel.options
    if not isinstance(options, PostmarkOptions):
        raise WebhookRefused(f"channel {channel.settings.name!r} is not a Postmark channel")
    authenticate(options, request)
    try:
        document = json.loads(request.body)
    except (ValueError, RecursionError) as exc:
        raise WebhookRefused(f"the body is not JSON: {exc}"[:200]) from exc
    if not isinstance(document, dict):
        raise WebhookRefused("the body is not a JSON object (one Postmark event)")
    event = read_event(document)
    if event is None:
        return []
    oldest = request.now - timedelta(hours=options.webhook_max_age_hours)
    if event.at < oldest:
        raise WebhookRefused(
            f"the event is dated {event.at.isoformat()}, before the replay window "
            f"({options.webhook_max_age_hours:g} hours); refused as a replay"
        )
    return [event]
