"""The Amazon SES v2 channel: one ``SendEmail`` call per message through boto3's ``sesv2``
client, which the channel keeps from ``open()`` to ``close()`` (its connection pool stays warm).

The message goes as raw MIME (``content = "raw"``, the default: the bytes the core's composer
writes, so the Message-ID derived from the outbox key, the headers and the parts are the same as
over SMTP) or as SES's simple content (``content = "simple"``: subject, text, HTML and the
message's extra headers, which SES assembles). The outbox key travels as the message tag
``onetomany_key`` (:func:`~onetomany_ses.tags.tag_value`), so SES's events map back to the row;
the configuration set, when given, is what publishes those events.

boto3 retries by itself by default; here its retries are off (one attempt) because the core's
dispatcher retries, and records each attempt. What the answers mean:

- 200 with ``MessageId``: sent;
- ``TooManyRequestsException``, ``Throttling``/``ThrottlingException`` (the sending rate or the
  daily quota), ``SendingPausedException`` and any 5xx: transient;
- an unrecognised or expired credential, a bad signature, ``AccessDenied``: transient, so the
  messages wait for someone to fix the account rather than being dead-lettered;
- ``MessageRejected``, ``MailFromDomainNotVerifiedException``, ``AccountSuspendedException``,
  ``BadRequestException``, ``NotFoundException`` and other 4xx: permanent;
- no connection (refused, DNS, connect timeout): transient, nothing was sent;
- sent and no answer (a read timeout, the connection closed before the answer): unknown, since
  SES may have accepted it and takes no idempotency key.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import attrs
import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ProxyConnectionError,
    ReadTimeoutError,
    SSLError,
)

from onetomany.delivery.channels import Channel, Runtime
from onetomany.delivery.http import masked, retry_after
from onetomany.delivery.mime import build_email
from onetomany.errors import (
    ConfigError,
    DeliveryError,
    PermanentDeliveryError,
    TransientDeliveryError,
    UnknownOutcomeError,
)
from onetomany.model import ChannelKind, DeliveryResult, Message
from onetomany.plugins.options import email_address, http_url, option, positive, secret
from onetomany.plugins.settings import PluginSettings
from onetomany_ses.tags import KEY_TAG, tag_value

if TYPE_CHECKING:
    from datetime import datetime

USER_AGENT_EXTRA = "onetomany-ses/0.1"
#: Error codes that say "not now": rate limits, quotas, a paused configuration set.
TRANSIENT_CODES = frozenset(
    {
        "TooManyRequestsException",
        "Throttling",
        "ThrottlingException",
        "SendingPausedException",
        "ServiceUnavailable",
        "InternalFailure",
    }
)
#: Error codes that speak of the credentials, not the message: wait for someone to fix them.
ACCOUNT_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "AccessDenied",
        "AccessDeniedException",
        "MissingAuthenticationToken",
    }
)
#: Error codes refused for good, whatever their HTTP status.
PERMANENT_CODES = frozenset(
    {
        "MessageRejected",
        "MailFromDomainNotVerifiedException",
        "AccountSuspendedException",
        "BadRequestException",
        "NotFoundException",
    }
)
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]")


def _region(_instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not _REGION.fullmatch(value):
        raise ConfigError(
            f"expected an AWS region like eu-west-1, got {value!r}", key=attribute.name
        )


def _optional_url(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value:
        http_url(instance, attribute, value)


@attrs.frozen(kw_only=True)
class SesOptions:
    """What ``[channels.NAME]`` may say to the ``ses`` plugin."""

    region: str = option("us-east-1", help="the AWS region SES sends from", validator=_region)
    sender: str = option(
        "", help="the From address when the program sets none", validator=email_address
    )
    configuration_set: str = option(
        "", help="the configuration set to send with (its event destination publishes events)"
    )
    content: Literal["raw", "simple"] = option(
        "raw",
        help="raw: the composer's MIME message; simple: subject, text and HTML for SES to build",
        validator=attrs.validators.in_(("raw", "simple")),
    )
    access_key_id: str = option(
        "", help="an access key id (empty: boto3's own chain: environment, files, role)"
    )
    secret_access_key: str = secret("", help="the secret access key that goes with it")
    session_token: str = secret("", help="a session token, for temporary credentials")
    endpoint_url: str = option(
        "",
        help="the API's address instead of AWS's (a local fake in tests)",
        validator=_optional_url,
    )
    timeout: float = option(10.0, help="seconds to wait for an answer", validator=positive)
    connect_timeout: float = option(5.0, help="seconds to wait to connect", validator=positive)
    sns_topic_arn: str = option(
        "",
        help="the SNS topic SES publishes this channel's events to; webhooks from any other "
        "topic are refused (empty: the channel takes no webhooks)",
    )
    webhook_max_age_hours: float = option(
        24.0, help="refuse SNS messages dated longer ago (replays)", validator=positive
    )
    sns_allow_loopback: bool = option(
        False,
        help="tests only: fetch SNS certificates and confirm subscriptions at 127.0.0.1 too",
    )

    def __attrs_post_init__(self) -> None:
        if bool(self.access_key_id) != bool(self.secret_access_key):
            raise ConfigError(
                "set access_key_id and secret_access_key together (or neither, for boto3's "
                "own credential chain)",
                key="access_key_id",
            )


class SesChannel(Channel):
    """Sends email through Amazon SES v2; the options are :class:`SesOptions`."""

    kinds = (ChannelKind.EMAIL,)
    Options = SesOptions
    options: SesOptions

    def __init__(self, settings: PluginSettings, *, runtime: Runtime | None = None) -> None:
        super().__init__(settings, runtime=runtime)
        endpoint = self.options.endpoint_url
        self.target = urlsplit(endpoint).netloc if endpoint else f"email.{self.options.region}"
        self._client: Any = None

    # -- the client ----------------------------------------------------------------------------

    def open(self) -> None:
        self.client()

    def client(self) -> Any:
        """The channel's one ``sesv2`` client, with boto3's retries off (the core retries)."""
        if self._client is None:
            options = self.options
            session = boto3.session.Session(
                aws_access_key_id=options.access_key_id or None,
                aws_secret_access_key=options.secret_access_key or None,
                aws_session_token=options.session_token or None,
                region_name=options.region,
            )
            config = Config(
                retries={"total_max_attempts": 1, "mode": "standard"},
                connect_timeout=options.connect_timeout,
                read_timeout=options.timeout,
                user_agent_extra=USER_AGENT_EXTRA,
            )
            self._client = session.client(
                "sesv2", endpoint_url=options.endpoint_url or None, config=config
            )
        return self._client

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    # -- sending -------------------------------------------------------------------------------

    def request(self, message: Message) -> dict[str, Any]:
        """The ``SendEmail`` parameters for ``message`` (PermanentDeliveryError when it cannot
        have any)."""
        doing = f"{self.target}: sending {message.idempotency_key}"
        sender = message.sender or self.options.sender
        if not sender:
            raise PermanentDeliveryError(
                f"{doing}: the message names no sender and the channel's 'sender' option of "
                f"channel {self.settings.name!r} is empty"
            )
        tags = [{"Name": KEY_TAG, "Value": tag_value(message.idempotency_key, doing=doing)}]
        parameters: dict[str, Any] = {
            "FromEmailAddress": sender,
            "Destination": {"ToAddresses": [message.to]},
            "EmailTags": tags,
        }
        if self.options.configuration_set:
            parameters["ConfigurationSetName"] = self.options.configuration_set
        if self.options.content == "raw":
            data = build_email(message, sender=sender, date=self.runtime.clock.now())
            parameters["Content"] = {"Raw": {"Data": data}}
            return parameters
        if message.reply_to:
            parameters["ReplyToAddresses"] = [message.reply_to]
        body: dict[str, Any] = {}
        if message.text:
            body["Text"] = {"Data": message.text, "Charset": "UTF-8"}
        if message.html:
            body["Html"] = {"Data": message.html, "Charset": "UTF-8"}
        if not body:
            raise PermanentDeliveryError(f"{doing}: the message has neither text nor HTML")
        simple: dict[str, Any] = {
            "Subject": {"Data": message.subject, "Charset": "UTF-8"},
            "Body": body,
        }
        if message.headers:
            simple["Headers"] = [{"Name": k, "Value": v} for k, v in message.headers.items()]
        parameters["Content"] = {"Simple": simple}
        return parameters

    def send(self, message: Message) -> DeliveryResult:
        doing = f"{self.target}: sending {message.idempotency_key}"
        parameters = self.request(message)
        try:
            answer = self.client().send_email(**parameters)
        except ClientError as exc:
            raise self._masked(
                answer_error(exc, doing=doing, now=self.runtime.clock.now())
            ) from exc
        except BotoCoreError as exc:
            raise self._masked(transport_error(exc, doing=doing)) from exc
        message_id = answer.get("MessageId")
        return DeliveryResult(
            provider_message_id=str(message_id) if message_id else None, detail="accepted"
        )

    def _masked(self, error: DeliveryError) -> DeliveryError:
        secrets = [s for s in (self.options.secret_access_key, self.options.session_token) if s]
        return masked(error, *secrets)


def answer_error(exc: ClientError, *, doing: str, now: datetime) -> DeliveryError:
    """The delivery error for an answer SES gave (an HTTP status and an error code)."""
    error = exc.response.get("Error", {})
    metadata = exc.response.get("ResponseMetadata", {})
    code = str(error.get("Code") or "")
    text = str(error.get("Message") or "").strip()[:300]
    status = int(metadata.get("HTTPStatusCode") or 0)
    reason = f"{doing}: HTTP {status}, {code or 'no error code'}: {text}"
    if code in ACCOUNT_CODES or status in (401, 403):
        return TransientDeliveryError(f"{reason} (the account needs attention)")
    headers = metadata.get("HTTPHeaders") or {}
    wait = retry_after(headers.get("retry-after"), now=now)
    if code in TRANSIENT_CODES or status == 429 or status >= 500:
        return TransientDeliveryError(reason, retry_after=wait)
    if code in PERMANENT_CODES or 400 <= status < 500:
        return PermanentDeliveryError(reason)
    return TransientDeliveryError(reason, retry_after=wait)


def transport_error(exc: BotoCoreError, *, doing: str) -> DeliveryError:
    """The delivery error for a request that got no answer: transient when nothing was sent,
    unknown when the request went out."""
    what = f"{doing}: {type(exc).__name__}"
    # Each of these fails before the request leaves: the connection, the proxy, the TLS
    # handshake (ConnectTimeoutError is EndpointConnectionError's sibling, not its child).
    if isinstance(
        exc, ConnectTimeoutError | EndpointConnectionError | ProxyConnectionError | SSLError
    ):
        return TransientDeliveryError(f"{what}: could not connect; nothing was sent")
    if isinstance(exc, NoCredentialsError):
        return TransientDeliveryError(
            f"{what}: no AWS credentials found (the account needs attention)"
        )
    if isinstance(exc, ReadTimeoutError | ConnectionClosedError):
        return UnknownOutcomeError(
            f"{what}: the request went out and no complete answer came back; SES may have "
            "accepted it"
        )
    return UnknownOutcomeError(f"{what}: {str(exc)[:200]}; SES may have accepted it")
