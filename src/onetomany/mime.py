"""Serialising an email :class:`~onetomany.model.Message` to RFC 5322 bytes, fast.

The stdlib's ``email`` package builds a tree of objects and a policy-driven generator per
message, which costs about two milliseconds: a hundred times the Jinja render of the same
message. A tech-touch email always has the same shape (multipart/alternative, a plain-text and
an HTML part, UTF-8), so this module writes that shape directly:

- bodies are quoted-printable (``binascii.b2a_qp``, in C), so no line on the wire exceeds 76
  octets even though MJML output has lines of thousands of characters;
- every line ends in CRLF;
- the boundary contains ``=_``, which quoted-printable can never produce, so it cannot collide
  with a body;
- header values with CR or LF are refused (header injection), non-ASCII ones are RFC 2047
  encoded by the stdlib.

The Message-ID is derived from the idempotency key, so a message sent again after a crash
carries the same id and receivers can drop the copy.
"""

from __future__ import annotations

import binascii
import hashlib
import re
from collections.abc import Iterable
from datetime import datetime
from email.header import Header
from email.utils import format_datetime, formataddr, parseaddr

from onetomany.errors import PermanentDeliveryError
from onetomany.model import Message

_MAX_HEADER = 900


def message_id(idempotency_key: str, domain: str) -> str:
    """A Message-ID that is the same every time the same key is sent."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    return f"<{digest}@{domain}>"


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _checked(name: str, value: str) -> str:
    if "\r" in value or "\n" in value:
        raise PermanentDeliveryError(f"header {name} contains a line break: {value[:60]!r}")
    if _CONTROL.search(value):
        raise PermanentDeliveryError(f"header {name} contains a control character: {value[:60]!r}")
    return value


def _encode_header(name: str, value: str) -> str:
    _checked(name, value)
    if value.isascii() and len(value) + len(name) + 2 <= _MAX_HEADER:
        return value
    folded = Header(value, "utf-8", maxlinelen=76, header_name=name).encode()
    return folded.replace("\n", "\r\n")


def _encode_address(name: str, value: str) -> str:
    _checked(name, value)
    display, address = parseaddr(value)
    local, _, domain = address.rpartition("@")
    if not local or not domain:
        raise PermanentDeliveryError(f"header {name} is not an email address: {value!r}")
    if not local.isascii():
        # A non-ASCII mailbox name needs SMTPUTF8 end to end, which this serializer does not
        # promise; refusing here is clearer than a half-delivered message.
        raise PermanentDeliveryError(
            f"header {name}: {address!r} has a non-ASCII mailbox name, which needs SMTPUTF8"
        )
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise PermanentDeliveryError(f"header {name}: domain {domain!r} is not valid") from exc
    return formataddr((display, f"{local}@{ascii_domain}"), charset="utf-8")


def _qp(body: str) -> bytes:
    normal = body.replace("\r\n", "\n").replace("\r", "\n")
    encoded = binascii.b2a_qp(normal.encode("utf-8"), quotetabs=False, istext=True)
    return encoded.replace(b"\n", b"\r\n")


def _part(content_type: str, body: str) -> bytes:
    return (
        f"Content-Type: {content_type}; charset=utf-8\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    ).encode() + _qp(body)


def sender_domain(sender: str) -> str:
    return parseaddr(sender)[1].rpartition("@")[2] or "localhost"


def build_email(message: Message, *, sender: str, date: datetime) -> bytes:
    """The wire form of ``message``: headers, then a multipart/alternative body.

    ``sender`` is used when the message names none. Raises
    :class:`~onetomany.errors.PermanentDeliveryError` for header values that cannot be sent.
    """
    from_ = message.sender or sender
    headers: list[tuple[str, str]] = [
        ("From", _encode_address("From", from_)),
        ("To", _encode_address("To", message.to)),
        ("Subject", _encode_header("Subject", message.subject)),
        ("Date", format_datetime(date)),
        ("Message-ID", message_id(message.idempotency_key, sender_domain(from_))),
        ("MIME-Version", "1.0"),
    ]
    if message.reply_to:
        headers.append(("Reply-To", _encode_address("Reply-To", message.reply_to)))
    headers.extend(_extra_headers(message.headers.items()))
    boundary = (
        "=_" + hashlib.sha1(message.idempotency_key.encode(), usedforsecurity=False).hexdigest()
    )
    headers.append(("Content-Type", f'multipart/alternative; boundary="{boundary}"'))
    head = "".join(f"{name}: {value}\r\n" for name, value in headers).encode("ascii")
    delimiter = f"\r\n--{boundary}\r\n".encode()
    return b"".join(
        (
            head,
            b"\r\n",
            f"--{boundary}\r\n".encode(),
            _part("text/plain", message.text),
            delimiter,
            _part("text/html", message.html),
            f"\r\n--{boundary}--\r\n".encode(),
        )
    )


def _extra_headers(items: Iterable[tuple[str, str]]) -> Iterable[tuple[str, str]]:
    for name, value in items:
        if not name or not all(33 <= ord(ch) <= 126 and ch != ":" for ch in name):
            raise PermanentDeliveryError(f"invalid header name {name!r}")
        yield name, _encode_header(name, value)
