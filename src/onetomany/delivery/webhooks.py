"""What a channel distribution's webhook parser reads and returns: the contract between a
provider's event callbacks and the web app's ``/webhooks/<channel>`` route.

A channel distribution registers a parser for its plugin name with the
``onetomany_register_webhook_parsers`` hook. The web app finds the program's channel named in
the URL, hands its parser the built channel (for its typed options: the credentials the
provider authenticates with) and the request; the parser checks the request is the
provider's (signature, timestamp, credentials) and turns it into :class:`ProviderEvent` values,
or raises :class:`WebhookRefused`, or :class:`WebhookReply` to answer a verification handshake
itself. It does no I/O of the store (a parser may fetch what the provider's signature scheme
needs, such as SNS's signing certificate; the app calls it in a worker thread): the web app
records the events (each once, by its provider id), maps them to outbox rows by their key (an
``inbound`` event to the contacts with its phone number), and sends hard bounces and
complaints to the suppression list.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs

from onetomany.errors import InputError

if TYPE_CHECKING:
    from onetomany.delivery.channels import Channel

#: Each kind of provider event, and the event the app records for it.
EVENT_NAMES: Mapping[str, str] = {
    "delivered": "message_delivered",
    "bounced": "message_bounced",
    "complained": "message_complained",
    "opened": "message_opened",
    "clicked": "message_clicked",
    # The provider's own unsubscribe link or list (SendGrid, Mailgun): the app also answers it
    # as an unsubscribe from the channel's kind, which records the ``unsubscribed`` event.
    "unsubscribed": "message_unsubscribed",
}
#: The kind of a message the contact sent us (not about one we sent): the parser names the
#: event to record (``whatsapp_inbound``).
INBOUND = "inbound"


class WebhookRefused(InputError):
    """A webhook request that is not the provider's (no or wrong credentials, a bad
    signature: ``status`` 401) or that does not read (400). Nothing is recorded."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class WebhookReply(Exception):
    """Raised by a parser to answer the request itself with ``body`` (text/plain, 200) and
    record nothing: a provider's verification handshake (WhatsApp's ``hub.challenge``)."""

    def __init__(self, body: str) -> None:
        super().__init__(body)
        self.body = body


@attrs.frozen(kw_only=True)
class WebhookRequest:
    """One request to ``/webhooks/<channel>[/<secret>]``, as the parser sees it."""

    #: Header names in lower case.
    headers: Mapping[str, str]
    body: bytes
    #: What follows ``/webhooks/<channel>/`` in the path ("" when nothing): a secret path.
    secret_path: str
    #: The engine's clock, for the replay window.
    now: datetime
    #: ``POST``, or ``GET`` for a provider's verification handshake.
    method: str = "POST"
    #: The URL's query string as received (``a=1&b=2``; "" when none): some providers sign
    #: the URL they called.
    query: str = ""


@attrs.frozen(kw_only=True)
class ProviderEvent:
    """One event a provider reported about a message it was sent."""

    #: The provider's id of the event: the same event delivered twice has the same id.
    id: str
    #: One of :data:`EVENT_NAMES`, or :data:`INBOUND`.
    kind: str
    #: The outbox row's idempotency key, read from the metadata the channel attached (None
    #: for an ``inbound`` event, which maps to contacts by ``address``).
    key: str | None
    at: datetime
    #: The recipient the event is about (a bounced address goes to the suppression list); for
    #: an ``inbound`` event, the sender's phone number in E.164.
    address: str = ""
    #: A bounce that will not go away (an unknown mailbox): the address is suppressed.
    hard: bool = False
    #: More to keep on the recorded event (the bounce's description, the clicked link).
    properties: Mapping[str, Any] = attrs.field(factory=dict)
    #: The name to record the event under instead of :data:`EVENT_NAMES`' (required for
    #: :data:`INBOUND`: ``whatsapp_inbound``).
    name: str = ""

    def __attrs_post_init__(self) -> None:
        if self.kind == INBOUND:
            if not self.name:
                raise ValueError("an inbound provider event needs the name to record it under")
        elif self.kind not in EVENT_NAMES:
            kinds = [*EVENT_NAMES, INBOUND]
            raise ValueError(f"provider event kind {self.kind!r} is not one of {kinds}")


WebhookParser = Callable[["Channel", WebhookRequest], list[ProviderEvent]]
"""``parser(channel, request) -> [ProviderEvent, ...]``; raises :class:`WebhookRefused`."""
