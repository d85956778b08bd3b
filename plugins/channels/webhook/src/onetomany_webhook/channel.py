"""The signed webhook channel: each message POSTed as JSON, signed the Standard Webhooks way.

Every request carries ``webhook-id`` (derived from the outbox key, so the same on every
retry: receivers drop a repeat, which makes an unknown outcome safe to resend),
``webhook-timestamp`` (seconds, from the engine's clock) and ``webhook-signature``
(``v1,<base64 HMAC-SHA256>`` over ``id.timestamp.body`` under the ``whsec_`` secret). The
body is ``{"type": "message.send", "timestamp": ..., "data": {...}}``.

Before connecting, the host's addresses pass the SSRF guard (:mod:`onetomany_webhook.guard`);
a refused address is a permanent error naming it. Redirects are never followed. What the
answers mean: 2xx sent; 408, 429 and 5xx transient (never sooner than ``Retry-After``); 3xx
and other 4xx permanent; no connection transient; sent and no answer unknown. Errors name the
scheme and host only: webhook URLs often carry a secret in their path or query.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import attrs
import requests

from onetomany.delivery.channels import Channel, Runtime
from onetomany.delivery.http import PreparedSession, request_failure, status_failure
from onetomany.errors import ConfigError, PermanentDeliveryError
from onetomany.model import ChannelKind, DeliveryResult, Message
from onetomany.plugins.options import http_url, option, positive, secret
from onetomany.plugins.settings import PluginSettings
from onetomany_webhook import signing
from onetomany_webhook.guard import AddressRefused, Guard, GuardedAdapter

USER_AGENT = "onetomany-webhook/0.1"
EVENT_TYPE = "message.send"


def _networks(_instance: object, attribute: attrs.Attribute[tuple[str, ...]], value: Any) -> None:
    try:
        Guard(value)
    except ValueError as exc:
        raise ConfigError(f"not an address or network: {exc}", key=attribute.name) from None


@attrs.frozen(kw_only=True)
class WebhookOptions:
    """What ``[channels.NAME]`` may say to the ``webhook`` plugin."""

    url: str = option(help="where each message is POSTed (http or https)", validator=http_url)
    secret: str = secret(help="the signing secret: whsec_ and base64 (Standard Webhooks)")
    allow: tuple[str, ...] = option(
        (),
        help="addresses or networks the guard lets through (127.0.0.1, 10.0.0.0/8)",
        validator=_networks,
    )
    timeout: float = option(10.0, help="seconds to wait for an answer", validator=positive)
    connect_timeout: float = option(5.0, help="seconds to wait to connect", validator=positive)

    def __attrs_post_init__(self) -> None:
        try:
            signing.key_of(self.secret)
        except signing.SignatureError as exc:
            raise ConfigError(str(exc), key="secret") from None


def webhook_id(key: str) -> str:
    """The ``webhook-id`` of the message with outbox ``key``: stable across retries, ASCII."""
    return "msg_" + hashlib.sha256(key.encode()).hexdigest()[:32]


def payload(message: Message, *, at: datetime) -> dict[str, Any]:
    """The JSON document posted for ``message``."""
    return {
        "type": EVENT_TYPE,
        "timestamp": at.isoformat(),
        "data": {
            "key": message.idempotency_key,
            "channel": message.channel,
            "kind": message.kind.value,
            "touch": message.touch,
            "to": message.to,
            "contact_id": message.contact_id,
            "account_id": message.account_id,
            "subject": message.subject,
            "text": message.text,
            "html": message.html,
            "url": message.url,
            "data": dict(message.data),
        },
    }


class WebhookChannel(Channel):
    """POSTs signed JSON to a URL the SSRF guard lets through; options :class:`WebhookOptions`."""

    kinds = (ChannelKind.CSM, ChannelKind.INAPP, ChannelKind.EMAIL)
    Options = WebhookOptions
    options: WebhookOptions
    #: Receivers drop a repeated webhook-id (the convention asks them to).
    deduplicates = True

    def __init__(self, settings: PluginSettings, *, runtime: Runtime | None = None) -> None:
        super().__init__(settings, runtime=runtime)
        parts = urlsplit(self.options.url)
        self.target = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._key = signing.key_of(self.options.secret)
        self.guard = Guard(self.options.allow)
        self.http = PreparedSession(
            self._new_session, timeout=(self.options.connect_timeout, self.options.timeout)
        )

    def open(self) -> None:
        self.http.open()

    def session(self) -> requests.Session:
        """The channel's one Session, every connection checked by the guard once made."""
        return self.http.session()

    def close(self) -> None:
        self.http.close()

    def _new_session(self) -> requests.Session:
        session = requests.Session()
        session.trust_env = False  # a proxy from the environment would bypass the guard
        adapter = GuardedAdapter(self.guard)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.headers.update({"User-Agent": USER_AGENT, "Content-Type": "application/json"})
        return session

    def send(self, message: Message) -> DeliveryResult:
        doing = f"posting {message.idempotency_key}"
        now = self.runtime.clock.now()
        body = json.dumps(payload(message, at=now), ensure_ascii=False).encode()
        ident, timestamp = webhook_id(message.idempotency_key), int(now.timestamp())
        headers = {
            "webhook-id": ident,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signing.sign(self._key, ident, timestamp, body),
        }
        try:
            self.guard.check_host(self._host, self._port)
            response = self.http.post(self.options.url, body, headers=headers)
        except AddressRefused as exc:
            raise PermanentDeliveryError(f"{self.target}: {doing}: {exc}") from None
        except requests.RequestException as exc:
            raise request_failure(exc, target=self.target, doing=doing) from exc
        status = response.status_code
        if 200 <= status < 300:
            return DeliveryResult(provider_message_id=ident, detail=f"HTTP {status}")
        reason = f"{self.target}: {doing}: HTTP {status}: {response.text[:200]}".rstrip(": ")
        if 300 <= status < 400:
            raise PermanentDeliveryError(f"{reason} (redirects are not followed)")
        raise status_failure(
            status,
            reason,
            retry_after_header=response.headers.get("Retry-After"),
            now=now,
        )
