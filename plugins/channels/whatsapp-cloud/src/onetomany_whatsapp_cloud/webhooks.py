"""The WhatsApp Cloud API's webhooks, read into
:class:`~onetomany.delivery.webhooks.ProviderEvent` values for the web app's
``/webhooks/<channel>``.

Meta checks the endpoint once with a GET (``hub.mode=subscribe``, ``hub.verify_token``,
``hub.challenge``): the answer is the challenge when the token is the channel's
``verify_token``. Every POST is signed: ``X-Hub-Signature-256`` is ``sha256=`` and the hex
HMAC-SHA256 of the raw body keyed with the app's secret (``app_secret``). A channel without
the secret takes no webhooks.

A ``messages`` change carries, for the channel's own number (``metadata.phone_number_id``;
changes for other numbers of the account are left alone):

- ``statuses``: ``delivered`` (delivered), ``read`` (opened), ``failed`` (bounced; never hard,
  since a number that is not on WhatsApp may still take SMS, and the suppression list is for
  every channel); ``sent`` is acknowledged. Each maps back to the outbox row by the key the
  channel attached (``biz_opaque_callback_data``), and is recorded once, by the message id and
  status. A status dated before ``webhook_max_age_hours`` is refused as a replay.
- ``messages``: what the contact wrote, recorded as ``whatsapp_inbound`` for each contact with
  that phone number, once per message id: it opens WhatsApp's 24-hour window for session text
  (:mod:`onetomany.delivery.policies.whatsapp_window`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from onetomany.delivery.channels import Channel
from onetomany.delivery.policies.whatsapp_window import INBOUND_EVENT
from onetomany.delivery.webhooks import (
    INBOUND,
    ProviderEvent,
    WebhookRefused,
    WebhookReply,
    WebhookRequest,
)
from onetomany_whatsapp_cloud.channel import WhatsAppCloudOptions, recipient

#: The statuses read, and the event each one is.
STATUSES = {"delivered": "delivered", "read": "opened", "failed": "bounced"}


def body_signature(app_secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` Meta sends with ``body``."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def handshake(options: WhatsAppCloudOptions, query: str) -> None:
    """Answer Meta's verification GET (WebhookReply with the challenge), or refuse it."""
    fields = {k: v[0] for k, v in parse_qs(query).items()}
    token = fields.get("hub.verify_token", "")
    if not options.verify_token:
        raise WebhookRefused("this channel takes no webhooks: set verify_token", status=403)
    if fields.get("hub.mode") != "subscribe" or not hmac.compare_digest(
        token.encode(), options.verify_token.encode()
    ):
        raise WebhookRefused(
            "the verification request's hub.verify_token does not match", status=403
        )
    raise WebhookReply(fields.get("hub.challenge", ""))


def _time(value: object) -> datetime:
    try:
        return datetime.fromtimestamp(int(str(value)), tz=UTC)
    except (ValueError, OverflowError, OSError) as exc:
        raise WebhookRefused(f"timestamp {str(value)[:20]!r} is not Unix seconds") from exc


def _values(document: Mapping[str, Any], phone_number_id: str) -> Iterator[Mapping[str, Any]]:
    """The ``value`` of each ``messages`` change for ``phone_number_id``."""
    if document.get("object") != "whatsapp_business_account":
        raise WebhookRefused("the body is not a WhatsApp Business Account webhook")
    entries = document.get("entry")
    if not isinstance(entries, list):
        raise WebhookRefused("the webhook has no entry list")
    for entry in entries:
        changes = entry.get("changes") if isinstance(entry, Mapping) else None
        for change in changes if isinstance(changes, list) else []:
            value = change.get("value") if isinstance(change, Mapping) else None
            if not (isinstance(change, Mapping) and change.get("field") == "messages"):
                continue
            if not isinstance(value, Mapping):
                raise WebhookRefused("a messages change has no value object")
            metadata = value.get("metadata")
            if isinstance(metadata, Mapping) and str(metadata.get("phone_number_id")) == (
                phone_number_id
            ):
                yield value


def _status(status: Mapping[str, Any]) -> ProviderEvent | None:
    kind = STATUSES.get(str(status.get("status")))
    if kind is None:
        return None
    wamid = str(status.get("id") or "")
    if not wamid:
        raise WebhookRefused("a status has no message id")
    properties: dict[str, Any] = {"provider_message_id": wamid, "status": status["status"]}
    errors = status.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], Mapping):
        properties["error_code"] = str(errors[0].get("code", ""))[:10]
        properties["error"] = str(errors[0].get("title", ""))[:300]
    key = status.get("biz_opaque_callback_data")
    return ProviderEvent(
        id=f"{wamid}:{status['status']}",
        kind=kind,
        key=str(key) if key else None,
        at=_time(status.get("timestamp")),
        properties=properties,
    )


def _inbound(message: Mapping[str, Any]) -> ProviderEvent:
    wamid = str(message.get("id") or "")
    phone = recipient("+" + str(message.get("from", "")), region=None)
    if not wamid or phone is None:
        raise WebhookRefused("an inbound message has no id or no sender number")
    return ProviderEvent(
        id=f"inbound:{wamid}",
        kind=INBOUND,
        name=INBOUND_EVENT,
        key=None,
        at=_time(message.get("timestamp")),
        address="+" + phone,
        properties={"provider_message_id": wamid, "type": str(message.get("type", ""))[:40]},
    )


def parse_webhook(channel: Channel, request: WebhookRequest) -> list[ProviderEvent]:
    """The events of one WhatsApp Cloud API webhook to ``channel`` once its signature holds;
    WebhookReply answers the verification GET; WebhookRefused says why another is refused."""
    options = channel.options
    if not isinstance(options, WhatsAppCloudOptions):
        raise WebhookRefused(f"channel {channel.settings.name!r} is not a WhatsApp Cloud channel")
    if request.method == "GET":
        handshake(options, request.query)
    if not options.app_secret:
        raise WebhookRefused("this channel takes no webhooks: set app_secret", status=401)
    given = request.headers.get("x-hub-signature-256", "")
    expected = body_signature(options.app_secret, request.body)
    if not given:
        raise WebhookRefused("the webhook has no X-Hub-Signature-256", status=401)
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise WebhookRefused("the X-Hub-Signature-256 does not match the body", status=401)
    try:
        document = json.loads(request.body)
    except (ValueError, RecursionError) as exc:
        raise WebhookRefused(f"the body is not JSON: {exc}"[:200]) from exc
    if not isinstance(document, dict):
        raise WebhookRefused("the body is not a JSON object")
    events: list[ProviderEvent] = []
    for value in _values(document, options.phone_number_id):
        for status in value.get("statuses") or []:
            event = _status(status) if isinstance(status, Mapping) else None
            if event is not None:
                events.append(event)
        for message in value.get("messages") or []:
            if isinstance(message, Mapping):
                events.append(_inbound(message))
    oldest = request.now - timedelta(hours=options.webhook_max_age_hours)
    for event in events:
        if event.at < oldest:
            raise WebhookRefused(
                f"event {event.id[:80]!r} is dated {event.at.isoformat()}, before the replay "
                f"window ({options.webhook_max_age_hours:g} hours); refused as a replay"
            )
    return events
