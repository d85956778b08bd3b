"""The Twilio channel: SMS, or WhatsApp through Twilio, one message a call to the Messages API.

Each message is a form-encoded ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` with
basic auth (the account SID and the auth token), the recipient in E.164 (``whatsapp:`` in
front for WhatsApp), the sender (a number, or a Messaging Service) and, when the program gives
``status_callback``, that URL with the outbox key added as ``onetomany_key`` so Twilio's status
callbacks map back to the row. What the answers mean:

- 201: accepted, a ``DeliveryResult`` with Twilio's message SID;
- error code 21211 (invalid 'To'), 21614 (not a mobile number), 21610 (the recipient replied
  STOP), 21408 (no permission for the region), 63016 (outside WhatsApp's window) and any other
  4xx: permanent, for that message;
- 401 (error 20003, the credentials) and 403 (error 20005, a suspended account): transient, so
  the messages wait for someone to fix the account rather than being dead-lettered;
- 429 (error 20429) and 5xx: transient, never retried sooner than ``Retry-After``;
- no connection: transient; sent and no answer: unknown (Twilio takes no idempotency key).

A recipient that is no phone number is refused before any request. The channel never retries
by itself; the token is only ever in the Session's auth.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

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

log = logging.getLogger(__name__)

USER_AGENT = "onetomany-twilio/0.1"
#: The query parameter of the status callback URL that carries the outbox key.
KEY_PARAMETER = "onetomany_key"
#: Error codes that speak of the account, not the message: wait for someone to fix it.
ACCOUNT_CODES = frozenset({20003, 20005})
#: Error codes Twilio documents as "not now".
RATE_CODES = frozenset({20429, 14107})

_ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}")
_SERVICE_SID = re.compile(r"MG[0-9a-fA-F]{32}")
_WHATSAPP = "whatsapp:"


def e164(number: str, *, region: str | None = None) -> str | None:
    """``number`` in E.164 (``+14155550100``), or None when it is no valid phone number.
    Without a leading ``+``, it is read as a number of ``region`` (ISO 3166 code)."""
    bare = number.strip().removeprefix(_WHATSAPP).strip()
    try:
        parsed = phonenumbers.parse(bare, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def with_key(url: str, key: str) -> str:
    """The status callback ``url`` with the outbox ``key`` added to its query."""
    parts = urlsplit(url)
    query = [
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != KEY_PARAMETER
    ]
    query.append((KEY_PARAMETER, key))
    return urlunsplit(parts._replace(query=urlencode(query)))


def key_from_callback(url_or_query: str) -> str | None:
    """The outbox key in a status callback's URL (or its query string), or None."""
    query = urlsplit(url_or_query).query if "?" in url_or_query else url_or_query
    return dict(parse_qsl(query)).get(KEY_PARAMETER)


def _account_sid(_instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not _ACCOUNT_SID.fullmatch(value):
        raise ConfigError(f"expected AC and 32 hex digits, got {value!r}", key=attribute.name)


def _sender(_instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value and e164(value) is None:
        raise ConfigError(
            f"{value!r} is not a phone number in E.164 (+ and the country code)",
            key=attribute.name,
        )


def _service_sid(_instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value and not _SERVICE_SID.fullmatch(value):
        raise ConfigError(f"expected MG and 32 hex digits, got {value!r}", key=attribute.name)


def _optional_url(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value:
        http_url(instance, attribute, value)


def _region(_instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value and value.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise ConfigError(f"{value!r} is not a region phonenumbers knows", key=attribute.name)


@attrs.frozen(kw_only=True)
class TwilioOptions:
    """What ``[channels.NAME]`` may say to the ``twilio`` plugin."""

    account_sid: str = option(help="the account SID (AC...)", validator=_account_sid)
    auth_token: str = secret(help="the account's auth token (basic auth password)")
    sender: str = option(
        "", help="the From number in E.164 (or set messaging_service_sid)", validator=_sender
    )
    messaging_service_sid: str = option(
        "",
        help="a Messaging Service (MG...) to send from instead of a number",
        validator=_service_sid,
    )
    status_callback: str = option(
        "",
        help="the URL Twilio posts status changes to; the outbox key is added to it",
        validator=_optional_url,
    )
    default_region: str = option(
        "",
        help="the region of numbers written without +country (US, GB, ...)",
        validator=_region,
    )
    base_url: str = option(
        "https://api.twilio.com",
        help="the API's address (a local fake in tests)",
        converter=lambda url: str(url).rstrip("/"),
        validator=http_url,
    )
    timeout: float = option(10.0, help="seconds to wait for an answer", validator=positive)
    connect_timeout: float = option(5.0, help="seconds to wait to connect", validator=positive)

    def __attrs_post_init__(self) -> None:
        if not self.sender and not self.messaging_service_sid:
            raise ConfigError("set sender or messaging_service_sid", key="sender")


class TwilioChannel(Channel):
    """Sends SMS (or WhatsApp with ``kind = "whatsapp"``) through Twilio's Messages API; the
    options are :class:`TwilioOptions`."""

    kinds = (ChannelKind.SMS, ChannelKind.WHATSAPP)
    Options = TwilioOptions
    options: TwilioOptions

    def __init__(self, settings: PluginSettings, *, runtime: Runtime | None = None) -> None:
        super().__init__(settings, runtime=runtime)
        self.target = urlsplit(self.options.base_url).netloc
        self.path = f"/2010-04-01/Accounts/{self.options.account_sid}/Messages.json"
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
        session.auth = (self.options.account_sid, self.options.auth_token)
        session.headers.update({"Accept": "application/json", "User-Agent": USER_AGENT})
        return session

    def form(self, message: Message) -> dict[str, str]:
        """The form fields of ``message``'s request (PermanentDeliveryError when it has none)."""
        doing = f"{self.target}: sending {message.idempotency_key}"
        region = self.options.default_region.upper() or None
        to = e164(message.to, region=region)
        if to is None:
            raise PermanentDeliveryError(f"{doing}: {message.to!r} is not a valid phone number")
        body = message.text.strip()
        if not body:
            raise PermanentDeliveryError(f"{doing}: the message has no text")
        prefix = _WHATSAPP if self.serves is ChannelKind.WHATSAPP else ""
        fields = {"To": prefix + to, "Body": body}
        if self.options.messaging_service_sid:
            fields["MessagingServiceSid"] = self.options.messaging_service_sid
        else:
            fields["From"] = prefix + (e164(self.options.sender) or self.options.sender)
        if self.options.status_callback:
            fields["StatusCallback"] = with_key(
                self.options.status_callback, message.idempotency_key
            )
        return fields

    def send(self, message: Message) -> DeliveryResult:
        doing = f"{self.target}: sending {message.idempotency_key}"
        fields = self.form(message)
        try:
            response = self.http.post(self.options.base_url + self.path, fields)
        except requests.RequestException as exc:
            raise request_failure(exc, target=self.target, doing=doing) from exc
        answer = json_object(response)
        if response.status_code in (200, 201):
            sid = str(answer.get("sid") or "") or None
            segments = answer.get("num_segments")
            detail = str(answer.get("status") or "queued")
            if segments:
                detail += f", {segments} segment(s)"
            return DeliveryResult(provider_message_id=sid, detail=detail)
        raise masked(self._failure(response, answer, doing), self.options.auth_token)

    def _failure(
        self, response: requests.Response, answer: dict[str, Any], doing: str
    ) -> DeliveryError:
        status = response.status_code
        code = answer.get("code")
        text = str(answer.get("message") or response.text[:200]).strip()
        reason = f"{doing}: HTTP {status}" + (f", error {code}" if code else "") + f": {text}"
        if code in ACCOUNT_CODES or status in (401, 403):
            return TransientDeliveryError(f"{reason} (the account needs attention)")
        if code in RATE_CODES:
            status = 429
        return status_failure(
            status,
            reason,
            retry_after_header=response.headers.get("Retry-After"),
            now=self.runtime.clock.now(),
        )
