"""The Slack channel: CSM tasks as Block Kit messages, through the Web API or a webhook.

With ``token`` (a bot token), each task is a form-encoded ``POST /chat.postMessage`` to
``channel`` (or, when unset, to the task's recipient: the account owner's Slack ID or a
channel name), with ``Authorization: Bearer``. With ``webhook_url`` (an incoming webhook),
each task is a JSON ``POST`` to that URL, which fixes the channel. What the answers mean:

- Web API, HTTP 200 with ``ok: true``: sent; the result's id is ``channel/ts``;
- Web API, HTTP 200 with ``ok: false``: Slack's ``error`` decides: ``ratelimited``,
  ``rate_limited``, ``internal_error``, ``fatal_error``, ``service_unavailable``,
  ``request_timeout`` are transient; every other (``channel_not_found``, ``not_in_channel``,
  ``is_archived``, ``invalid_auth``, ``not_authed``, ``msg_too_long``, ...) permanent;
- webhook, HTTP 200 ``ok``: sent; its 4xx answers (``invalid_payload``, ``action_prohibited``,
  ``no_service``, ``channel_is_archived``) permanent;
- HTTP 429 and 5xx: transient, never retried sooner than ``Retry-After``;
- no connection: transient; sent and no answer: unknown.

The token and the webhook URL (which is itself the credential) are secrets: errors name only
the host. The channel never retries by itself.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import attrs
import requests

from onetomany.delivery.channels import Channel, Runtime
from onetomany.delivery.http import (
    PreparedSession,
    json_object,
    masked,
    request_failure,
    status_failure,
)
from onetomany.errors import ConfigError, DeliveryError, PermanentDeliveryError
from onetomany.model import ChannelKind, DeliveryResult, Message
from onetomany.plugins.options import http_url, option, positive, secret
from onetomany.plugins.settings import PluginSettings
from onetomany_slack.blocks import blocks, due_date, fallback_text

USER_AGENT = "onetomany-slack/0.1"
#: Slack's ``error`` values that mean "not now".
TRANSIENT_ERRORS = frozenset(
    {
        "ratelimited",
        "rate_limited",
        "internal_error",
        "fatal_error",
        "service_unavailable",
        "request_timeout",
    }
)


def _optional_url(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value:
        http_url(instance, attribute, value)


def _days(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not 0 <= value <= 365:
        raise ConfigError(f"expected 0 to 365 days, got {value}", key=attribute.name)


@attrs.frozen(kw_only=True)
class SlackOptions:
    """What ``[channels.NAME]`` may say to the ``slack`` plugin: a ``token`` or a
    ``webhook_url``, not both."""

    token: str = secret("", help="a bot token (xoxb-...) for chat.postMessage")
    webhook_url: str = secret("", help="an incoming webhook URL, instead of a token")
    channel: str = option(
        "", help="where tasks go (#cs-tasks, C0123...); unset: to the account owner"
    )
    due_in_days: int = option(
        2, help="a task is due this many days after it was queued", validator=_days
    )
    base_url: str = option(
        "https://slack.com/api",
        help="the Web API's address (a local fake in tests)",
        converter=lambda url: str(url).rstrip("/"),
        validator=http_url,
    )
    timeout: float = option(10.0, help="seconds to wait for an answer", validator=positive)
    connect_timeout: float = option(5.0, help="seconds to wait to connect", validator=positive)

    def __attrs_post_init__(self) -> None:
        if bool(self.token) == bool(self.webhook_url):
            raise ConfigError("set either token or webhook_url (one of them)", key="token")
        _optional_url(self, attrs.fields(SlackOptions).webhook_url, self.webhook_url)


class SlackChannel(Channel):
    """Posts CSM tasks to Slack; the options are :class:`SlackOptions`."""

    kinds = (ChannelKind.CSM,)
    Options = SlackOptions
    options: SlackOptions

    def __init__(self, settings: PluginSettings, *, runtime: Runtime | None = None) -> None:
        super().__init__(settings, runtime=runtime)
        url = self.options.webhook_url or self.options.base_url
        self.target = urlsplit(url).netloc
        self.http = PreparedSession(
            self._new_session, timeout=(self.options.connect_timeout, self.options.timeout)
        )

    def open(self) -> None:
        self.http.open()

    def session(self) -> requests.Session:
        """The channel's one Session: every task reuses its kept-alive connections."""
        return self.http.session()

    def close(self) -> None:
        self.http.close()

    def _new_session(self) -> requests.Session:
        session = requests.Session()
        session.headers.update({"Accept": "application/json", "User-Agent": USER_AGENT})
        if self.options.token:
            session.headers["Authorization"] = f"Bearer {self.options.token}"
        return session

    def payload(self, message: Message) -> dict[str, Any]:
        """What Slack receives for ``message``: ``text`` and ``blocks`` (and ``channel`` for
        the Web API)."""
        due = due_date(message, days=self.options.due_in_days)
        document: dict[str, Any] = {
            "text": fallback_text(message, due=due),
            "blocks": blocks(message, due=due),
        }
        if not self.options.webhook_url:
            document["channel"] = self.options.channel or message.to
        return document

    def send(self, message: Message) -> DeliveryResult:
        doing = f"{self.target}: sending {message.idempotency_key}"
        document = self.payload(message)
        try:
            if self.options.webhook_url:
                response = self.http.post(
                    self.options.webhook_url,
                    json.dumps(document).encode(),
                    headers={"Content-Type": "application/json"},
                )
            else:
                form = dict(document, blocks=json.dumps(document["blocks"]))
                response = self.http.post(self.options.base_url + "/chat.postMessage", form)
        except requests.RequestException as exc:
            raise self._hidden(request_failure(exc, target=self.target, doing=doing)) from exc
        if response.status_code != 200:
            detail = response.text[:200].strip()
            raise self._hidden(
                status_failure(
                    response.status_code,
                    f"{doing}: HTTP {response.status_code}: {detail}".rstrip(": "),
                    retry_after_header=response.headers.get("Retry-After"),
                    now=self.runtime.clock.now(),
                )
            )
        if self.options.webhook_url:
            return DeliveryResult(detail=response.text[:50].strip() or "ok")
        return self._web_api_answer(response, doing)

    def _web_api_answer(self, response: requests.Response, doing: str) -> DeliveryResult:
        answer = json_object(response)
        if not answer:
            raise PermanentDeliveryError(f"{doing}: Slack answered no JSON object")
        if answer.get("ok") is True:
            ident = f"{answer.get('channel', '')}/{answer.get('ts', '')}"
            return DeliveryResult(provider_message_id=ident, detail="ok")
        error = str(answer.get("error") or "unknown_error")
        reason = f"{doing}: Slack answered {error}"
        if error in TRANSIENT_ERRORS:
            raise self._hidden(
                status_failure(
                    429,
                    reason,
                    retry_after_header=response.headers.get("Retry-After"),
                    now=self.runtime.clock.now(),
                )
            )
        raise self._hidden(PermanentDeliveryError(reason))

    def _hidden(self, error: DeliveryError) -> DeliveryError:
        return masked(error, self.options.token, self.options.webhook_url)
