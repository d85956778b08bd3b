"""Mailgun's wire format: a message as the form ``POST /v3/{domain}/messages`` takes, and what
its answers say. Pure functions, no I/O.

The reference is Mailgun's API documentation (documentation.mailgun.com, "Messages"): a
``multipart/form-data`` or ``application/x-www-form-urlencoded`` body with ``from``, ``to``,
``subject``, ``text``/``html``, ``h:`` headers, ``o:`` options and ``v:`` custom variables;
an answer is JSON ``{"id", "message"}`` when queued, ``{"message"}`` when refused. Mailgun
publishes no OpenAPI document for it.
"""

from __future__ import annotations

from typing import Any

from onetomany.errors import PermanentDeliveryError
from onetomany.model import Message

#: The custom variable that carries the outbox key (``v:onetomany-key``); Mailgun returns it in
#: every event's ``user-variables``, which is how a webhook maps back to the row.
KEY_VARIABLE = "onetomany-key"
#: At most three ``o:tag`` values a message (Mailgun's limit).
MAX_TAGS = 3


def form(message: Message, *, sender: str, tags: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """The form fields for ``message``, in order (a field may repeat, as ``o:tag``).

    :raises PermanentDeliveryError: the message has no sender.
    """
    if not sender:
        raise PermanentDeliveryError(
            f"message {message.idempotency_key}: no sender; set the program's sender or the "
            f"channel's 'sender' option"
        )
    fields = [("from", sender), ("to", message.to), ("subject", message.subject)]
    if message.text or not message.html:
        fields.append(("text", message.text or " "))
    if message.html:
        fields.append(("html", message.html))
    if message.reply_to:
        fields.append(("h:Reply-To", message.reply_to))
    fields.extend((f"h:{name}", value) for name, value in message.headers.items())
    chosen = [*tags, *([message.touch] if message.touch else [])]
    fields.extend(("o:tag", tag[:128]) for tag in list(dict.fromkeys(chosen))[:MAX_TAGS])
    fields.append((f"v:{KEY_VARIABLE}", message.idempotency_key))
    return fields


def answer_text(document: Any, fallback: str) -> str:
    """The ``message`` of an answer, or ``fallback`` (Mailgun's 401 is a bare ``Forbidden``)."""
    if isinstance(document, dict) and isinstance(document.get("message"), str):
        return str(document["message"])[:500]
    return fallback.strip()[:200]
