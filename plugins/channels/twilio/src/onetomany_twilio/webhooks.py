"""Twilio's status callbacks, read into :class:`~onetomany.delivery.webhooks.ProviderEvent`
values for the web app's ``/webhooks/<channel>``.

Twilio posts a form (``MessageSid``, ``MessageStatus``, ``ErrorCode``, ``To``, ...) to the
``StatusCallback`` URL the channel gave with the message: the channel's ``status_callback``
option with the outbox key added as ``onetomany_key``, which is how each callback maps back to
its row. Twilio signs each request (``X-Twilio-Signature``): the base64 HMAC-SHA1, keyed with
the auth token, of the full URL it called followed by every POST parameter's name and value,
sorted by name. The URL is rebuilt from ``status_callback`` (scheme, host and path, as Twilio
was given them, whatever a proxy in front of the app rewrote) and the query the request
carried. A channel without ``status_callback`` takes no callbacks.

What is read: ``delivered`` (delivered), ``undelivered`` and ``failed`` (bounced; hard, so the
number is suppressed, for the error codes that say the number cannot take messages:
:data:`HARD_CODES`), ``read`` (opened, WhatsApp through Twilio); other statuses (``queued``,
``sent``, ...) are acknowledged. Twilio's callbacks carry no time, so replays are bounded by
the event id alone: ``MessageSid`` and the status, recorded once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from onetomany.delivery.channels import Channel
from onetomany.delivery.webhooks import ProviderEvent, WebhookRefused, WebhookRequest
from onetomany_twilio.channel import TwilioOptions, e164, key_from_callback

#: Error codes after which the number will not take messages: it is suppressed.
#: 30005 unknown destination, 30006 landline or unreachable carrier, 21614 not a mobile.
HARD_CODES = frozenset({"30005", "30006", "21614"})
#: The statuses read, and the event each one is.
STATUSES = {
    "delivered": "delivered",
    "undelivered": "bounced",
    "failed": "bounced",
    "read": "opened",
}


def signature(auth_token: str, url: str, parameters: list[tuple[str, str]]) -> str:
    """Twilio's ``X-Twilio-Signature`` of a POST to ``url`` with ``parameters``."""
    data = url + "".join(name + value for name, value in sorted(parameters))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def called_url(options: TwilioOptions, query: str) -> str:
    """The URL Twilio called: ``status_callback``'s scheme, host and path with ``query``."""
    parts = urlsplit(options.status_callback)
    return urlunsplit(parts._replace(query=query, fragment=""))


def parse_webhook(channel: Channel, request: WebhookRequest) -> list[ProviderEvent]:
    """The event of one Twilio status callback to ``channel``, once its signature holds;
    WebhookRefused says why another is refused."""
    options = channel.options
    if not isinstance(options, TwilioOptions):
        raise WebhookRefused(f"channel {channel.settings.name!r} is not a Twilio channel")
    if not options.status_callback:
        raise WebhookRefused(
            "this channel takes no status callbacks: set status_callback", status=401
        )
    if request.method != "POST":
        raise WebhookRefused("Twilio posts its status callbacks", status=405)
    given = request.headers.get("x-twilio-signature", "")
    if not given:
        raise WebhookRefused("the callback has no X-Twilio-Signature", status=401)
    try:
        parameters = parse_qsl(request.body.decode(), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError as exc:
        raise WebhookRefused("the body is not a UTF-8 form") from exc
    expected = signature(options.auth_token, called_url(options, request.query), parameters)
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise WebhookRefused("the X-Twilio-Signature does not match", status=401)
    fields = dict(parameters)
    if fields.get("AccountSid") != options.account_sid:
        raise WebhookRefused("the callback is for another Twilio account", status=401)
    status = fields.get("MessageStatus", "")
    sid = fields.get("MessageSid", "")
    if not sid:
        raise WebhookRefused("the callback has no MessageSid")
    kind = STATUSES.get(status)
    if kind is None:
        return []
    code = fields.get("ErrorCode", "")
    address = e164(fields.get("To", "")) or ""
    properties = {"provider_message_id": sid, "status": status}
    if code:
        properties["error_code"] = code[:10]
    return [
        ProviderEvent(
            id=f"{sid}:{status}",
            kind=kind,
            key=key_from_callback(request.query),
            at=request.now,
            address=address if kind == "bounced" else "",
            hard=kind == "bounced" and code in HARD_CODES,
            properties=properties,
        )
    ]
