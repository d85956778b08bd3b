"""The Mailgun channel: each message is one form ``POST /v3/{domain}/messages`` over one
kept-alive Session, with HTTP Basic auth ``api:<key>``.

What the answers mean (Mailgun's documented statuses):

- 200 (``{"id", "message": "Queued. Thank you."}``): a ``DeliveryResult`` with the ``id``;
- 429 (too many requests) and 5xx: transient, never retried sooner than ``Retry-After``;
- 400 (a missing or invalid parameter, such as the address), 401 (the API key), 402 (the
  request failed though its parameters were valid), 403, 404 (the domain is unknown, or the
  wrong region's address), 413 (too large) and every other failure: permanent, with Mailgun's
  ``message`` in the text;
- no connection: transient; sent and no answer: the outcome is unknown (the messages API has
  no idempotency key, so the dispatcher does not resend it unless the touch asks).

The channel never retries by itself. The outbox key travels as the custom variable
``v:onetomany-key``. The API key is only ever in the Session's auth.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import quote, urlsplit

import attrs
import requests

from onetomany.delivery.channels import Channel, Runtime
from onetomany.delivery.http import (
    TRANSIENT_STATUSES,
    PreparedSession,
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
from onetomany_mailgun import wire
from onetomany_mailgun.tokens import TokenLedger

USER_AGENT = "onetomany-mailgun/0.1"
#: Each region's API address: a domain lives in one region, and the other answers 404.
REGIONS = {"us": "https://api.mailgun.net", "eu": "https://api.eu.mailgun.net"}
MEANINGS = {
    400: "a parameter is missing or invalid",
    401: "the API key is missing or wrong",
    402: "the request failed",
    403: "forbidden",
    404: "the domain is not found (check the region)",
    413: "the message is too large",
}


def _domain(_instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not value or "/" in value or " " in value or "." not in value:
        raise ConfigError(
            f"expected a sending domain such as mg.example.com, got {value!r}", key=attribute.name
        )


def _base_url(_instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value:
        http_url(_instance, attribute, value)


@attrs.frozen(kw_only=True)
class MailgunOptions:
    """What ``[channels.NAME]`` may say to the ``mailgun`` plugin."""

    api_key: str = secret(help="a Mailgun API key (sent as Basic auth api:<key>)")
    domain: str = option(help="the sending domain, as in /v3/<domain>/messages", validator=_domain)
    region: Literal["us", "eu"] = option("us", help="where the domain lives: us or eu")
    base_url: str = option(
        "",
        help="the API's address, over the region's (a local fake in tests)",
        converter=lambda url: str(url).rstrip("/"),
        validator=_base_url,
    )
    sender: str = option(
        "", help="the From address when the program sets none", validator=email_address
    )
    tags: tuple[str, ...] = option((), help="tags (o:tag) put on every message, with the touch's")
    timeout: float = option(10.0, help="seconds to wait for an answer", validator=positive)
    connect_timeout: float = option(5.0, help="seconds to wait to connect", validator=positive)
    webhook_signing_key: str = secret(
        "", help="the HTTP webhook signing key (Mailgun: Sending > Webhooks)"
    )
    webhook_max_age_seconds: float = option(
        600.0,
        help="refuse a webhook whose signed timestamp is older or further ahead (replays)",
        validator=positive,
    )

    @property
    def api_url(self) -> str:
        return self.base_url or REGIONS[self.region]


class MailgunChannel(Channel):
    """Sends email through Mailgun's messages API; the options are :class:`MailgunOptions`."""

    kinds = (ChannelKind.EMAIL,)
    Options = MailgunOptions
    options: MailgunOptions

    def __init__(self, settings: PluginSettings, *, runtime: Runtime | None = None) -> None:
        super().__init__(settings, runtime=runtime)
        self.target = urlsplit(self.options.api_url).netloc
        self.url = f"{self.options.api_url}/v3/{quote(self.options.domain, safe='')}/messages"
        self.http = PreparedSession(
            self._new_session, timeout=(self.options.connect_timeout, self.options.timeout)
        )
        #: The webhook tokens this process has taken, so a signed token is not taken again
        #: with another body (Mailgun's signature does not cover the body).
        self.webhook_tokens = TokenLedger(self.options.webhook_max_age_seconds)

    def open(self) -> None:
        self.http.open()

    def session(self) -> requests.Session:
        """The channel's one Session: every message reuses its kept-alive connections."""
        return self.http.session()

    def close(self) -> None:
        self.http.close()

    def _new_session(self) -> requests.Session:
        session = requests.Session()
        session.auth = ("api", self.options.api_key)
        session.headers.update({"Accept": "application/json", "User-Agent": USER_AGENT})
        return session

    def send(self, message: Message) -> DeliveryResult:
        doing = f"sending {message.idempotency_key}"
        fields = wire.form(
            message, sender=message.sender or self.options.sender, tags=self.options.tags
        )
        try:
            response = self.http.post(self.url, fields)
        except requests.RequestException as exc:
            raise request_failure(exc, target=self.target, doing=doing) from exc
        document = _json(response)
        if response.status_code == 200:
            found = document.get("id") if isinstance(document, dict) else None
            return DeliveryResult(
                provider_message_id=str(found) if found else None,
                detail=wire.answer_text(document, "Queued"),
            )
        raise masked(self._failure(response, document, doing), self.options.api_key)

    def _failure(self, response: requests.Response, document: object, doing: str) -> DeliveryError:
        status = response.status_code
        detail = wire.answer_text(document, response.text)
        reason = f"{self.target}: {doing}: HTTP {status}"
        if status in TRANSIENT_STATUSES or status >= 500:
            wait = retry_after(response.headers.get("Retry-After"), now=self.runtime.clock.now())
            return TransientDeliveryError(f"{reason}: {detail}", retry_after=wait)
        meaning = MEANINGS.get(status, "refused")
        return PermanentDeliveryError(f"{reason} ({meaning}): {detail}")


def _json(response: requests.Response) -> object:
    try:
        return response.json()
    except ValueError:
        return None
