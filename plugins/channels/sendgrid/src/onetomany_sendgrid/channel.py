"""The SendGrid channel: each message is one ``POST /v3/mail/send`` over one kept-alive Session.

What the answers mean:

- 202 Accepted: a ``DeliveryResult`` with SendGrid's ``X-Message-Id``;
- 429: transient, never retried sooner than ``Retry-After`` or, as SendGrid answers it,
  ``X-RateLimit-Reset`` (the Unix time the limit resets); 5xx: transient with ``Retry-After``;
- 400 (a field the request got wrong, an invalid address), 401 (the API key), 403 (the key
  lacks the ``mail.send`` scope, an unverified sender), 413 (too large) and every other
  failure: permanent, with SendGrid's ``errors[]`` in the text;
- no connection: transient; sent and no answer: the outcome is unknown (mail/send has no
  idempotency key, so the dispatcher does not resend it unless the touch asks).

The channel never retries by itself. The outbox key travels in ``custom_args``
(``onetomany_key``), which SendGrid copies onto every Event Webhook event. The API key is only
ever in the Session's headers.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import attrs
import requests

from onetomany.delivery.channels import Channel, Runtime
from onetomany.delivery.http import (
    TRANSIENT_STATUSES,
    PreparedSession,
    json_object,
    masked,
    request_failure,
    retry_after,
)
from onetomany.errors import (
    ConfigError,
    DeliveryError,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from onetomany.model import ChannelKind, DeliveryResult, Message
from onetomany.plugins.options import email_address, http_url, option, positive, secret
from onetomany.plugins.settings import PluginSettings
from onetomany_sendgrid import signing, wire

USER_AGENT = "onetomany-sendgrid/0.1"
SEND_PATH = "/v3/mail/send"
#: What SendGrid's documented failure statuses say, for the error text.
MEANINGS = {
    400: "the request was refused",
    401: "the API key is missing or wrong",
    403: "the API key may not send this (scope, or an unverified sender)",
    404: "not found",
    405: "method not allowed",
    413: "the message is too large",
}


def _public_key(_instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value:
        try:
            signing.load_public_key(value)
        except ValueError as exc:
            raise ConfigError(str(exc), key=attribute.name) from exc


@attrs.frozen(kw_only=True)
class SendGridOptions:
    """What ``[channels.NAME]`` may say to the ``sendgrid`` plugin."""

    api_key: str = secret(help="an API key with the mail.send scope (sent as a Bearer token)")
    sender: str = option(
        "", help="the From address when the program sets none", validator=email_address
    )
    base_url: str = option(
        "https://api.sendgrid.com",
        help="the API's address: https://api.eu.sendgrid.com for EU subusers (a fake in tests)",
        converter=lambda url: str(url).rstrip("/"),
        validator=http_url,
    )
    categories: tuple[str, ...] = option(
        (), help="categories put on every message (the touch's name is added)"
    )
    timeout: float = option(10.0, help="seconds to wait for an answer", validator=positive)
    connect_timeout: float = option(5.0, help="seconds to wait to connect", validator=positive)
    webhook_public_key: str = option(
        "",
        help="the Event Webhook's verification key (base64, as SendGrid's settings page shows)",
        validator=_public_key,
    )
    webhook_max_age_seconds: float = option(
        600.0,
        help="refuse a webhook whose signed timestamp is older or further ahead (replays)",
        validator=positive,
    )


class SendGridChannel(Channel):
    """Sends email through SendGrid's v3 API; the options are :class:`SendGridOptions`."""

    kinds = (ChannelKind.EMAIL,)
    Options = SendGridOptions
    options: SendGridOptions

    def __init__(self, settings: PluginSettings, *, runtime: Runtime | None = None) -> None:
        super().__init__(settings, runtime=runtime)
        self.target = urlsplit(self.options.base_url).netloc
        self.http = PreparedSession(
            self._new_session, timeout=(self.options.connect_timeout, self.options.timeout)
        )

    def open(self) -> None:
        self.http.open()

    def session(self) -> requests.Session:
        """The channel's one Session: every message reuses its kept-alive connections."""
        return self.http.session()

    def close(self) -> None:
        self.http.close()

    def _new_session(self) -> requests.Session:
        session = requests.Session()
        session.headers.update(
            {
                "Accept": "application/json",
                "Authorization": f"Bearer {self.options.api_key}",
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
            }
        )
        return session

    def send(self, message: Message) -> DeliveryResult:
        doing = f"sending {message.idempotency_key}"
        document = wire.body(
            message,
            sender=message.sender or self.options.sender,
            categories=self.options.categories,
        )
        data = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
        try:
            response = self.http.post(self.options.base_url + SEND_PATH, data)
        except requests.RequestException as exc:
            raise request_failure(exc, target=self.target, doing=doing) from exc
        if response.status_code == 202:
            return DeliveryResult(
                provider_message_id=response.headers.get("X-Message-Id"), detail="Accepted"
            )
        raise masked(self._failure(response, doing), self.options.api_key)

    def _failure(self, response: requests.Response, doing: str) -> DeliveryError:
        status = response.status_code
        detail = wire.error_text(json_object(response)) or response.text[:200]
        meaning = MEANINGS.get(status, "refused")
        reason = f"{self.target}: {doing}: HTTP {status}"
        now = self.runtime.clock.now()
        if status in TRANSIENT_STATUSES or status >= 500:
            wait = retry_after(response.headers.get("Retry-After"), now=now)
            if wait is None:
                wait = wire.rate_limit_reset(response.headers.get("X-RateLimit-Reset"), now=now)
            busy = "rate limited" if status == 429 else "SendGrid failed"
            return TransientDeliveryError(f"{reason} ({busy}): {detail}", retry_after=wait)
        return PermanentDeliveryError(f"{reason} ({meaning}): {detail}")
