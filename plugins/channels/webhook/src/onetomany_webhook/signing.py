"""Standard Webhooks signatures (https://www.standardwebhooks.com), both ways.

A sender signs ``{webhook-id}.{webhook-timestamp}.{body}`` with HMAC-SHA256 under the
secret's key (the base64 after ``whsec_``) and sends ``webhook-signature: v1,<base64>``;
a receiver recomputes it, compares in constant time, and refuses a timestamp too far from
its clock (replays). :func:`verify` is what a receiver (or a test) runs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

__all__ = ["PREFIX", "SignatureError", "key_of", "sign", "verify"]

PREFIX = "whsec_"
#: How far a timestamp may be from the receiver's clock, in seconds (the convention's five
#: minutes).
TOLERANCE = 300


class SignatureError(ValueError):
    """A webhook's signature does not hold, or its secret cannot be read."""


def key_of(secret: str) -> bytes:
    """The HMAC key in a ``whsec_<base64>`` secret."""
    if not secret.startswith(PREFIX):
        raise SignatureError(f"a signing secret starts with {PREFIX!r}")
    try:
        key = base64.b64decode(secret[len(PREFIX) :], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError("the signing secret after whsec_ is not base64") from exc
    if len(key) < 16:
        raise SignatureError("the signing secret's key is shorter than 16 bytes")
    return key


def sign(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value: ``v1,<base64 HMAC-SHA256>``."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(secret: str, headers: dict[str, str], body: bytes, *, now: float) -> None:
    """Raise :class:`SignatureError` unless ``headers`` carry a valid signature of ``body``
    (header names in any case), made within :data:`TOLERANCE` seconds of ``now``."""
    lower = {name.lower(): value for name, value in headers.items()}
    try:
        webhook_id = lower["webhook-id"]
        timestamp = int(lower["webhook-timestamp"])
        signatures = lower["webhook-signature"].split()
    except (KeyError, ValueError) as exc:
        raise SignatureError(f"missing or malformed webhook header: {exc}") from exc
    if abs(now - timestamp) > TOLERANCE:
        raise SignatureError("the timestamp is outside the tolerance (a replay?)")
    expected = sign(key_of(secret), webhook_id, timestamp, body)
    if not any(hmac.compare_digest(expected, given) for given in signatures):
        raise SignatureError("no signature matches")
