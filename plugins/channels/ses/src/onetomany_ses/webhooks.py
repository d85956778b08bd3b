"""SES events through Amazon SNS, read into
:class:`~onetomany.delivery.webhooks.ProviderEvent` values for the web app's
``/webhooks/<channel>``.

A configuration set's event destination publishes SES's events (``Delivery``, ``Bounce``,
``Complaint``, ``Open``, ``Click``; identity notifications with ``notificationType`` too) to an
SNS topic; an HTTPS subscription of the topic posts each one here. A request is taken only
when:

- the channel names the topic (``sns_topic_arn``) and the message comes from it;
- the SNS signature holds (:mod:`onetomany_ses.sns`: the certificate only from SNS's own
  host for the topic's region);
- the message is dated within ``webhook_max_age_hours`` (replays), and each event is recorded
  once, by the SNS ``MessageId``.

A ``SubscriptionConfirmation`` is confirmed by a GET of its ``SubscribeURL`` and records
nothing. Unlike the other parsers this one does I/O: the certificate fetch (once per URL, then
cached) and that confirmation.

Each event maps back to the outbox row by the ``onetomany_key`` tag the channel attached
(:func:`~onetomany_ses.tags.key_from_tag`). A permanent bounce and a complaint put the address
on the suppression list; a transient bounce is recorded and suppresses nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from onetomany.delivery.channels import Channel
from onetomany.delivery.webhooks import ProviderEvent, WebhookRefused, WebhookRequest
from onetomany.rules.machine_opens import machine_open
from onetomany_ses.channel import SesOptions
from onetomany_ses.sns import Certificates, topic_region, trusted_url, verify
from onetomany_ses.tags import KEY_TAG, key_from_tag

#: One cache for the process: SNS's certificates are the same for every channel.
CERTIFICATES = Certificates()
#: SNS message types acknowledged and ignored.
_IGNORED = frozenset({"UnsubscribeConfirmation"})
#: Event types read; others (``Send``, ``Reject``, ``DeliveryDelay``, ...) are acknowledged.
EVENT_TYPES = frozenset({"Delivery", "Bounce", "Complaint", "Open", "Click"})


def _time(value: object, field: str) -> datetime:
    text = str(value or "")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise WebhookRefused(f"{field} {text[:40]!r} is not an ISO 8601 time") from exc
    if moment.tzinfo is None:
        raise WebhookRefused(f"{field} {text[:40]!r} has no UTC offset")
    return moment


def _key(mail: Mapping[str, Any]) -> str | None:
    tags = mail.get("tags")
    values = tags.get(KEY_TAG) if isinstance(tags, Mapping) else None
    if isinstance(values, list) and values and isinstance(values[0], str):
        return key_from_tag(values[0])
    return None


def _section(event: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    section = event.get(name)
    if not isinstance(section, Mapping):
        raise WebhookRefused(f"the {name.capitalize()} event has no {name} object")
    return section


def _addresses(section: Mapping[str, Any], field: str) -> list[str]:
    recipients = section.get(field)
    if not isinstance(recipients, list):
        return []
    return [
        str(r.get("emailAddress"))
        for r in recipients
        if isinstance(r, Mapping) and r.get("emailAddress")
    ]


def read_event(event: Mapping[str, Any], *, message_id: str, sent: datetime) -> list[ProviderEvent]:
    """The events one SES event document describes (several for a bounce of several
    recipients), each with an id made of the SNS ``message_id``; none for a type not read."""
    kind = event.get("eventType") or event.get("notificationType")
    if kind not in EVENT_TYPES:
        return []
    mail = event.get("mail")
    if not isinstance(mail, Mapping):
        raise WebhookRefused(f"the {kind} event has no mail object")
    key = _key(mail)
    base: dict[str, Any] = {"provider_message_id": str(mail.get("messageId", ""))}
    name = str(kind).lower()
    section = _section(event, name)
    at = _time(section.get("timestamp") or sent.isoformat(), f"{name}.timestamp")
    if kind == "Delivery":
        return [
            ProviderEvent(id=f"sns:{message_id}", kind="delivered", key=key, at=at, properties=base)
        ]
    if kind in ("Bounce", "Complaint"):
        field = "bouncedRecipients" if kind == "Bounce" else "complainedRecipients"
        bounce_type = str(section.get("bounceType", ""))
        properties = base | {
            "type": bounce_type or str(section.get("complaintFeedbackType", "")),
            "subtype": str(section.get("bounceSubType", ""))[:100],
            "feedback_id": str(section.get("feedbackId", ""))[:200],
        }
        addresses = _addresses(section, field) or [""]
        return [
            ProviderEvent(
                id=f"sns:{message_id}" + (f":{index}" if index else ""),
                kind="bounced" if kind == "Bounce" else "complained",
                key=key,
                at=at,
                address=address,
                hard=kind == "Bounce" and bounce_type == "Permanent",
                properties=properties,
            )
            for index, address in enumerate(addresses)
        ]
    agent = str(section.get("userAgent", ""))
    if kind == "Open":
        properties = base | {"user_agent": agent[:300]}
        reason = machine_open(agent, sent_at=None, opened_at=at)
        if reason is not None:
            properties |= {"machine": True, "machine_reason": reason}
        return [
            ProviderEvent(
                id=f"sns:{message_id}", kind="opened", key=key, at=at, properties=properties
            )
        ]
    link = str(section.get("link", ""))
    return [
        ProviderEvent(
            id=f"sns:{message_id}",
            kind="clicked",
            key=key,
            at=at,
            properties=base | {"url": link[:2000]},
        )
    ]


def parse_webhook(channel: Channel, request: WebhookRequest) -> list[ProviderEvent]:
    """The events of one SNS message posted to ``channel``, once its topic, signature and
    date hold; WebhookRefused says why another is refused."""
    options = channel.options
    if not isinstance(options, SesOptions):
        raise WebhookRefused(f"channel {channel.settings.name!r} is not an SES channel")
    if not options.sns_topic_arn:
        raise WebhookRefused(
            "this channel takes no webhooks: set sns_topic_arn to the topic SES publishes to",
            status=401,
        )
    try:
        message = json.loads(request.body)
    except (ValueError, RecursionError) as exc:
        raise WebhookRefused(f"the body is not JSON: {exc}"[:200]) from exc
    if not isinstance(message, dict):
        raise WebhookRefused("the body is not a JSON object (one SNS message)")
    if message.get("TopicArn") != options.sns_topic_arn:
        raise WebhookRefused(
            f"the SNS message comes from topic {str(message.get('TopicArn'))[:120]!r}, not "
            "the channel's sns_topic_arn",
            status=401,
        )
    verify(
        message,
        certificates=CERTIFICATES,
        allow_loopback=options.sns_allow_loopback,
        now=request.now,
    )
    sent = _time(message.get("Timestamp"), "Timestamp")
    oldest = request.now - timedelta(hours=options.webhook_max_age_hours)
    if sent < oldest:
        raise WebhookRefused(
            f"the SNS message is dated {sent.isoformat()}, before the replay window "
            f"({options.webhook_max_age_hours:g} hours); refused as a replay"
        )
    kind = message["Type"]
    if kind in _IGNORED:
        return []
    if kind == "SubscriptionConfirmation":
        url = trusted_url(
            str(message.get("SubscribeURL", "")),
            region=topic_region(options.sns_topic_arn),
            allow_loopback=options.sns_allow_loopback,
            what="SubscribeURL",
        )
        CERTIFICATES.get(url)
        return []
    try:
        event = json.loads(str(message.get("Message", "")))
    except (ValueError, RecursionError) as exc:
        raise WebhookRefused("the SNS notification's Message is not an SES event (JSON)") from exc
    if not isinstance(event, dict):
        raise WebhookRefused("the SNS notification's Message is not an SES event object")
    return read_event(event, message_id=str(message["MessageId"]), sent=sent)
