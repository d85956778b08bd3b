"""The WhatsApp Cloud API channel: approved templates with parameters, or session text.

Each message is a JSON ``POST {base_url}/{api_version}/{phone_number_id}/messages`` with
``Authorization: Bearer``. A message rendered from a ``.whatsapp.toml`` template (its
``data`` holds ``whatsapp_template``, ``whatsapp_language`` and ``whatsapp_parameters``)
goes as ``type: template`` with the parameters as the body component's text parameters; one
from a ``.whatsapp.txt`` goes as ``type: text`` (a session message, which WhatsApp delivers
only inside the 24-hour customer service window). What Meta's answers mean (the ``code`` in
the Graph API's ``error`` object):

- 200 with ``messages[0].id``: sent, with the ``wamid``;
- 131047 (re-engagement: outside the 24-hour window), 131026 (undeliverable), 131051
  (unsupported type), 132000/132001/132005/132007/132012 (the template: missing, paused, its
  parameters), 100 (an invalid parameter), 131009, 133010 and other 4xx: permanent, for that
  message;
- 130429 (throughput), 131056 (too many messages to one recipient), 131048 (spam rate),
  80007 and 4 (app or account rate limits), 131000/131016 (Meta's failure or unavailability),
  HTTP 429 and 5xx: transient, never sooner than ``Retry-After``;
- 190 (the access token expired or was revoked), 10/200 (permissions), 131031 (account
  locked): transient, so messages wait for someone to fix the account;
- no connection: transient; sent and no answer: unknown.

A recipient that is no phone number is refused before any request; the channel never
retries by itself. The outbox key goes with each message as ``biz_opaque_callback_data``,
which Meta returns in the message's status webhooks, so they map back to the row
(:mod:`onetomany_whatsapp_cloud.webhooks`).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import attrs
import phonenumbers
import requests

from onetomany.delivery.channels import Channel, Runtime
from onetomany.delivery.http import (
    PreparedSession,
    json_object,
    masked,
    request_failure,
    status_failure,
)
from onetomany.errors import (
    ConfigError,
    DeliveryError,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from onetomany.model import ChannelKind, DeliveryResult, Message
from onetomany.plugins.options import http_url, option, positive, secret
from onetomany.plugins.settings import PluginSettings

USER_AGENT = "onetomany-whatsapp-cloud/0.1"
#: "Not now": throughput and pair rate limits, spam rate limits, Meta's own failures.
RATE_CODES = frozenset({4, 80007, 130429, 131048, 131056, 131000, 131016})
#: The access token or the account: wait for someone to fix it.
ACCOUNT_CODES = frozenset({10, 190, 200, 131031})
#: Meta's limit on ``biz_opaque_callback_data``.
MAX_CALLBACK_DATA = 512


def _digits(_instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not value.isdigit():
        raise ConfigError(
            f"expected the phone number ID (digits), got {value!r}", key=attribute.name
        )


def _version(_instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    head, _, tail = value.partition(".")
    if not (head.startswith("v") and head[1:].isdigit() and tail.isdigit()):
        raise ConfigError(
            f"expected a Graph API version like v21.0, got {value!r}", key=attribute.name
        )


def _region(_instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value and value.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise ConfigError(f"{value!r} is not a region phonenumbers knows", key=attribute.name)


@attrs.frozen(kw_only=True)
class WhatsAppCloudOptions:
    """What ``[channels.NAME]`` may say to the ``whatsapp_cloud`` plugin."""

    phone_number_id: str = option(
        help="the sending number's ID in WhatsApp Manager", validator=_digits
    )
    access_token: str = secret(help="a system user access token (Bearer)")
    api_version: str = option("v21.0", help="the Graph API version", validator=_version)
    default_region: str = option(
        "",
        help="the region of numbers written without +country (US, BR, ...)",
        validator=_region,
    )
    base_url: str = option(
        "https://graph.facebook.com",
        help="the API's address (a local fake in tests)",
        converter=lambda url: str(url).rstrip("/"),
        validator=http_url,
    )
    timeout: float = option(10.0, help="seconds to wait for an answer", validator=positive)
    connect_timeout: float = option(5.0, help="seconds to wait to connect", validator=positive)
    app_secret: str = secret(
        "", help="the Meta app's secret, which signs webhooks (X-Hub-Signature-256)"
    )
    verify_token: str = secret(
        "", help="the verify token typed in the app's webhook setup (the GET handshake)"
    )
    webhook_max_age_hours: float = option(
        24.0, help="refuse status webhooks dated longer ago (replays)", validator=positive
    )


def recipient(number: str, *, region: str | None) -> str | None:
    """``number`` as the Cloud API's ``to`` (E.164 digits, no ``+``), or None if invalid."""
    try:
        parsed = phonenumbers.parse(number.strip().removeprefix("whatsapp:"), region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)[1:]


class WhatsAppCloudChannel(Channel):
    """Sends WhatsApp messages through Meta's Cloud API; options :class:`WhatsAppCloudOptions`."""

    kinds = (ChannelKind.WHATSAPP,)
    Options = WhatsAppCloudOptions
    options: WhatsAppCloudOptions

    def __init__(self, settings: PluginSettings, *, runtime: Runtime | None = None) -> None:
        super().__init__(settings, runtime=runtime)
        self.target = urlsplit(self.options.base_url).netloc
        self.endpoint = (
            f"{self.options.base_url}/{self.options.api_version}/"
            f"{self.options.phone_number_id}/messages"
        )
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
                "Authorization": f"Bearer {self.options.access_token}",
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
            }
        )
        return session

    def document(self, message: Message) -> dict[str, Any]:
        """The request body for ``message`` (PermanentDeliveryError when it cannot have one)."""
        doing = f"{self.target}: sending {message.idempotency_key}"
        to = recipient(message.to, region=self.options.default_region.upper() or None)
        if to is None:
            raise PermanentDeliveryError(f"{doing}: {message.to!r} is not a valid phone number")
        base = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to}
        if len(message.idempotency_key) <= MAX_CALLBACK_DATA:
            base["biz_opaque_callback_data"] = message.idempotency_key
        name = message.data.get("whatsapp_template")
        if name:
            parameters = [
                {"type": "text", "text": str(value)}
                for value in message.data.get("whatsapp_parameters") or ()
            ]
            template: dict[str, Any] = {
                "name": str(name),
                "language": {"code": str(message.data.get("whatsapp_language") or "en_US")},
            }
            if parameters:
                template["components"] = [{"type": "body", "parameters": parameters}]
            return base | {"type": "template", "template": template}
        if message.text.strip():
            return base | {
                "type": "text",
                "text": {"preview_url": False, "body": message.text.strip()},
            }
        raise PermanentDeliveryError(f"{doing}: neither a template nor session text to send")

    def send(self, message: Message) -> DeliveryResult:
        doing = f"{self.target}: sending {message.idempotency_key}"
        body = json.dumps(self.document(message), ensure_ascii=False).encode()
        try:
            response = self.http.post(self.endpoint, body)
        except requests.RequestException as exc:
            raise request_failure(exc, target=self.target, doing=doing) from exc
        answer = json_object(response)
        if response.status_code == 200:
            messages = answer.get("messages")
            first = messages[0] if isinstance(messages, list) and messages else {}
            wamid = first.get("id") if isinstance(first, dict) else None
            status = first.get("message_status") if isinstance(first, dict) else None
            return DeliveryResult(
                provider_message_id=str(wamid) if wamid else None, detail=str(status or "accepted")
            )
        raise masked(self._failure(response, answer, doing), self.options.access_token)

    def _failure(
        self, response: requests.Response, answer: dict[str, Any], doing: str
    ) -> DeliveryError:
        error = answer.get("error")
        error = error if isinstance(error, dict) else {}
        code = error.get("code")
        details = error.get("error_data", {})
        details = details.get("details") if isinstance(details, dict) else None
        text = str(details or error.get("message") or response.text[:200]).strip()
        status = response.status_code
        reason = f"{doing}: HTTP {status}" + (f", error {code}" if code else "") + f": {text}"
        retry_after = response.headers.get("Retry-After")
        if code in ACCOUNT_CODES:
            return TransientDeliveryError(f"{reason} (the account needs attention)")
        if code in RATE_CODES:
            status = 429 if status < 500 else status
        elif code is not None and status < 500:
            return PermanentDeliveryError(reason)
        return status_failure(
            status, reason, retry_after_header=retry_after, now=self.runtime.clock.now()
        )
