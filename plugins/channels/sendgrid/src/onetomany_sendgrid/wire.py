"""SendGrid's wire format: a message as the JSON ``POST /v3/mail/send`` takes, and what its
failure answers mean. Pure functions, no I/O.

The reference is SendGrid's OpenAPI document (github.com/twilio/sendgrid-oai,
``tsg_mail_v3``); the plugin's tests validate every request against it. A failure answer
carries ``{"errors": [{"message", "field", "help"}], "id"}``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from onetomany.delivery.mime import split_mailbox
from onetomany.errors import PermanentDeliveryError
from onetomany.model import Message

#: The ``custom_args`` field that carries the outbox key; SendGrid copies custom arguments
#: onto every event of the message, which is how a webhook maps back to the row.
KEY_ARG = "onetomany_key"
#: Headers SendGrid refuses to take from ``headers`` (it sets them itself).
RESERVED_HEADERS = frozenset(
    {
        "x-sg-id",
        "x-sg-eid",
        "received",
        "dkim-signature",
        "content-type",
        "content-transfer-encoding",
        "to",
        "from",
        "subject",
        "reply-to",
        "cc",
        "bcc",
    }
)


def _address(value: str) -> dict[str, str]:
    # split_mailbox reads what parseaddr reads, the common forms without its tokenizer.
    name, address = split_mailbox(value)
    found: dict[str, str] = {"email": address or value}
    if name:
        found["name"] = name
    return found


def body(message: Message, *, sender: str, categories: tuple[str, ...] = ()) -> dict[str, Any]:
    """The JSON object ``POST /v3/mail/send`` takes for ``message``.

    The outbox key goes in the personalization's ``custom_args`` (the document types the
    message-level ``custom_args`` as a string, the personalization's as an object).

    :raises PermanentDeliveryError: the message has no sender or no subject.
    """
    if not sender:
        raise PermanentDeliveryError(
            f"message {message.idempotency_key}: no sender; set the program's sender or the "
            f"channel's 'sender' option"
        )
    if not message.subject:
        raise PermanentDeliveryError(
            f"message {message.idempotency_key}: SendGrid needs a subject (the template has none)"
        )
    content = []
    # SendGrid wants text/plain first when both are given.
    if message.text or not message.html:
        content.append({"type": "text/plain", "value": message.text or " "})
    if message.html:
        content.append({"type": "text/html", "value": message.html})
    document: dict[str, Any] = {
        "personalizations": [
            {"to": [_address(message.to)], "custom_args": {KEY_ARG: message.idempotency_key}}
        ],
        "from": _address(sender),
        "subject": message.subject,
        "content": content,
    }
    if message.reply_to:
        document["reply_to"] = _address(message.reply_to)
    headers = {k: v for k, v in message.headers.items() if k.lower() not in RESERVED_HEADERS}
    if headers:
        document["headers"] = headers
    tags = [*categories, *([message.touch] if message.touch else [])]
    if tags:
        document["categories"] = list(dict.fromkeys(tag[:255] for tag in tags))[:10]
    return document


def error_text(document: object) -> str:
    """The ``errors[]`` of a failure answer as one line (``field: message; ...``)."""
    if not isinstance(document, dict):
        return ""
    errors = document.get("errors")
    if not isinstance(errors, list):
        return ""
    parts = []
    for error in errors[:5]:
        if not isinstance(error, dict):
            continue
        message = str(error.get("message", "")).strip()
        field = error.get("field")
        parts.append(f"{field}: {message}" if field else message)
    return "; ".join(part for part in parts if part)[:500]


def rate_limit_reset(value: str | None, *, now: datetime) -> float | None:
    """Seconds until ``X-RateLimit-Reset`` (a Unix time), or None when absent or unreadable."""
    if not value or not value.strip().isdigit():
        return None
    return max(0.0, int(value) - now.timestamp())
