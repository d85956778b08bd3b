"""onetomany-example-webhook: a onetomany channel that POSTs each message as JSON to a URL.

Installing the distribution registers the ``example_webhook`` channel type. A program uses it with::

    [channels.notify]
    plugin = "example_webhook"
    url = "https://hooks.example.com/onetomany"
    token = "${WEBHOOK_TOKEN}"   # optional: sent as "Authorization: Bearer ..."
    kind = "inapp"               # optional: the kind of message it renders (default inapp)
    timeout = 10.0               # optional: seconds to wait for an answer
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import attrs
import requests
from onetomany import Channel, ChannelKind, DeliveryResult, Message, hookimpl
from onetomany.delivery.http import request_failure, status_failure
from onetomany.errors import PermanentDeliveryError
from onetomany.plugins.options import http_url, option, positive, secret
from onetomany.plugins.registry import Register

__all__ = ["WebhookChannel", "WebhookOptions", "onetomany_register_channels"]

USER_AGENT = "onetomany-example-webhook/0.1"


@attrs.frozen(kw_only=True)
class WebhookOptions:
    """What ``[channels.NAME]`` may say; the core checks each value against its type."""

    url: str = option(help="where each message is POSTed (http or https)", validator=http_url)
    token: str = secret("", help='sent as "Authorization: Bearer ..." when set')
    timeout: float = option(10.0, help="seconds to wait for an answer", validator=positive)


class WebhookChannel(Channel):
    """POSTs one JSON document per message; one ``requests.Session`` per channel."""

    kinds = (ChannelKind.INAPP, ChannelKind.CSM, ChannelKind.EMAIL)
    Options = WebhookOptions
    options: WebhookOptions

    session: requests.Session | None = None

    @property
    def target(self) -> str:
        # Webhook URLs often carry a secret in their path or query: errors name the host only.
        parts = urlsplit(self.options.url)
        return f"{parts.scheme}://{parts.netloc}"

    def open(self) -> None:
        self._session()

    def _session(self) -> requests.Session:
        """The channel's one session: every message reuses its kept-alive connections."""
        if self.session is None:
            session = requests.Session()
            session.headers["User-Agent"] = USER_AGENT
            if self.options.token:
                session.headers["Authorization"] = f"Bearer {self.options.token}"
            self.session = session
        return self.session

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None

    def send(self, message: Message) -> DeliveryResult:
        doing = f"posting {message.idempotency_key}"
        try:
            response = self._session().post(
                self.options.url,
                json=payload(message),
                headers={"Idempotency-Key": message.idempotency_key},
                timeout=self.options.timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            # Nothing sent: transient. Sent and no answer: unknown. Never the URL in the text.
            raise request_failure(exc, target=self.target, doing=doing) from exc
        status = response.status_code
        if 200 <= status < 300:
            return DeliveryResult(provider_message_id=_reply_id(response), detail=f"HTTP {status}")
        reason = f"{self.target}: {doing}: HTTP {status}: {response.text[:200]}"
        error = status_failure(
            status,
            reason,
            retry_after_header=response.headers.get("Retry-After"),
            now=self.runtime.clock.now(),
        )
        if isinstance(error, PermanentDeliveryError) and 300 <= status < 400:
            error = PermanentDeliveryError(f"{reason} (redirects are not followed)")
        raise error


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


def _reply_id(response: requests.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    reply_id = body.get("id") if isinstance(body, dict) else None
    return str(reply_id) if reply_id is not None else None


@hookimpl
def onetomany_register_channels(register: Register[type[Channel]]) -> None:
    register("example_webhook", WebhookChannel)
