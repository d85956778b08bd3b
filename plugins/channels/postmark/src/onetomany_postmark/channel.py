"""The Postmark channel: every message of a dispatch batch over one kept-alive Session.

One message goes to ``POST /email``; a batch from the dispatcher goes to ``POST
/email/batch``, up to ``batch_size`` (at most 500) messages a call, and yields one outcome per
message in order. What the answers mean:

- accepted (HTTP 200, ``ErrorCode`` 0): a ``DeliveryResult`` with Postmark's ``MessageID``;
- ``ErrorCode`` 300 (invalid request, such as an illegal address) or 406 (inactive recipient):
  permanent, for that message only;
- ``ErrorCode`` 10, 405, 412, 413 (the token, the account's credits or standing): transient,
  so the messages wait for someone to fix the account rather than being dead-lettered;
- HTTP 429 and 5xx: transient, never retried sooner than ``Retry-After``; other failures
  permanent;
- no connection: transient; sent and no answer (a read timeout, a dropped connection): the
  outcome is unknown (Postmark has no idempotency key, so the dispatcher does not resend it
  unless the touch asks).

The channel never retries by itself. The outbox key travels as metadata (``onetomany_key``) so
Postmark's webhooks map back to the row. The token is only ever in the Session's headers.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

import attrs
import requests

from onetomany.delivery.channels import Channel, Runtime
from onetomany.delivery.http import PreparedSession, request_failure, status_failure
from onetomany.errors import (
    ConfigError,
    DeliveryError,
    UnknownOutcomeError,
)
from onetomany.model import ChannelKind, DeliveryResult, Message
from onetomany.plugins.options import MASK, email_address, http_url, option, positive, secret
from onetomany.plugins.settings import PluginSettings
from onetomany_postmark import wire

log = logging.getLogger(__name__)

USER_AGENT = "onetomany-postmark/0.1"


def _batch(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not 1 <= value <= wire.MAX_BATCH:
        raise ConfigError(f"expected 1 to {wire.MAX_BATCH}, got {value}", key=attribute.name)


@attrs.frozen(kw_only=True)
class PostmarkOptions:
    """What ``[channels.NAME]`` may say to the ``postmark`` plugin."""

    server_token: str = secret(help="the server's API token (X-Postmark-Server-Token)")
    sender: str = option(
        "", help="the From address when the program sets none", validator=email_address
    )
    message_stream: str = option("outbound", help="the message stream to send through")
    base_url: str = option(
        "https://api.postmarkapp.com",
        help="the API's address (a local fake in tests)",
        converter=lambda url: str(url).rstrip("/"),
        validator=http_url,
    )
    timeout: float = option(10.0, help="seconds to wait for an answer", validator=positive)
    connect_timeout: float = option(5.0, help="seconds to wait to connect", validator=positive)
    batch_size: int = option(
        wire.MAX_BATCH,
        help="messages per call to the batch endpoint (1 to 500; 1: one call per message)",
        validator=_batch,
    )
    webhook_username: str = option(
        "", help="the user name of the Basic auth in the webhook URL set in Postmark"
    )
    webhook_password: str = secret("", help="the password of the Basic auth in the webhook URL")
    webhook_secret_path: str = secret(
        "", help="a random last path segment of the webhook URL: /webhooks/<channel>/<it>"
    )
    webhook_max_age_hours: float = option(
        24.0,
        help="refuse webhook events dated longer ago (replays); Postmark retries for ~10.5 hours",
        validator=positive,
    )


class PostmarkChannel(Channel):
    """Sends email through Postmark's API; the options are :class:`PostmarkOptions`."""

    kinds = (ChannelKind.EMAIL,)
    Options = PostmarkOptions
    options: PostmarkOptions

    def __init__(self, settings: PluginSettings, *, runtime: Runtime | None = None) -> None:
        super().__init__(settings, runtime=runtime)
        self.target = urlsplit(self.options.base_url).netloc
        self.http = PreparedSession(
            self._new_session, timeout=(self.options.connect_timeout, self.options.timeout)
        )

    # -- the session ---------------------------------------------------------------------------

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
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                "X-Postmark-Server-Token": self.options.server_token,
            }
        )
        return session

    # -- sending -------------------------------------------------------------------------------

    def send(self, message: Message) -> DeliveryResult:
        doing = f"{self.target}: sending {message.idempotency_key}"
        document = self._body(message)
        response = self._post("/email", document, doing)
        if response.status_code == 200:
            code, text, message_id = wire.read_answer(_json(response))
            if code <= 0:  # 0, or a 200 whose body cannot be read: Postmark took it
                return DeliveryResult(provider_message_id=message_id, detail=text or "OK")
            raise self._masked(wire.answer_error(code, text, doing=doing))
        raise self._failure(response, doing)

    def send_many(self, messages: Sequence[Message]) -> Iterator[DeliveryResult | DeliveryError]:
        """One outcome per message, in order, through the batch endpoint (``batch_size = 1``:
        each message on its own through the single one)."""
        if len(messages) == 1 or self.options.batch_size == 1:
            yield from super().send_many(messages)
            return
        for start in range(0, len(messages), self.options.batch_size):
            yield from self._batch(messages[start : start + self.options.batch_size])

    def _batch(self, messages: Sequence[Message]) -> Iterator[DeliveryResult | DeliveryError]:
        # A message that cannot be written keeps its place in the order, out of the call.
        slots: list[dict[str, Any] | DeliveryError] = []
        for message in messages:
            try:
                slots.append(self._body(message))
            except DeliveryError as error:
                slots.append(error)
        documents = [slot for slot in slots if isinstance(slot, dict)]
        doing = f"{self.target}: sending a batch of {len(documents)}"
        answers: list[object] = []
        failure: DeliveryError | None = None
        if documents:
            try:
                response = self._post("/email/batch", documents, doing)
                if response.status_code != 200:
                    failure = self._failure(response, doing)
                else:
                    body = _json(response)
                    answers = body if isinstance(body, list) else []
                    if len(answers) != len(documents):
                        failure = UnknownOutcomeError(
                            f"{doing}: Postmark answered {len(answers)} result(s) for "
                            f"{len(documents)} message(s); which were accepted is unknown"
                        )
            except DeliveryError as error:
                failure = error
        replies = iter(answers)
        for message, slot in zip(messages, slots, strict=True):
            if isinstance(slot, DeliveryError):
                yield slot
            elif failure is not None:
                yield type(failure)(
                    f"{failure} ({message.idempotency_key})",
                    **_retry_after_of(failure),
                )
            else:
                yield self._outcome(message, next(replies))

    def _outcome(self, message: Message, answer: object) -> DeliveryResult | DeliveryError:
        code, text, message_id = wire.read_answer(answer)
        if code == 0:
            return DeliveryResult(provider_message_id=message_id, detail=text or "OK")
        doing = f"{self.target}: sending {message.idempotency_key}"
        if code < 0:
            return UnknownOutcomeError(f"{doing}: {text}")
        return self._masked(wire.answer_error(code, text, doing=doing))

    # -- the wire ------------------------------------------------------------------------------

    def _body(self, message: Message) -> dict[str, Any]:
        return wire.body(
            message,
            sender=message.sender or self.options.sender,
            stream=self.options.message_stream,
        )

    def _post(self, path: str, document: object, doing: str) -> requests.Response:
        data = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
        try:
            return self.http.post(self.options.base_url + path, data)
        except requests.RequestException as exc:
            raise request_failure(exc, target=self.target, doing=doing) from exc

    def _failure(self, response: requests.Response, doing: str) -> DeliveryError:
        status = response.status_code
        code, text, _ = wire.read_answer(_json(response))
        if code > 0 and (status in (401, 422) or code in wire.ACCOUNT_CODES):
            return self._masked(wire.answer_error(code, text, doing=doing))
        detail = text if code >= 0 else response.text[:200]
        error = status_failure(
            status,
            f"{doing}: HTTP {status}: {detail}".rstrip(": "),
            retry_after_header=response.headers.get("Retry-After"),
            now=self.runtime.clock.now(),
        )
        return self._masked(error)

    def _masked(self, error: DeliveryError) -> DeliveryError:
        # Postmark's messages do not quote the token, but an error is stored and shown.
        text = str(error)
        token = self.options.server_token
        if token and token in text:
            return type(error)(text.replace(token, MASK), **_retry_after_of(error))
        return error


def _retry_after_of(error: DeliveryError) -> dict[str, Any]:
    """The ``retry_after`` keyword to copy ``error`` with, for the errors that carry one."""
    return {"retry_after": error.retry_after} if hasattr(error, "retry_after") else {}


def _json(response: requests.Response) -> object:
    try:
        return response.json()
    except ValueError:
        return None
