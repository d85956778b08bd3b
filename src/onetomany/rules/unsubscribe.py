"""Signed unsubscribe tokens, and the ``[unsubscribe]`` settings that make them.

A token names a contact and a topic (or every topic) and is signed with HMAC-SHA256 under one
of the program's keys, so a link in one person's email cannot unsubscribe anyone else, and a
token changed in any character is refused. The token reads ``KEY.PAYLOAD.SIGNATURE``:

* ``KEY``: the id of the key that signed it (``2026-12``), so keys can rotate: new tokens are
  signed with ``current``, and every key still listed verifies the tokens it signed; a key
  taken off the list retires its tokens;
* ``PAYLOAD``: base64url JSON ``[contact id, topic or null, expiry epoch seconds or null]``;
* ``SIGNATURE``: base64url HMAC-SHA256 of ``KEY.PAYLOAD``.

:func:`make_token` and :func:`verify_token` are the public functions a web endpoint calls
(the one-click ``POST`` of RFC 8058, a preference page). :func:`verify_token` only reads: a
refused token raises :class:`TokenError` saying why, and nothing changes.

``program.toml``::

    [unsubscribe]
    url = "https://app.acme.test/unsubscribe/{token}"      # one-click (RFC 8058 POST) and GET
    preferences_url = "https://app.acme.test/preferences/{token}"
    mailto = "unsubscribe@acme.test"                       # RFC 2369's mailto: form
    keys = { "2026-12" = "${UNSUBSCRIBE_KEY_2026_12}", "2026-06" = "${UNSUBSCRIBE_KEY_2026_06}" }
    current = "2026-12"
    max_age_days = 400                                     # optional; no expiry by default
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import attrs

from onetomany.errors import ConfigError, InputError

__all__ = [
    "TokenClaims",
    "TokenError",
    "UnsubscribeSettings",
    "make_token",
    "read_unsubscribe",
    "verify_token",
]

_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
#: The shortest secret accepted: 32 characters (a random 24-byte value in base64 is 32).
MIN_SECRET = 32
#: The longest token :func:`verify_token` reads (a contact id is at most 255 characters).
MAX_TOKEN = 1024


class TokenError(InputError):
    """An unsubscribe token that is refused: malformed, truncated, tampered with, signed by
    a key this program does not hold (foreign or retired), or expired."""


@attrs.frozen(kw_only=True)
class TokenClaims:
    """What a verified token says: whose, which topic (None: every topic), which key signed
    it, and until when it is good (None: until its key is retired)."""

    contact_id: str
    topic: str | None
    key_id: str
    expires: datetime | None


@attrs.frozen(kw_only=True)
class UnsubscribeSettings:
    """``[unsubscribe]``: where the links point and the keys that sign their tokens.

    ``url`` and ``preferences_url`` hold ``{token}``; ``keys`` maps key ids to secrets (kept
    out of ``repr``); ``current`` signs new tokens.
    """

    url: str = ""
    preferences_url: str = ""
    mailto: str = ""
    keys: Mapping[str, str] = attrs.field(factory=dict, repr=False)
    current: str = ""
    max_age: timedelta | None = None

    @property
    def enabled(self) -> bool:
        """Whether tokens can be made (some key signs them)."""
        return bool(self.current and self.current in self.keys)

    def link(self, pattern: str, token: str) -> str:
        # Plain substitution, not str.format: the pattern comes from configuration.
        return pattern.replace("{token}", quote(token, safe=""))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: str, signed: str, purpose: str = "") -> str:
    message = (purpose + signed).encode("utf-8")
    return _b64(hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest())


def sign_claims(settings: UnsubscribeSettings, claims: Any, *, purpose: str = "") -> str:
    """``KEY.PAYLOAD.SIGNATURE`` of the JSON ``claims``, signed with the current key under
    ``purpose`` (the tracking links sign under ``track:``; unsubscribe tokens under none), so a
    token of one purpose never verifies as another's."""
    if not settings.enabled:
        raise ConfigError("no [unsubscribe] key signs tokens (set keys and current)")
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signed = f"{settings.current}.{payload}"
    return f"{signed}.{_sign(settings.keys[settings.current], signed, purpose)}"


def read_claims(
    settings: UnsubscribeSettings,
    token: str,
    *,
    purpose: str = "",
    what: str = "unsubscribe token",
    max_length: int = MAX_TOKEN,
    error: type[InputError] = TokenError,
) -> tuple[str, Any]:
    """The key id and the JSON claims of a token :func:`sign_claims` made under ``purpose``;
    ``error`` (``"<what> refused: ..."``) for a malformed, truncated, tampered or foreign one.
    Signatures are compared in constant time."""
    if not isinstance(token, str) or not token or len(token) > max_length:
        raise error(f"{what} refused: empty or longer than any token made")
    parts = token.split(".")
    if len(parts) != 3 or not all(parts):
        raise error(f"{what} refused: malformed or truncated (KEY.PAYLOAD.SIG)")
    key_id, payload, signature = parts
    secret = settings.keys.get(key_id) if _KEY_ID.fullmatch(key_id) else None
    if secret is None:
        raise error(
            f"{what} refused: signed with key {key_id[:32]!r}, which this program "
            "does not hold (a foreign token, or its key was retired)"
        )
    expected = _sign(secret, f"{key_id}.{payload}", purpose)
    if not hmac.compare_digest(expected.encode("ascii"), signature.encode("ascii", "replace")):
        raise error(f"{what} refused: the signature does not match (tampered)")
    try:
        return key_id, json.loads(_unb64(payload))
    except (ValueError, TypeError, binascii.Error) as exc:
        # Signed by our key yet unreadable: only a bug could make one.
        raise error(f"{what} refused: its payload does not read") from exc


def make_token(
    settings: UnsubscribeSettings, contact_id: str, topic: str | None = None, *, now: datetime
) -> str:
    """A token for ``contact_id`` and ``topic`` (None: every topic), signed with the current
    key, good until ``now + max_age`` (or, without ``max_age``, until the key is retired)."""
    expires = int((now + settings.max_age).timestamp()) if settings.max_age else None
    return sign_claims(settings, [contact_id, topic, expires])


def verify_token(settings: UnsubscribeSettings, token: str, *, now: datetime) -> TokenClaims:
    """What ``token`` says, if one of the program's keys signed it and it has not expired.

    Raises :class:`TokenError` naming why it is refused; reads nothing else and changes
    nothing. Signatures are compared in constant time.
    """
    key_id, claims = read_claims(settings, token)
    try:
        contact_id, topic, expires = claims
    except (ValueError, TypeError) as exc:
        # Signed by our key yet unreadable: only a bug could make one.
        raise TokenError("unsubscribe token refused: its payload does not read") from exc
    if not isinstance(contact_id, str) or not (topic is None or isinstance(topic, str)):
        raise TokenError("unsubscribe token refused: its payload does not read")
    until = datetime.fromtimestamp(expires, tz=UTC) if isinstance(expires, int) else None
    if until is not None and now >= until:
        raise TokenError(f"unsubscribe token refused: expired at {until.isoformat()}")
    return TokenClaims(contact_id=contact_id, topic=topic, key_id=key_id, expires=until)


_KEYS = {"url", "preferences_url", "mailto", "keys", "current", "max_age_days"}


def read_unsubscribe(
    section: Mapping[str, Any], *, file: str
) -> tuple[UnsubscribeSettings, list[ConfigError]]:
    """``[unsubscribe]`` (its ``${ENV}`` references already expanded), and every problem."""
    errors: list[ConfigError] = []

    def error(key: str, reason: str) -> None:
        errors.append(ConfigError(reason, file=file, key=f"unsubscribe.{key}"))

    for unknown in sorted(set(section) - _KEYS):
        error(unknown, f"unknown key (known: {', '.join(sorted(_KEYS))})")
    texts: dict[str, str] = {}
    for name in ("url", "preferences_url", "mailto", "current"):
        value = section.get(name, "")
        if not isinstance(value, str):
            error(name, f"expected text, got {value!r}")
            value = ""
        texts[name] = value
    for name in ("url", "preferences_url"):
        value = texts[name]
        if value and (not value.startswith("https://") or "{token}" not in value):
            error(name, f"expected an https:// URL holding {{token}}, got {value!r}")
    if texts["mailto"] and ("@" not in texts["mailto"] or texts["mailto"].startswith("mailto:")):
        error(
            "mailto", f"expected an address such as unsubscribe@acme.test, got {texts['mailto']!r}"
        )
    keys: dict[str, str] = {}
    raw_keys = section.get("keys", {})
    if not isinstance(raw_keys, dict):
        error("keys", 'expected a table, e.g. { "2026-12" = "${UNSUBSCRIBE_KEY}" }')
        raw_keys = {}
    for key_id, secret in raw_keys.items():
        if not _KEY_ID.fullmatch(key_id):
            error(f"keys.{key_id}", "a key id is 1-32 letters, digits, '-' or '_'")
        elif not isinstance(secret, str) or len(secret) < MIN_SECRET:
            # Never repeat the secret itself in an error.
            error(f"keys.{key_id}", f"a key is at least {MIN_SECRET} characters of random text")
        else:
            keys[key_id] = secret
    current = texts["current"]
    if raw_keys and current not in raw_keys:
        error(
            "current", f"expected one of the keys ({', '.join(sorted(raw_keys))}), got {current!r}"
        )
    if (texts["url"] or texts["preferences_url"]) and not raw_keys:
        error("keys", "links with {token} need keys to sign the tokens")
    max_age = None
    days = section.get("max_age_days")
    if days is not None:
        if isinstance(days, bool) or not isinstance(days, int) or days < 1:
            error("max_age_days", f"expected a whole number of days, at least 1, got {days!r}")
        else:
            max_age = timedelta(days=days)
    settings = UnsubscribeSettings(
        url=texts["url"],
        preferences_url=texts["preferences_url"],
        mailto=texts["mailto"],
        keys=keys,
        current=current,
        max_age=max_age,
    )
    return settings, errors
