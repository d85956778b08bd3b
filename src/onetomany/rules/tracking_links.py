"""Signed tracking links: each link of an email rewritten to ``<base>/c/<token>`` and an open
pixel ``<base>/o/<token>`` added, when the message is rendered.

A click token names the outbox row's idempotency key, the link's position in the message and
the URL that was there; an open token names the key. Both are signed with the program's
``[unsubscribe]`` keys (HMAC-SHA256, the same rotation), under a purpose of their own
(``track:``), so an unsubscribe token is never a tracking token nor the other way round. The
redirect goes to the URL the token signs: a token cannot be pointed at another URL without
breaking its signature, so the endpoint is no open redirect, and a token of another message
only leads to that message's own link.

An NPS email's 0-10 buttons are signed the same way (``["n", key, score]``, the web app's
``/nps/<token>``): templates call ``nps_url(score)``.

A token reads ``KEY.PAYLOAD.SIGNATURE``: ``PAYLOAD`` is base64url JSON ``["c", key, position,
url]``, ``["o", key]`` or ``["n", key, score]``; ``SIGNATURE`` is base64url HMAC-SHA256 of
``track:KEY.PAYLOAD``.

``program.toml``::

    [tracking]
    base_url = "https://app.acme.test/onetomany"     # where the web app is mounted
    utm = { utm_source = "onetomany", utm_medium = "email" }   # optional; {touch} allowed

A touch turns it off with ``track = false``. The HTML part's links are rewritten, then the
text part's with the same tokens (a link in both parts has one position); the unsubscribe and
preference links are never rewritten.
"""

from __future__ import annotations

import html
import re
from collections.abc import Collection, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import attrs

from onetomany.errors import ConfigError, InputError
from onetomany.rules.unsubscribe import MAX_TOKEN, UnsubscribeSettings, read_claims, sign_claims

__all__ = [
    "ClickClaims",
    "LinkRewriter",
    "TrackingSettings",
    "TrackingTokenError",
    "click_token",
    "nps_link",
    "nps_token",
    "open_token",
    "read_tracking",
    "rewrite_html",
    "verify_click",
    "verify_nps",
    "verify_open",
]

_PURPOSE = "track:"
#: A link longer than this is left as it is: its token would not fit a URL comfortably.
MAX_LINK = 2000


class TrackingTokenError(InputError):
    """A tracking token that is refused: malformed, truncated, tampered with, of the other
    kind, or signed by a key this program does not hold."""


@attrs.frozen(kw_only=True)
class TrackingSettings:
    """``[tracking]``: where the web app answers the links, and the UTM parameters to add."""

    base_url: str = ""
    utm: Mapping[str, str] = attrs.field(factory=dict)

    @property
    def enabled(self) -> bool:
        return bool(self.base_url)


@attrs.frozen(kw_only=True)
class ClickClaims:
    """What a verified click token says: the message, the link's position, its URL."""

    key: str
    position: int
    url: str


def _make(keys: UnsubscribeSettings, claims: list[Any]) -> str:
    if not keys.enabled:
        raise ConfigError("tracking links need a key: set [unsubscribe] keys and current")
    return sign_claims(keys, claims, purpose=_PURPOSE)


def _read(keys: UnsubscribeSettings, token: str) -> list[Any]:
    _, claims = read_claims(
        keys,
        token,
        purpose=_PURPOSE,
        what="tracking token",
        max_length=MAX_TOKEN + MAX_LINK,
        error=TrackingTokenError,
    )
    if not isinstance(claims, list) or not claims:
        raise TrackingTokenError("tracking token refused: its payload does not read")
    return claims


def click_token(keys: UnsubscribeSettings, key: str, position: int, url: str) -> str:
    """The token of link ``position`` (0 is the first) of the message keyed ``key``."""
    return _make(keys, ["c", key, position, url])


def open_token(keys: UnsubscribeSettings, key: str) -> str:
    """The token of the open pixel of the message keyed ``key``."""
    return _make(keys, ["o", key])


def verify_click(keys: UnsubscribeSettings, token: str) -> ClickClaims:
    """What a click token says; TrackingTokenError says why another is refused."""
    claims = _read(keys, token)
    match claims:
        case ["c", str(key), int(position), str(url)] if _followable(url):
            return ClickClaims(key=key, position=position, url=url)
    raise TrackingTokenError("tracking token refused: not a click token")


def nps_token(keys: UnsubscribeSettings, key: str, score: int) -> str:
    """The token of the NPS link answering ``score`` (0-10) to the message keyed ``key``."""
    if isinstance(score, bool) or not isinstance(score, int) or not 0 <= score <= 10:
        raise ValueError(f"an NPS score is a whole number from 0 to 10, not {score!r}")
    return _make(keys, ["n", key, score])


def verify_nps(keys: UnsubscribeSettings, token: str) -> tuple[str, int]:
    """The outbox key and the score an NPS token names; TrackingTokenError for another."""
    match _read(keys, token):
        case ["n", str(key), int(score)] if 0 <= score <= 10:
            return key, score
    raise TrackingTokenError("tracking token refused: not an NPS token")


def nps_link(settings: TrackingSettings, keys: UnsubscribeSettings, key: str, score: int) -> str:
    """``<base_url>/nps/<token>``: the link of an NPS email's ``score`` button."""
    return f"{settings.base_url.rstrip('/')}/nps/{nps_token(keys, key, score)}"


def verify_open(keys: UnsubscribeSettings, token: str) -> str:
    """The outbox key an open token names; TrackingTokenError for any other token."""
    match _read(keys, token):
        case ["o", str(key)]:
            return key
    raise TrackingTokenError("tracking token refused: not an open token")


def _followable(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc) and url.isprintable()


def with_utm(url: str, utm: Mapping[str, str], touch: str) -> str:
    """``url`` with the UTM parameters it does not carry yet (``{touch}`` is the touch)."""
    if not utm:
        return url
    parts = urlsplit(url)
    present = {name for name, _ in parse_qsl(parts.query, keep_blank_values=True)}
    added = {k: v.replace("{touch}", touch) for k, v in utm.items() if k not in present}
    if not added:
        return url
    query = f"{parts.query}&{urlencode(added)}" if parts.query else urlencode(added)
    return urlunsplit(parts._replace(query=query))


_ANCHOR_HREF = re.compile(
    r"""(<a\b[^>]*?\shref\s*=\s*)(?:"([^"]*)"|'([^']*)')""", re.IGNORECASE | re.DOTALL
)


@attrs.define
class LinkRewriter:
    """Signs the links of one message, numbering them in the order met: the HTML part first,
    then the text part, whose links reuse the HTML part's tokens (a link that is in both parts
    has one position, so a click in either counts as the same click)."""

    key: str
    touch: str
    settings: TrackingSettings
    keys: UnsubscribeSettings
    keep: Collection[str] = ()
    position: int = 0
    #: The tracked link of each URL met, at its first position.
    first: dict[str, str] = attrs.field(factory=dict)

    @property
    def base(self) -> str:
        return self.settings.base_url.rstrip("/")

    def track(self, url: str) -> str | None:
        """The signed ``/c/<token>`` link for ``url`` at the next position, or None for a link
        that stays as it is: the app's own links (NPS answers), links in ``keep`` (unsubscribe,
        preferences), ``mailto:`` and other schemes, links too long to sign."""
        own = url.startswith(self.base + "/")
        if own or url in self.keep or len(url) > MAX_LINK or not _followable(url):
            return None
        target = with_utm(url, self.settings.utm, self.touch)
        link = f"{self.base}/c/{click_token(self.keys, self.key, self.position, target)}"
        self.position += 1
        self.first.setdefault(url, link)
        return link

    def html(self, body: str) -> str:
        """``body`` with each ``<a href>`` signed and the open pixel before ``</body>``."""

        def rewrite(match: re.Match[str]) -> str:
            written = match.group(2) if match.group(2) is not None else match.group(3)
            link = self.track(html.unescape(written).strip())
            return match.group(0) if link is None else f'{match.group(1)}"{link}"'

        rewritten = _ANCHOR_HREF.sub(rewrite, body)
        pixel = (
            f'<img src="{self.base}/o/{open_token(self.keys, self.key)}" width="1" height="1" '
            'alt="" style="display:block;height:1px;width:1px;border:0" />'
        )
        closing = rewritten.lower().rfind("</body>")
        if closing < 0:
            return rewritten + pixel
        return rewritten[:closing] + pixel + rewritten[closing:]

    def text(self, body: str) -> str:
        """``body`` (a plain-text part) with its http(s) URLs signed: a URL the HTML part had
        gets that link's token, another one the next position."""

        def rewrite(match: re.Match[str]) -> str:
            url, tail = match.group(0), ""
            # Prose punctuation after a URL ("see https://x.test/a." or "(https://x.test/a)")
            # is not part of it, unless the HTML part had the URL with it.
            while url not in self.first and url[-1] in _TRAILING:
                url, tail = url[:-1], url[-1] + tail
            link = self.first.get(url) or self.track(url)
            return match.group(0) if link is None else link + tail

        return _TEXT_URL.sub(rewrite, body)


_TEXT_URL = re.compile(r"""https?://[^\s<>"'`]+""", re.IGNORECASE)
_TRAILING = ".,;:!?)]}"


def rewrite_html(
    body: str,
    *,
    key: str,
    touch: str,
    settings: TrackingSettings,
    keys: UnsubscribeSettings,
    keep: Collection[str] = (),
) -> str:
    """``body`` with each http(s) link of an ``<a href>`` sent through ``/c/<token>`` and an
    open pixel before ``</body>`` (:meth:`LinkRewriter.html`). Positions count the rewritten
    links, in document order."""
    return LinkRewriter(key=key, touch=touch, settings=settings, keys=keys, keep=keep).html(body)


_KEYS = {"base_url", "utm"}


def read_tracking(
    section: Mapping[str, Any], *, file: str, keys: UnsubscribeSettings
) -> tuple[TrackingSettings, list[ConfigError]]:
    """``[tracking]``, and every problem (file, key, reason)."""
    errors: list[ConfigError] = []

    def error(key: str, reason: str) -> None:
        errors.append(ConfigError(reason, file=file, key=f"tracking.{key}"))

    for unknown in sorted(set(section) - _KEYS):
        error(unknown, f"unknown key (known: {', '.join(sorted(_KEYS))})")
    base_url = section.get("base_url", "")
    if not isinstance(base_url, str) or (base_url and not base_url.startswith("https://")):
        error(
            "base_url", f"expected an https:// URL (where the web app is mounted), got {base_url!r}"
        )
        base_url = ""
    if base_url and not keys.enabled:
        error("base_url", "tracking links are signed with the [unsubscribe] keys: set them")
    utm = section.get("utm", {})
    if not isinstance(utm, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in utm.items()
    ):
        error("utm", 'expected a table of text, e.g. { utm_source = "onetomany" }')
        utm = {}
    return TrackingSettings(base_url=base_url, utm=utm), errors
