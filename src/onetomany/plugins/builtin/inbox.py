"""The in-app inbox channel: keeps messages per contact in the store.

The host's UI reads them back through the engine (``Engine.inbox``, ``Engine.unread_count``,
``Engine.mark_read``, ...) or the web app (``onetomany.web``). Keeping the same idempotency key
twice keeps one message. A template's ``data.topic`` files the message under that topic.
"""

from __future__ import annotations

from onetomany.delivery.channels import Channel
from onetomany.errors import PermanentDeliveryError
from onetomany.model import ChannelKind, DeliveryResult, Message
from onetomany.plugins.hookspecs import hookimpl
from onetomany.plugins.registry import Register


class InAppChannel(Channel):
    """Stores in-app messages in the engine's store; needs no options."""

    kinds = (ChannelKind.INAPP,)

    def send(self, message: Message) -> DeliveryResult:
        store = self.runtime.store
        if store is None:
            raise PermanentDeliveryError(
                "the in-app channel runs only inside an engine with a store"
            )
        if message.contact_id is None:
            raise PermanentDeliveryError(
                f"{message.idempotency_key}: in-app messages need a contact"
            )
        item_id = store.inbox_add(
            contact_id=message.contact_id,
            idempotency_key=message.idempotency_key,
            touch=message.touch,
            title=message.subject,
            body=message.text,
            url=message.url,
            now=self.runtime.clock.now(),
            topic=_topic(message),
        )
        return DeliveryResult(provider_message_id=f"inbox:{item_id}")


@hookimpl
def onetomany_register_channels(register: Register[type[Channel]]) -> None:
    register("inapp", InAppChannel)


def _topic(message: Message) -> str | None:
    topic = message.data.get("topic")
    return topic if isinstance(topic, str) and topic else None
