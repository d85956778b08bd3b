"""Postmark's wire format: a message as the JSON its email endpoints take, and what its
answers mean. Pure functions, no I/O.

The reference is Postmark's API documentation (postmarkapp.com/developer): ``POST /email``
takes one message, ``POST /email/batch`` an array of up to 500; each answer carries an
``ErrorCode`` (0 when accepted) and a ``Message``. Postmark publishes no OpenAPI document.
"""

from __future__ import annotations

from collections.abc import Mapping
from email.utils import formataddr
from typing import Any

from onetomany.delivery.mime import envelope_address, split_mailbox
from onetomany.errors import (
    DeliveryError,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from onetomany.model import Message

#: The most messages Postmark takes in one call to ``/email/batch``.
MAX_BATCH = 500
#: The metadata field that carries the outbox key, so a webhook maps back to the row.
METADATA_KEY = "onetomany_key"
#: Postmark's limits on metadata: 10 fields, names up to 20 characters, values up to 80.
_METADATA_FIELDS = 10
_METADATA_VALUE = 80

#: ErrorCodes about one recipient or one message: sending it again changes nothing.
RECIPIENT_CODES = {
    300: "invalid email request",
    406: "inactive recipient (a hard bounce, a spam complaint or a manual suppression)",
}
#: ErrorCodes about the account or server, which a person fixes (a token, credits, a
#: pending review): retried, so the messages wait for the fix instead of being lost.
ACCOUNT_CODES = {
    10: "bad or missing server token",
    405: "not allowed to send (the account has run out of credits)",
    412: "the account is pending approval",
    413: "the account may not send",
}


def metadata(idempotency_key: str) -> dict[str, str]:
    """The outbox key as Postmark metadata: ``onetomany_key``, continued in ``onetomany_key_2``
    and on when it is longer than a metadata value may be (see :func:`key_from_metadata`)."""
    pieces = [
        idempotency_key[start : start + _METADATA_VALUE]
        for start in range(0, len(idempotency_key), _METADATA_VALUE)
    ] or [""]
    if len(pieces) > _METADATA_FIELDS:
        raise PermanentDeliveryError(
            f"{idempotency_key[:40]}...: the outbox key is longer than Postmark metadata holds "
            f"({_METADATA_FIELDS * _METADATA_VALUE} characters)"
        )
    return {
        METADATA_KEY if index == 0 else f"{METADATA_KEY}_{index + 1}": piece
        for index, piece in enumerate(pieces)
    }


def key_from_metadata(fields: Mapping[str, str]) -> str | None:
    """The outbox key written by :func:`metadata`, read back from a webhook's ``Metadata``."""
    if METADATA_KEY not in fields:
        return None
    pieces = [fields[METADATA_KEY]]
    index = 2
    while f"{METADATA_KEY}_{index}" in fields:
        pieces.append(fields[f"{METADATA_KEY}_{index}"])
        index += 1
    return "".join(pieces)


def _address(header: str, value: str) -> str:
    # Postmark refuses a display name with punctuation unless it is quoted; formataddr
    # quotes (or encodes) it as RFC 5322 wants. split_mailbox reads what parseaddr reads,
    # the forms the core writes with one regular expression instead of parseaddr's tokenizer.
    name, address = split_mailbox(value)
    if not address:
        return value
    if not address.isascii():
        # formataddr writes ASCII addresses only: the address as an SMTP envelope without
        # SMTPUTF8 has it (an internationalised domain in IDNA form; a non-ASCII mailbox
        # name is a PermanentDeliveryError naming the address).
        address = envelope_address(header, value)
    return formataddr((name, address))


def body(message: Message, *, sender: str, stream: str) -> dict[str, Any]:
    """The JSON object ``POST /email`` takes for ``message``.

    :raises PermanentDeliveryError: the message has no sender, or a key metadata cannot hold.
    """
    if not sender:
        raise PermanentDeliveryError(
            f"message {message.idempotency_key}: no sender; set the program's sender or the "
            f"channel's 'sender' option"
        )
    document: dict[str, Any] = {
        "From": _address("From", sender),
        "To": _address("To", message.to),
        "Subject": message.subject,
        "MessageStream": stream,
        "Metadata": metadata(message.idempotency_key),
    }
    if message.html:
        document["HtmlBody"] = message.html
    if message.text or not message.html:
        document["TextBody"] = message.text
    if message.reply_to:
        document["ReplyTo"] = _address("Reply-To", message.reply_to)
    if message.touch:
        document["Tag"] = message.touch[:1000]
    if message.headers:
        document["Headers"] = [{"Name": k, "Value": v} for k, v in message.headers.items()]
    return document


def answer_error(code: int, text: str, *, doing: str) -> DeliveryError:
    """The delivery error for an answer whose ``ErrorCode`` is not 0."""
    if code in ACCOUNT_CODES:
        return TransientDeliveryError(
            f"{doing}: Postmark ErrorCode {code} ({ACCOUNT_CODES[code]}): {text}"
        )
    meaning = RECIPIENT_CODES.get(code, "refused")
    return PermanentDeliveryError(f"{doing}: Postmark ErrorCode {code} ({meaning}): {text}")


def read_answer(document: object) -> tuple[int, str, str | None]:
    """``(ErrorCode, Message, MessageID)`` of one answer object; a shape Postmark does not
    document reads as ErrorCode -1."""
    if not isinstance(document, dict):
        return -1, f"unexpected answer {str(document)[:200]!r}", None
    code = document.get("ErrorCode")
    text = str(document.get("Message", ""))[:500]
    message_id = document.get("MessageID")
    if not isinstance(code, int) or isinstance(code, bool):
        return -1, f"answer without an ErrorCode: {str(document)[:200]!r}", None
    return code, text, str(message_id) if message_id is not None else None
