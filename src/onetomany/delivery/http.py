"""What every HTTP channel needs to say about a failed request, in one place.

A channel built on ``requests`` (one ``Session`` per channel, keep-alive) maps what went wrong
into the three outcomes the dispatcher understands:

- **nothing was sent** (the connection could not be made: refused, DNS, connect timeout, TLS
  handshake): :class:`~onetomany.errors.TransientDeliveryError`, safe to retry;
- **sent, no answer** (a read timeout, the connection lost while waiting, a reply cut short):
  :class:`~onetomany.errors.UnknownOutcomeError`, since the provider may have accepted it;
- **the provider answered**: 408, 429 and 5xx are transient (with the ``Retry-After`` hint),
  every other failure status permanent, unless the channel knows better from the body.

httpx draws the same line between connect and read errors; ``requests`` hides it inside
urllib3's exceptions, which :func:`request_failure` unpacks. Error texts never include the
URL (provider URLs and their queries may carry credentials), only ``target``.

:class:`PreparedSession` is how those channels send: their one ``Session``, with the request
to each URL prepared once and copied per message (see its docstring for why).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from requests.cookies import RequestsCookieJar
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError

from onetomany.errors import (
    DeliveryError,
    PermanentDeliveryError,
    TransientDeliveryError,
    UnknownOutcomeError,
)
from onetomany.plugins.options import MASK

__all__ = [
    "TRANSIENT_STATUSES",
    "PreparedSession",
    "json_object",
    "masked",
    "never_sent",
    "request_failure",
    "retry_after",
    "status_failure",
]

#: Answers that say "not now": timeouts on the provider's side, rate limits, its own failures.
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


def never_sent(exc: requests.RequestException) -> bool:
    """True when ``exc`` happened before any byte of the request left: no connection."""
    if isinstance(exc, (requests.ConnectTimeout, requests.exceptions.SSLError)):
        return True
    if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema)):
        return True
    if not isinstance(exc, requests.ConnectionError):
        return False
    reason = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    # urllib3's NewConnectionError and NameResolutionError are ConnectTimeoutErrors too.
    return isinstance(reason, ConnectTimeoutError) or isinstance(
        exc, requests.exceptions.ProxyError
    )


def request_failure(exc: requests.RequestException, *, target: str, doing: str) -> DeliveryError:
    """The delivery error for a request that raised ``exc`` (raise it ``from exc``).

    :param target: what to call the provider in the text (``api.postmarkapp.com``).
    :param doing: what was being done (``sending welcome:ct-1``).
    """
    what = f"{target}: {doing}: {type(exc).__name__}"
    if isinstance(
        exc,
        (
            requests.exceptions.InvalidURL,
            requests.exceptions.MissingSchema,
            requests.exceptions.InvalidSchema,
            requests.exceptions.InvalidHeader,
        ),
    ):
        return PermanentDeliveryError(f"{what}: the request cannot be built")
    if never_sent(exc):
        return TransientDeliveryError(f"{what}: could not connect; nothing was sent")
    # A read timeout, a connection lost while waiting, a reply cut short.
    return UnknownOutcomeError(
        f"{what}: the request went out and no complete answer came back; "
        f"the provider may have accepted it"
    )


def status_failure(
    status: int, reason: str, *, retry_after_header: str | None, now: datetime
) -> DeliveryError:
    """The delivery error for a failure answer with no more specific meaning: transient for
    :data:`TRANSIENT_STATUSES` (never sooner than ``Retry-After``), permanent otherwise."""
    if status in TRANSIENT_STATUSES:
        return TransientDeliveryError(reason, retry_after=retry_after(retry_after_header, now=now))
    return PermanentDeliveryError(reason)


def retry_after(value: str | None, *, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date, measured
    against ``now`` (the injected clock). None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def masked(error: DeliveryError, *secrets: str) -> DeliveryError:
    """``error``, or a copy of it (same class, same ``retry_after``) with every one of
    ``secrets`` in its text replaced by the mask. A provider may quote a credential back in
    its answer, and an error's text is stored and shown."""
    text = str(error)
    for value in secrets:
        if value:
            text = text.replace(value, MASK)
    if text == str(error):
        return error
    extra = {"retry_after": error.retry_after} if hasattr(error, "retry_after") else {}
    return type(error)(text, **extra)


def json_object(response: requests.Response) -> dict[str, Any]:
    """The answer's body as a JSON object, or ``{}`` when it is none (HTML from a proxy, a
    list, nothing)."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


#: What a message's body may be: bytes as they are, or form fields (a mapping or pairs).
Body = bytes | Mapping[str, str] | list[tuple[str, str]]


class PreparedSession:
    """A channel's one ``requests.Session`` (keep-alive), posting each message through a
    request prepared once per URL.

    ``session.post(url, ...)`` redoes per call what is the same for every message of a
    channel: it merges the Session's headers, auth, cookies and hooks into a new request,
    looks for a ``.netrc`` entry, parses the URL, and reads the proxies and CA bundle from the
    environment (``HTTPS_PROXY``/``NO_PROXY``, ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``).
    That cost a Postmark send more than the channel's own work. Here the first post to a URL
    prepares the request exactly as ``Session.request`` would (``prepare_request`` and
    ``merge_environment_settings``) and keeps it; each message sends a copy with only its
    body (and its own headers, if any) set, through ``Session.send`` (requests' "Prepared
    Requests"). :meth:`close` forgets them, so the next :meth:`open` reads the environment
    again.

    What stays as ``session.post`` did it: redirects are never followed (the 3xx answer is
    returned), ``timeout`` applies to every request, and cookies a provider sets are kept in
    the Session and sent with the next requests they match. The Session's ``auth`` is applied
    once, on the prepared request: a header auth (``("user", "password")``, a token) works,
    an auth that signs each body would not.

    :param build: makes the Session (headers, auth, adapters, ``trust_env``), on first use.
    :param timeout: seconds, or ``(connect, read)``, for every request.
    """

    def __init__(
        self,
        build: Callable[[], requests.Session],
        *,
        timeout: float | tuple[float, float],
    ) -> None:
        self._build = build
        self._timeout = timeout
        self._session: requests.Session | None = None
        # url -> (the prepared request, the keyword arguments Session.send takes for it)
        self._prepared: dict[str, tuple[requests.PreparedRequest, Mapping[str, Any]]] = {}

    def open(self) -> None:
        self.session()

    def session(self) -> requests.Session:
        """The Session, made on first use."""
        if self._session is None:
            self._session = self._build()
        return self._session

    def close(self) -> None:
        """Close the Session's connections; safe to call twice."""
        session, self._session = self._session, None
        self._prepared = {}
        if session is not None:
            session.close()

    def post(
        self, url: str, data: Body, *, headers: Mapping[str, str] | None = None
    ) -> requests.Response:
        """POST ``data`` to ``url``: what ``session.post(url, data=data, headers=headers,
        timeout=..., allow_redirects=False)`` does, without preparing it all again.

        :raises requests.RequestException: as ``session.post`` would.
        """
        session = self.session()
        found = self._prepared.get(url)
        if found is None:
            found = self._prepared[url] = self._prepare(session, url)
        template, settings = found
        request = template.copy()
        if headers:
            request.headers.update(headers)
        request.prepare_body(data, None)
        if session.cookies:  # a provider set some: send those that match, as Session.request
            request.prepare_cookies(session.cookies.copy())
        return session.send(request, timeout=self._timeout, allow_redirects=False, **settings)

    @staticmethod
    def _prepare(
        session: requests.Session, url: str
    ) -> tuple[requests.PreparedRequest, Mapping[str, Any]]:
        template = session.prepare_request(requests.Request("POST", url))
        # Cookies are the Session's at the time of each message, not of the first one.
        template.headers.pop("Cookie", None)
        template.prepare_cookies(RequestsCookieJar())
        assert template.url is not None
        settings = session.merge_environment_settings(template.url, {}, None, None, None)
        return template, settings
