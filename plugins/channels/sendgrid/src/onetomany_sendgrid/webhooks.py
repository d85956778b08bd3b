"""SendGrid's signed Event Webhook, read into
:class:`~onetomany.delivery.webhooks.ProviderEvent` values for the web app's
``/webhooks/<channel>``. Pure: no I/O.

A request is taken only when the channel sets ``webhook_public_key`` and the ECDSA signature
in ``X-Twilio-Email-Event-Webhook-Signature`` holds over the timestamp header and the raw
body (:mod:`onetomany_sendgrid.signing`), and when that timestamp lies within
``webhook_max_age_seconds`` of the engine's clock: a captured request replayed later is
refused. Each event is recorded once, by its ``sg_event_id``.

A body is a JSON array of events. Each maps back to the outbox row by the ``onetomany_key``
custom argument the channel attached (SendGrid copies custom arguments onto the event);
events without it are another sender's on the same account and are acknowledged, unread.
What is read:

============================  ================================================================
SendGrid event                recorded as
============================  ================================================================
``delivered``                 delivered
``bounce``                    bounced; hard when its ``type`` is ``bounce`` (``blocked`` is a
                              soft, often reputation, refusal): suppressed
``dropped``                   bounced (SendGrid would not send it); hard when the reason is a
                              bounced or invalid address
``spamreport``                complained: suppressed
``open``                      opened; ``sg_machine_open`` or a proxy's user agent flags it
``click``                     clicked, with the ``url``
``unsubscribe``,              unsubscribed (SendGrid's own unsubscribe link or group)
``group_unsubscribe``
============================  ================================================================

``processed``, ``deferred`` and ``group_resubscribe`` are acknowledged and not recorded.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from onetomany.delivery.channels import Channel
from onetomany.delivery.webhooks import ProviderEvent, WebhookRefused, WebhookRequest
from onetomany.rules.machine_opens import machine_open
from onetomany_sendgrid import signing
from onetomany_sendgrid.channel import SendGridOptions
from onetomany_sendgrid.wire import KEY_ARG

SIGNATURE_HEADER = "x-twilio-email-event-webhook-signature"
TIMESTAMP_HEADER = "x-twilio-email-event-webhook-timestamp"
#: ``dropped`` reasons that say the address itself is dead.
HARD_DROP_REASONS = ("bounced address", "invalid")
KINDS = {
    "delivered": "delivered",
    "bounce": "bounced",
    "dropped": "bounced",
    "spamreport": "complained",
    "open": "opened",
    "click": "clicked",
    "unsubscribe": "unsubscribed",
    "group_unsubscribe": "unsubscribed",
}


def authenticate(options: SendGridOptions, request: WebhookRequest) -> None:
    """Raise WebhookRefused (401) unless the request is signed by the channel's key, at a
    time within the replay window."""
    if not options.webhook_public_key:
        raise WebhookRefused(
            "this channel takes no webhooks: set webhook_public_key to the Event Webhook's "
            "verification key",
            status=401,
        )
    signature = request.headers.get(SIGNATURE_HEADER, "")
    timestamp = request.headers.get(TIMESTAMP_HEADER, "")
    if not signature or not timestamp:
        raise WebhookRefused(
            f"the request is not signed (no {SIGNATURE_HEADER} and {TIMESTAMP_HEADER})",
            status=401,
        )
    key = signing.load_public_key(options.webhook_public_key)
    if not signing.valid(key, signature, timestamp, request.body):
        raise WebhookRefused("the Event Webhook signature does not hold", status=401)
    if not timestamp.isdigit():
        raise WebhookRefused(f"{TIMESTAMP_HEADER} {timestamp[:20]!r} is not a Unix time")
    age = request.now.timestamp() - int(timestamp)
    if abs(age) > options.webhook_max_age_seconds:
        raise WebhookRefused(
            f"the request was signed {age:.0f} s from now, outside the replay window "
            f"({options.webhook_max_age_seconds:g} s); refused as a replay",
            status=401,
        )


def _text(event: Mapping[str, Any], field: str) -> str:
    value = event.get(field)
    if not isinstance(value, str | int) or isinstance(value, bool) or value == "":
        raise WebhookRefused(f"the {event.get('event')} event has no {field}")
    return str(value)


def _time(event: Mapping[str, Any]) -> datetime:
    value = event.get("timestamp")
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise WebhookRefused(
            f"the {event.get('event')} event's timestamp {value!r} is not a Unix time"
        )
    return datetime.fromtimestamp(value, tz=UTC)


def read_event(event: Mapping[str, Any]) -> ProviderEvent | None:
    """The event one element of the body describes, or None for one not read."""
    name = event.get("event")
    kind = KINDS.get(str(name))
    if kind is None:
        return None
    key = event.get(KEY_ARG)
    if key is None:
        return None  # not sent through onetomany
    event_id = _text(event, "sg_event_id")
    at = _time(event)
    address = _text(event, "email")
    properties: dict[str, Any] = {"sendgrid_event": name}
    if isinstance(event.get("sg_message_id"), str):
        properties["provider_message_id"] = event["sg_message_id"]
    hard = False
    if name == "bounce":
        bounce_type = str(event.get("type", "bounce"))
        hard = bounce_type == "bounce"
        properties |= {"type": bounce_type, "description": str(event.get("reason", ""))[:500]}
    elif name == "dropped":
        reason = str(event.get("reason", ""))
        hard = reason.lower().startswith(HARD_DROP_REASONS)
        properties |= {"type": "dropped", "description": reason[:500]}
    elif name == "open":
        agent = str(event.get("useragent", ""))
        properties["user_agent"] = agent[:300]
        machine = "sg_machine_open" if event.get("sg_machine_open") is True else None
        machine = machine or machine_open(agent, sent_at=None, opened_at=at)
        if machine is not None:
            properties |= {"machine": True, "machine_reason": machine}
    elif name == "click":
        properties["url"] = _text(event, "url")[:2000]
    return ProviderEvent(
        id=event_id,
        kind=kind,
        key=str(key),
        at=at,
        address=address,
        hard=hard,
        properties=properties,
    )


def parse_webhook(channel: Channel, request: WebhookRequest) -> list[ProviderEvent]:
    """The events of one signed Event Webhook request to ``channel``; WebhookRefused says why
    another is refused (then nothing of it is recorded)."""
    options = channel.options
    if not isinstance(options, SendGridOptions):
        raise WebhookRefused(f"channel {channel.settings.name!r} is not a SendGrid channel")
    authenticate(options, request)
    try:
        document = json.loads(request.body)
    except (ValueError, RecursionError) as exc:
        raise WebhookRefused(f"the body is not JSON: {exc}"[:200]) from exc
    if not isinstance(document, list) or not all(isinstance(e, dict) for e in document):
        raise WebhookRefused("the body is not a JSON array of event objects")
    events = [read_event(event) for event in document]
    return [event for event in events if event is not None]
