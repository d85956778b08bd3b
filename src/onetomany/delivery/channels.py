"""The channel contract: one small base class with one method to write.

A channel plugin subclasses :class:`Channel`, sets ``kind``, and implements :meth:`send`. It
raises :class:`~onetomany.errors.TransientDeliveryError` for failures worth retrying and
:class:`~onetomany.errors.PermanentDeliveryError` for the rest; it never retries by itself and
never returns a failure flag. The dispatcher opens a channel once per batch (``with channel:``)
so a plugin can reuse one connection for many messages.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, ClassVar

import attrs

from onetomany.errors import DeliveryError
from onetomany.model import ChannelKind, DeliveryResult, Message
from onetomany.model.clock import Clock, SystemClock
from onetomany.plugins.settings import PluginSettings

if TYPE_CHECKING:
    from onetomany.store import Store


@attrs.frozen(kw_only=True)
class Runtime:
    """What the engine lends a channel: its clock and, for built-in channels, its store."""

    clock: Clock = attrs.field(factory=SystemClock)
    store: Store | None = None


class Channel(abc.ABC):
    """Delivers rendered messages of one :class:`ChannelKind` to one provider."""

    #: What the channel delivers. Plugins that serve several kinds read it from settings.
    kind: ClassVar[ChannelKind] = ChannelKind.EMAIL

    def __init__(self, settings: PluginSettings, *, runtime: Runtime | None = None) -> None:
        self.settings = settings
        self.runtime = runtime or Runtime()

    @property
    def serves(self) -> ChannelKind:
        """The kind of message this instance renders and sends."""
        return self.kind

    @abc.abstractmethod
    def send(self, message: Message) -> DeliveryResult:
        """Deliver one message, or raise a :class:`~onetomany.errors.DeliveryError`."""

    def send_many(self, messages: Sequence[Message]) -> Iterator[DeliveryResult | DeliveryError]:
        """Deliver several messages, yielding one outcome per message, in order.

        The default calls :meth:`send` for each; a provider with a batch API overrides it.
        Outcomes are yielded as they happen so the dispatcher records each one before the
        next message leaves.
        """
        for message in messages:
            try:
                yield self.send(message)
            except DeliveryError as error:
                yield error

    def open(self) -> None:  # noqa: B027 - optional hook, empty on purpose
        """Acquire connections before a batch. Optional."""

    def close(self) -> None:  # noqa: B027 - optional hook, empty on purpose
        """Release what :meth:`open` acquired. Optional; must be safe to call twice."""

    def __enter__(self) -> Channel:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.settings!r}>"
