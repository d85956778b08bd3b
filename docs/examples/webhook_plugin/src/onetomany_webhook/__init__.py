"""onetomany-webhook: a onetomany channel that POSTs each message as JSON to a URL.

Installing the distribution registers the ``webhook`` channel type. A program uses it with::

    [channels.notify]
    plugin = "webhook"
    url = "https://hooks.example.com/onetomany"
    token = "..."          # optional: sent as "Authorization: Bearer ..."
    kind = "inapp"         # optional: the kind of message it renders (default inapp)
    timeout = 10.0         # optional: seconds per request
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from onetomany import Channel, ChannelKind, DeliveryResult, Message, PluginSettings, hookimpl
from onetomany.delivery.channels import Runtime
from onetomany.errors import ConfigError, PermanentDeliveryError, TransientDeliveryError
from onetomany.plugins.registry import Register
from requests.exceptions import ChunkedEncodingError

__all__ = ["WebhookChannel", "onetomany_register_channels", "parse_retry_after"]

USER_AGENT = "onetomany-webhook/0.1"


class WebhookChannel(Channel):
    """POSTs one JSON document per message; one ``requests.Session`` per channel."""

    def __init__(self, settings: PluginSettings, *, runtime: Runtime | None = None) -> None:
        super().__init__(settings, runtime=runtime)
        self.url = settings.require("url", str)
        parts = urlsplit(self.url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ConfigError(
                "expected an http:// or https:// URL",
                file=settings.origin or None,
                key=f"{settings.name}.url",
            )
        # Webhook URLs often carry a secret in their path or query: errors name the host only.
        port = f":{parts.port}" if parts.port else ""
        self.target = f"{parts.scheme}://{parts.hostname}{port}"
        self.timeout = settings.get("timeout", float, 10.0)
        self.token = settings.get("token", str, "")
        raw_kind = settings.get("kind", str, ChannelKind.INAPP.value)
        try:
            self._kind = ChannelKind(raw_kind)
        except ValueError:
            known = ", ".join(kind.value for kind in ChannelKind)
            raise ConfigError(
                f"unknown kind {raw_kind!r} (kinds: {known})",
                file=settings.origin or None,
                key=f"{settings.name}.kind",
            ) from None
        self.session: requests.Session | None = None

    @property
    def serves(self) -> ChannelKind:
        return self._kind

    def open(self) -> None:
        self._session()

    def _session(self) -> requests.Session:
        """The channel's one session: every message reuses its kept-alive connections."""
        if self.session is None:
            session = requests.Session()
            session.headers["User-Agent"] = USER_AGENT
            if self.token:
                session.headers["Authorization"] = f"Bearer {self.token}"
            self.session = session
        return self.session

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None

    def send(self, message: Message) -> DeliveryResult:
        try:
            response = self._session().post(
                self.url,
                json=payload(message),
                headers={"Idempotency-Key": message.idempotency_key},
                timeout=self.timeout,
                allow_redirects=False,
            )
        except (requests.ConnectionError, requests.Timeout, ChunkedEncodingError) as exc:
            # The exception's text repeats the URL, so only its type goes into the error.
            raise TransientDeliveryError(
                f"{self.target}: {type(exc).__name__} while posting {message.idempotency_key}"
            ) from exc
        except requests.RequestException as exc:
            raise PermanentDeliveryError(
                f"{self.target}: {type(exc).__name__} while posting {message.idempotency_key}"
            ) from exc
        status = response.status_code
        if 200 <= status < 300:
            return DeliveryResult(provider_message_id=_reply_id(response), detail=f"HTTP {status}")
        reason = f"{self.target} answered HTTP {status} for {message.idempotency_key}"
        if status in {408, 429} or status >= 500:
            retry_after = parse_retry_after(
                response.headers.get("Retry-After"), now=self.runtime.clock.now()
            )
            raise TransientDeliveryError(reason, retry_after=retry_after)
        raise PermanentDeliveryError(f"{reason}: {response.text[:200]}")


def payload(message: Message) -> dict[str, Any]:
    """The JSON document posted for ``message``."""
    return {
        "idempotency_key": message.idempotency_key,
        "touch": message.touch,
        "kind": message.kind.value,
        "to": message.to,
        "contact_id": message.contact_id,
        "account_id": message.account_id,
        "subject": message.subject,
        "text": message.text,
        "html": message.html,
        "url": message.url,
        "data": dict(message.data),
    }


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def _reply_id(response: requests.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    reply_id = body.get("id") if isinstance(body, dict) else None
    return str(reply_id) if reply_id is not None else None


@hookimpl
def onetomany_register_channels(register: Register[type[Channel]]) -> None:
    register("webhook", WebhookChannel)
