"""The channel contract: one small base class with one method to write.

A channel plugin subclasses :class:`Channel`, states the kinds it can serve (``kinds``) and its
options (``Options``, an attrs class; see :mod:`onetomany.plugins.options`), and implements
:meth:`send`. It raises :class:`~onetomany.errors.TransientDeliveryError` for failures worth
retrying, :class:`~onetomany.errors.UnknownOutcomeError` when the request went out and no
answer came back, and :class:`~onetomany.errors.PermanentDeliveryError` for the rest; it never
retries by itself and never returns a failure flag. The dispatcher opens a channel once per
batch (``with channel:``) so a plugin can reuse one connection for many messages; with
``concurrency`` it sends from several threads, each through its own :meth:`Channel.replica`.

A channel's kind is stated one way: ``kinds``, the kinds it can serve, the first being the
default. A program picks another of them with ``kind = "..."`` in the channel's table; the
core reads and checks it (:meth:`Channel.kind_for`) and sets :attr:`Channel.serves`.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from onetomany.errors import ConfigError, DeliveryError
from onetomany.model import ChannelKind, DeliveryResult, Message
from onetomany.model.clock import Clock, SystemClock
from onetomany.plugins.options import NoOptions, options_problem, read_options, secret_fields
from onetomany.plugins.settings import PluginSettings

if TYPE_CHECKING:
    from onetomany.store import Store


@attrs.frozen(kw_only=True)
class Runtime:
    """What the engine lends a channel: its clock and, for built-in channels, its store."""

    clock: Clock = attrs.field(factory=SystemClock)
    store: Store | None = None


#: The option a program sets to pick one of a channel's ``kinds``; the core reads it.
KIND_OPTION = "kind"


class Channel(abc.ABC):
    """Delivers rendered messages of one :class:`ChannelKind` to one provider."""

    #: The kinds of message the channel can deliver; the first is the default, and a program
    #: picks another with ``kind = "..."``.
    kinds: ClassVar[tuple[ChannelKind, ...]] = (ChannelKind.EMAIL,)
    #: The channel's options: an attrs class (see :mod:`onetomany.plugins.options`).
    Options: ClassVar[type[Any]] = NoOptions
    #: True when the provider drops a second request with the same idempotency key, so a
    #: message whose outcome is unknown can be sent again safely.
    deduplicates: ClassVar[bool] = False
    #: True when :meth:`send_many` (overridden) still sends message by message, each only
    #: once the outcome of the one before was taken, as the default does. The dispatcher then
    #: hands it many messages at once yet checks the lease between two of them, and leaves
    #: out the rows another worker took meanwhile. A batch API that sends a group in one
    #: request must leave it False: its messages have all left when the first outcome comes.
    sends_one_by_one: ClassVar[bool] = False

    #: The checked options, an instance of :attr:`Options`.
    options: Any
    #: The kind of message this instance renders and sends.
    serves: ChannelKind

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for stale in ("kind", "serves"):
            if stale in vars(cls):
                raise TypeError(
                    f"{cls.__qualname__} sets {stale!r}: a channel states its kinds as "
                    f'kinds = (ChannelKind.X, ...), and a program picks one with kind = "..."'
                )

    def __init__(self, settings: PluginSettings, *, runtime: Runtime | None = None) -> None:
        self.serves = self.kind_for(settings)
        options = {k: v for k, v in settings.options.items() if k != KIND_OPTION}
        self.options = read_options(
            self.Options,
            options,
            where=_where(settings),
            file=settings.origin or None,
            base_dir=settings.base_dir,
        )
        self.settings = attrs.evolve(settings, secrets=secret_fields(self.Options))
        self.runtime = runtime or Runtime()

    @classmethod
    def kind_for(cls, settings: PluginSettings) -> ChannelKind:
        """The kind ``settings`` asks of this channel class (its ``kind`` option, else the
        first of :attr:`kinds`), checked; needs no credentials and opens nothing."""
        raw = settings.options.get(KIND_OPTION)
        if raw is None:
            return cls.kinds[0]
        for kind in cls.kinds:
            if isinstance(raw, str) and raw.strip().lower() == kind.value:
                return kind
        allowed = ", ".join(f'"{kind.value}"' for kind in cls.kinds)
        raise ConfigError(
            f"expected one of {allowed}, got {raw!r}",
            file=settings.origin or None,
            key=f"{_where(settings)}.{KIND_OPTION}",
        )

    @classmethod
    def contract_problem(cls) -> str | None:
        """What keeps this class from being a channel the core can build, or None."""
        if not cls.kinds or not all(isinstance(k, ChannelKind) for k in cls.kinds):
            return f"its kinds ({cls.kinds!r}) must name at least one ChannelKind"
        return options_problem(cls.Options)

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

    def replica(self) -> Channel:
        """Another instance of this channel for another sender thread, with connections of
        its own (see :mod:`onetomany.delivery.senders`).

        The default builds ``type(self)(self.settings, runtime=self.runtime)``, which suits a
        channel whose state is its settings and its connections. A channel that keeps other
        state overrides it: one safe to send through from several threads at once may return
        ``self``; one that shares something with its copies (a limit, a circuit) passes it on.
        """
        return type(self)(self.settings, runtime=self.runtime)

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


def _where(settings: PluginSettings) -> str:
    return f"channels.{settings.name}"
