"""Per-contact tokens: the host's backend vouches for who the browser speaks for.

The browser never proves who it is to onetomany directly: the host's backend, which has
already logged the user in, issues a short-lived token naming the contact, signed with a key
onetomany shares with it (the idea of Intercom's identity verification and Novu's subscriber
hash, with an expiry and a key id added). The web app accepts a request for contact A only
with a token for A, so one contact can never read, count or change another's messages.

A token reads ``v1.<key id>.<contact id, base64url>.<expiry, unix seconds>.<HMAC-SHA256,
base64url>``. The MAC covers a purpose (``inbox``; the tracking links will sign with their own
purpose, so a token of one kind is never accepted as the other), the key id, the contact id
and the expiry. **Rotation**: :class:`SigningKeys` holds several keys by id and signs with the
``current`` one; tokens signed with an older key stay valid until they expire or the key is
removed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from datetime import datetime, timedelta

import attrs

from onetomany.errors import ConfigError, InputError

VERSION = "v1"
_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
#: A shorter secret is refused: HMAC-SHA256 wants at least as many bytes as its output.
MIN_SECRET_BYTES = 32
#: Longer tokens are refused before any work is done on them.
MAX_TOKEN_CHARS = 1024
DEFAULT_TTL = timedelta(hours=12)


class TokenError(InputError):
    """A token is malformed, signed with an unknown key, tampered with or expired."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not re.fullmatch(r"[A-Za-z0-9_-]*", text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _secrets_repr(keys: Mapping[str, bytes]) -> str:
    return "{" + ", ".join(f"{kid!r}: '***'" for kid in keys) + "}"


@attrs.frozen(kw_only=True)
class SigningKeys:
    """Secrets by key id; ``current`` signs new tokens, every key verifies. Never printed."""

    keys: Mapping[str, bytes] = attrs.field(repr=_secrets_repr)
    current: str

    def __attrs_post_init__(self) -> None:
        if not self.keys:
            raise ConfigError("no signing key given", key="web.keys")
        for kid, secret in self.keys.items():
            if not _KEY_ID.fullmatch(kid):
                raise ConfigError(
                    f"key id {kid[:40]!r} is not 1 to 32 letters, digits, '_' or '-'",
                    key="web.keys",
                )
            if len(secret) < MIN_SECRET_BYTES:
                raise ConfigError(
                    f"the secret of key {kid!r} has {len(secret)} bytes; at least "
                    f"{MIN_SECRET_BYTES} are needed (e.g. python -c 'import secrets; "
                    "print(secrets.token_urlsafe(32))')",
                    key=f"web.keys.{kid}",
                )
        if self.current not in self.keys:
            raise ConfigError(
                f"the current key {self.current!r} is not among the keys "
                f"({', '.join(sorted(self.keys))})",
                key="web.keys",
            )

    @classmethod
    def of(cls, keys: Mapping[str, str | bytes], current: str | None = None) -> SigningKeys:
        """From ``{key id: secret}``; the current key is the first one unless named."""
        raw = {kid: s.encode() if isinstance(s, str) else bytes(s) for kid, s in keys.items()}
        return cls(keys=raw, current=current if current is not None else next(iter(raw), ""))

    @classmethod
    def parse(cls, text: str) -> SigningKeys:
        """From ``"k2:secret2,k1:secret1"`` (the first signs): the form of an environment
        variable. A malformed entry is a ConfigError naming its position, never its secret."""
        keys: dict[str, str] = {}
        for position, entry in enumerate(text.split(","), start=1):
            kid, sep, secret = entry.strip().partition(":")
            if not sep or not kid or not secret:
                raise ConfigError(
                    f"entry {position} is not KEY_ID:SECRET (write 'k2:new,k1:old')",
                    key="web.keys",
                )
            keys[kid] = secret
        return cls.of(keys)

    @classmethod
    def from_env(cls, name: str = "ONETOMANY_WEB_KEYS") -> SigningKeys:
        """From the environment variable ``name`` (see :meth:`parse`)."""
        text = os.environ.get(name)
        if not text:
            raise ConfigError(f"environment variable {name} is not set", key="web.keys")
        return cls.parse(text)


@attrs.frozen
class ContactTokens:
    """Issues and reads the tokens of one purpose (``inbox`` by default)."""

    keys: SigningKeys
    purpose: str = "inbox"

    def _mac(self, kid: str, contact: str, expiry: str) -> bytes:
        message = "\0".join((self.purpose, VERSION, kid, contact, expiry)).encode()
        return hmac.new(self.keys.keys[kid], message, hashlib.sha256).digest()

    def issue(self, contact_id: str, *, now: datetime, ttl: timedelta = DEFAULT_TTL) -> str:
        """A token for ``contact_id`` valid for ``ttl`` from ``now``, signed with the current
        key. Call it in the host's backend, for the logged-in user only."""
        if not contact_id:
            raise InputError("a token needs a contact id")
        if ttl <= timedelta(0):
            raise InputError(f"a token's lifetime must be positive, not {ttl}")
        kid = self.keys.current
        contact = _b64(contact_id.encode())
        expiry = str(int((now + ttl).timestamp()))
        return ".".join((VERSION, kid, contact, expiry, _b64(self._mac(kid, contact, expiry))))

    def contact_id(self, token: str, *, now: datetime) -> str:
        """The contact a valid token names; a TokenError says why any other is refused."""
        if len(token) > MAX_TOKEN_CHARS:
            raise TokenError(f"the token is longer than {MAX_TOKEN_CHARS} characters")
        parts = token.split(".")
        if len(parts) != 5 or parts[0] != VERSION:
            raise TokenError(f"the token is not a {VERSION} token (five parts separated by '.')")
        _, kid, contact, expiry, mac = parts
        if kid not in self.keys.keys:
            raise TokenError(f"the token is signed with key {kid[:32]!r}, which is not known")
        # The signature is compared as written: base64url has spare bits in its last
        # character, and a token is one exact string.
        if not hmac.compare_digest(mac.encode(), _b64(self._mac(kid, contact, expiry)).encode()):
            raise TokenError("the token's signature does not match (tampered or truncated)")
        try:
            contact_id = _unb64(contact).decode("utf-8")
        except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
            raise TokenError("the token's contact id is not base64url UTF-8") from exc
        # Signed, so the expiry is the one the issuer wrote.
        if int(expiry) <= now.timestamp():
            expired = datetime.fromtimestamp(int(expiry), tz=now.tzinfo)
            raise TokenError(f"the token expired at {expired.isoformat()}")
        return contact_id
