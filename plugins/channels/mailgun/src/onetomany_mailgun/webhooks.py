"""Mailgun's signed webhooks, read into :class:`~onetomany.delivery.webhooks.ProviderEvent`
values for the web app's ``/webhooks/<channel>``. No I/O.

Each request is one JSON object: ``signature`` (``timestamp``, ``token``, ``signature``) and
``event-data``. A request is taken only when the channel sets ``webhook_signing_key`` and
``signature`` is the hex HMAC-SHA256 of ``timestamp`` followed by ``token`` under that key
(compared in constant time), when ``timestamp`` lies within ``webhook_max_age_seconds`` of
the engine's clock, and when the token was not taken before with another body
(:mod:`onetomany_mailgun.tokens`). Each event is recorded once, by its ``event-data.id``.

The event maps back to the outbox row by the ``onetomany-key`` user variable the channel
attached (``v:onetomany-key``); an event without it is another sender's on the same domain and
is acknowledged, unread. What is read:

=================================  =====================================================
Mailgun event                      recorded as
=================================  =====================================================
``delivered``                      delivered
``failed``, severity ``permanent`` bounced, hard: the address is suppressed
``failed``, severity ``temporary`` bounced, soft (Mailgun retries it by itself)
``complained``                     complained: the address is suppressed
``opened``                         opened; a proxy's user agent flags it as a machine's
``clicked``                        clicked, with the ``url``
``unsubscribed``                   unsubscribed (Mailgun's own unsubscribe link)
=================================  =====================================================

``accepted``, ``rejected`` and ``stored`` are acknowledged and not recorded.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from onetomany.delivery.channels import Channel
from onetomany.delivery.webhooks import ProviderEvent, WebhookRefused, WebhookRequest
from onetomany.rules.machine_opens import machine_open
from onetomany_mailgun.channel import MailgunChannel, MailgunOptions
from onetomany_mailgun.wire import KEY_VARIABLE

KINDS = {
    "delivered": "delivered",
    "failed": "bounced",
    "complained": "complained",
    "opened": "opened",
    "clicked": "clicked",
    "unsubscribed": "unsubscribed",
}


def signature_of(key: str, timestamp: str, token: str) -> str:
    """The hex HMAC-SHA256 Mailgun sends for ``timestamp`` and ``token``."""
    return hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()


def authenticate(options: MailgunOptions, signed: object, now: datetime) -> tuple[str, float]:
    """``(token, timestamp)`` of a request whose signature holds within the replay window;
    WebhookRefused (401) otherwise."""
    if not options.webhook_signing_key:
        raise WebhookRefused(
            "this channel takes no webhooks: set webhook_signing_key to Mailgun's HTTP webhook "
            "signing key",
            status=401,
        )
    if not isinstance(signed, Mapping):
        raise WebhookRefused("the request is not signed (no signature object)", status=401)
    timestamp, token, signature = (
        str(signed.get(name, "")) for name in ("timestamp", "token", "signature")
    )
    if not (timestamp and token and signature):
        raise WebhookRefused(
            "the signature object lacks its timestamp, token or signature", status=401
        )
    expected = signature_of(options.webhook_signing_key, timestamp, token)
    if not hmac.compare_digest(signature.lower().encode(), expected.encode()):
        raise WebhookRefused("the webhook signature does not hold", status=401)
    if not timestamp.isdigit():
        raise WebhookRefused(f"the signed timestamp {timestamp[:20]!r} is not a Unix time")
    age = now.timestamp() - int(timestamp)
    if abs(age) > options.webhook_max_age_seconds:
        raise WebhookRefused(
            f"the request was signed {age:.0f} s from now, outside the replay window "
            f"({options.webhook_max_age_seconds:g} s); refused as a replay",
            status=401,
        )
    return token, float(timestamp)


def _text(event: Mapping[str, Any], field: str) -> str:
    value = event.get(field)
    if not isinstance(value, str | int | float) or isinstance(value, bool) or value == "":
        raise WebhookRefused(f"the {event.get('event')} event has no {field}")
    return str(value)


def read_event(event: Mapping[str, Any]) -> ProviderEvent | None:
    """The event an ``event-data`` object describes, or None for one not read."""
    name = str(event.get("event"))
    kind = KINDS.get(name)
    if kind is None:
        return None
    variables = event.get("user-variables")
    key = variables.get(KEY_VARIABLE) if isinstance(variables, Mapping) else None
    if key is None:
        return None  # not sent through onetomany
    event_id = _text(event, "id")
    stamp = event.get("timestamp")
    if not isinstance(stamp, int | float) or isinstance(stamp, bool) or stamp < 0:
        raise WebhookRefused(f"the {name} event's timestamp {stamp!r} is not a Unix time")
    at = datetime.fromtimestamp(stamp, tz=UTC)
    properties: dict[str, Any] = {"mailgun_event": name}
    message = event.get("message")
    headers = message.get("headers") if isinstance(message, Mapping) else None
    if isinstance(headers, Mapping) and isinstance(headers.get("message-id"), str):
        properties["provider_message_id"] = headers["message-id"]
    hard = False
    if name == "failed":
        severity = str(event.get("severity", ""))
        hard = severity == "permanent"
        status = event.get("delivery-status")
        description = (
            status.get("description") or status.get("message")
            if isinstance(status, Mapping)
            else ""
        )
        properties |= {
            "type": f"{severity or 'unknown'}:{event.get('reason', '')}",
            "description": str(description or "")[:500],
        }
    elif name == "opened":
        client = event.get("client-info")
        agent = str(client.get("user-agent", "")) if isinstance(client, Mapping) else ""
        properties["user_agent"] = agent[:300]
        reason = machine_open(agent, sent_at=None, opened_at=at)
        if reason is not None:
            properties |= {"machine": True, "machine_reason": reason}
    elif name == "clicked":
        properties["url"] = _text(event, "url")[:2000]
    return ProviderEvent(
        id=event_id,
        kind=kind,
        key=str(key),
        at=at,
        address=str(event.get("recipient", "")),
        hard=hard,
        properties=properties,
    )


def parse_webhook(channel: Channel, request: WebhookRequest) -> list[ProviderEvent]:
    """The event of one signed Mailgun webhook request to ``channel``; WebhookRefused says
    why another is refused (then nothing of it is recorded)."""
    if not isinstance(channel, MailgunChannel):
        raise WebhookRefused(f"channel {channel.settings.name!r} is not a Mailgun channel")
    try:
        document = json.loads(request.body)
    except (ValueError, RecursionError) as exc:
        raise WebhookRefused(f"the body is not JSON: {exc}"[:200]) from exc
    if not isinstance(document, dict):
        raise WebhookRefused("the body is not a JSON object (one Mailgun webhook)")
    token, signed_at = authenticate(channel.options, document.get("signature"), request.now)
    event_data = document.get("event-data")
    if not isinstance(event_data, Mapping):
        raise WebhookRefused("the webhook has no event-data object")
    event = read_event(event_data)
    now = request.now.timestamp()
    if not channel.webhook_tokens.take(token, request.body, at=signed_at, now=now):
        raise WebhookRefused("the signed token was used before with another body", status=401)
    return [] if event is None else [event]
