"""What a plugin author needs to test a plugin in a few lines (a pytest plugin).

Installed with onetomany through the ``pytest11`` entry point, so these fixtures are available
in any project that has onetomany installed:

- ``frozen_clock``: a :class:`~onetomany.FrozenClock` at 2026-01-05 09:00 UTC;
- ``temp_store``: a fresh SQLite :class:`~onetomany.store.Store` in a temporary folder;
- ``recording_channel``: a :class:`RecordingChannel` that keeps what it is sent;
- ``static_source``: a :class:`StaticSource` factory;
- ``onetomany_plugins``: a plugin manager with the built-ins and the ``recording`` channel and
  ``static`` source registered (entry points not loaded, so tests see only what they add).

Use them without fixtures too: every class here is ordinary code.

For channel authors, :class:`ChannelContract` is a reusable test suite: subclass it in the
plugin's tests, give it a ``provider`` fixture (a :class:`FakeProvider`: the plugin's own
channel pointed at a local fake of its provider, which answers as scripted), and every test
of the contract runs against the plugin (see docs/plugins/writing-a-channel.md).
"""

from __future__ import annotations

import contextlib
import enum
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import attrs
import pytest

from onetomany.delivery.channels import Channel, Runtime
from onetomany.errors import (
    DeliveryError,
    PermanentDeliveryError,
    TransientDeliveryError,
    UnknownOutcomeError,
)
from onetomany.model import Account, ChannelKind, Contact, DeliveryResult, Event, Message
from onetomany.model.clock import FrozenClock
from onetomany.plugins.hookspecs import hookimpl
from onetomany.plugins.manager import Plugins
from onetomany.plugins.options import secret_fields
from onetomany.plugins.registry import Register
from onetomany.plugins.settings import PluginSettings
from onetomany.plugins.sources import Source, SyncResult
from onetomany.store import Store

__all__ = [
    "Answer",
    "ChannelContract",
    "FakeProvider",
    "FrozenClock",
    "RecordingChannel",
    "ScriptedFake",
    "ScriptedProvider",
    "StaticSource",
    "TestingPlugin",
    "channels_of",
    "make_plugins",
    "openapi_check",
]


class RecordingChannel(Channel):
    """Keeps every message it is sent in ``sent``; can be scripted to fail.

    ``failures`` is consumed one item per send: an exception instance is raised, ``None``
    means succeed. ``kind`` picks what it renders as (email by default), as the ``kind``
    option does.
    """

    kinds = tuple(ChannelKind)

    def __init__(
        self,
        settings: PluginSettings | None = None,
        *,
        runtime: Runtime | None = None,
        kind: ChannelKind | None = None,
        failures: Iterable[DeliveryError | None] = (),
    ) -> None:
        settings = settings or PluginSettings(name="recording", plugin="recording")
        if kind is not None:
            settings = attrs.evolve(settings, options={**settings.options, "kind": kind.value})
        super().__init__(settings, runtime=runtime)
        self.failures: list[DeliveryError | None] = list(failures)
        self.sent: list[Message] = []
        self.attempts: list[Message] = []
        self.opened = 0
        # Sender threads share one recording channel (replica() is itself): one record.
        self._lock = threading.Lock()

    def replica(self) -> RecordingChannel:
        return self

    def open(self) -> None:
        with self._lock:
            self.opened += 1

    def send(self, message: Message) -> DeliveryResult:
        with self._lock:
            self.attempts.append(message)
            failure = self.failures.pop(0) if self.failures else None
            if failure is not None:
                raise failure
            self.sent.append(message)
            return DeliveryResult(provider_message_id=f"rec-{len(self.sent)}")

    def keys(self) -> list[str]:
        return [m.idempotency_key for m in self.sent]


class StaticSource(Source):
    """A source that returns the records it was given; ``cursor`` filters events by time."""

    def __init__(
        self,
        settings: PluginSettings | None = None,
        *,
        accounts: Sequence[Account] = (),
        contacts: Sequence[Contact] = (),
        events: Sequence[Event] = (),
    ) -> None:
        super().__init__(settings or PluginSettings(name="static", plugin="static"))
        self.accounts = list(accounts or self.settings.options.get("accounts", ()))
        self.contacts = list(contacts or self.settings.options.get("contacts", ()))
        self.events = list(events or self.settings.options.get("events", ()))

    def sync(self, *, cursor: str | None = None) -> SyncResult:
        events = [e for e in self.events if cursor is None or e.occurred_at.isoformat() > cursor]
        newest = max((e.occurred_at.isoformat() for e in self.events), default=cursor)
        return SyncResult(
            accounts=self.accounts, contacts=self.contacts, events=events, cursor=newest
        )


class TestingPlugin:
    """Registers the ``recording`` channel and the ``static`` source."""

    __test__ = False  # not a test class, despite the name

    @hookimpl
    def onetomany_register_channels(self, register: Register[type[Channel]]) -> None:
        register("recording", RecordingChannel)

    @hookimpl
    def onetomany_register_sources(self, register: Register[type[Source]]) -> None:
        register("static", StaticSource)


def make_plugins(*extra: tuple[str, object]) -> Plugins:
    """Built-in plugins plus the testing plugin and ``extra`` (name, plugin) pairs."""
    plugins = Plugins(load_entry_points=False, strict=True, disabled=())
    plugins.register(TestingPlugin(), name="testing", distribution="onetomany")
    for name, plugin in extra:
        plugins.register(plugin, name=name)
    return plugins


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def frozen_clock() -> FrozenClock:
    """A clock at 2026-01-05 09:00 UTC that moves only when told."""
    return FrozenClock()


@pytest.fixture
def temp_store(tmp_path: Path) -> Iterator[Store]:
    """A migrated SQLite store in a temporary folder."""
    store = Store(tmp_path / "onetomany-test.db")
    yield store
    store.close()


@pytest.fixture
def recording_channel() -> RecordingChannel:
    """An email-kind channel that records instead of sending."""
    return RecordingChannel()


@pytest.fixture
def static_source() -> Callable[..., StaticSource]:
    """Build a :class:`StaticSource`: ``static_source(accounts=[...], events=[...])``."""

    def build(**records: Any) -> StaticSource:
        return StaticSource(**records)

    return build


@pytest.fixture
def onetomany_plugins() -> Plugins:
    """Built-in plugins plus the ``recording`` channel and ``static`` source."""
    return make_plugins()


# -- the channel contract kit ------------------------------------------------------------------


class Answer(enum.Enum):
    """How a fake provider answers one message."""

    #: Accepted: the channel returns a DeliveryResult.
    ACCEPT = "accept"
    #: "Not now" (a 429 or 503, an SMTP 4xx): the channel raises TransientDeliveryError.
    TRANSIENT = "transient"
    #: Refused for good (an invalid or suppressed recipient): PermanentDeliveryError.
    PERMANENT = "permanent"
    #: The request arrives and no answer ever comes back (the connection is dropped or the
    #: answer is late past the channel's timeout): UnknownOutcomeError.
    NO_ANSWER = "no_answer"


class FakeProvider(Protocol):
    """What a plugin's tests hand :class:`ChannelContract`: a local fake of its provider,
    answering as scripted, and a way to build the plugin's channel pointed at it."""

    #: The value of a secret option (a token, a password) the channel is built with; empty
    #: for a channel that takes none.
    secret: str

    def channel(self) -> Channel:
        """A new channel for this fake, with :attr:`secret` set and a short timeout."""
        ...

    def message(self, index: int) -> Message:
        """A message the channel can send; each ``index`` gives another recipient and key."""
        ...

    def answer(self, *answers: Answer) -> None:
        """How the next messages that reach the fake are answered, in their order of arrival
        (then: accepted)."""
        ...

    def received(self) -> int:
        """How many messages have reached the fake so far (each attempt counts)."""
        ...


class ScriptedFake(Protocol):
    """A local fake that takes scripted answers by name and counts arrivals, as the fakes on
    :class:`onetomany.testing_http.LocalHTTPFake` do."""

    @property
    def arrived(self) -> int: ...

    def script(self, *answers: str) -> None: ...


@attrs.define
class ScriptedProvider:
    """A :class:`FakeProvider` from a :class:`ScriptedFake` and two factories: the channel
    pointed at the fake, and message ``index``. Each :class:`Answer` is scripted by its value
    (``"accept"``, ``"transient"``, ``"permanent"``, ``"no_answer"``)."""

    fake: ScriptedFake
    secret: str
    make_channel: Callable[[], Channel]
    make_message: Callable[[int], Message]

    def channel(self) -> Channel:
        return self.make_channel()

    def message(self, index: int) -> Message:
        return self.make_message(index)

    def answer(self, *answers: Answer) -> None:
        self.fake.script(*(answer.value for answer in answers))

    def received(self) -> int:
        return self.fake.arrived


class ChannelContract:
    """The contract every channel keeps, as tests: subclass it and give it a ``provider``.

    ::

        class TestPostmarkContract(ChannelContract):
            @pytest.fixture
            def provider(self, httpserver):
                return PostmarkFake(httpserver)

    What it checks: an accepted message gives a DeliveryResult; a transient and a permanent
    answer raise their error after exactly one attempt (the channel never retries by itself:
    the dispatcher does); a message sent with no answer raises UnknownOutcomeError; a batch
    yields one outcome per message, in order; ``close()`` is safe before ``open()`` and twice;
    the class registers cleanly; replicas send from several threads at once; and the secret
    never appears in a repr, an error or a log line, whatever the provider answered.
    """

    @pytest.fixture
    def provider(self) -> FakeProvider:
        raise NotImplementedError("a ChannelContract subclass must define a provider fixture")

    def _send_one(self, provider: FakeProvider, answer: Answer) -> DeliveryResult | DeliveryError:
        provider.answer(answer)
        channel = provider.channel()
        with channel:
            [outcome] = list(channel.send_many([provider.message(0)]))
        channel.close()
        return outcome

    def test_contract_the_class_is_a_valid_channel(self, provider: FakeProvider) -> None:
        channel = provider.channel()
        try:
            assert type(channel).contract_problem() is None
            assert channel.serves in type(channel).kinds
        finally:
            channel.close()

    def test_contract_an_accepted_message_gives_a_result(self, provider: FakeProvider) -> None:
        outcome = self._send_one(provider, Answer.ACCEPT)

        assert isinstance(outcome, DeliveryResult), outcome
        assert provider.received() == 1

    @pytest.mark.parametrize(
        ("answer", "error"),
        [
            (Answer.TRANSIENT, TransientDeliveryError),
            (Answer.PERMANENT, PermanentDeliveryError),
            (Answer.NO_ANSWER, UnknownOutcomeError),
        ],
    )
    def test_contract_a_failure_is_its_error_after_one_attempt(
        self, provider: FakeProvider, answer: Answer, error: type[DeliveryError]
    ) -> None:
        outcome = self._send_one(provider, answer)

        assert type(outcome) is error, f"{answer.value} gave {outcome!r}, not {error.__name__}"
        # One attempt: retries belong to the dispatcher, which records each one.
        assert provider.received() == 1

    def test_contract_send_raises_what_send_many_yields(self, provider: FakeProvider) -> None:
        provider.answer(Answer.PERMANENT)
        channel = provider.channel()
        try:
            with pytest.raises(PermanentDeliveryError):
                channel.send(provider.message(0))
        finally:
            channel.close()

    def test_contract_a_batch_yields_one_outcome_per_message_in_order(
        self, provider: FakeProvider
    ) -> None:
        script = [Answer.ACCEPT, Answer.PERMANENT, Answer.ACCEPT, Answer.PERMANENT, Answer.ACCEPT]
        provider.answer(*script)
        channel = provider.channel()
        with channel:
            outcomes = list(channel.send_many([provider.message(i) for i in range(len(script))]))
        channel.close()

        kinds = ["accept" if isinstance(o, DeliveryResult) else "permanent" for o in outcomes]
        assert kinds == [answer.value for answer in script], outcomes
        assert all(isinstance(o, (DeliveryResult, PermanentDeliveryError)) for o in outcomes)
        assert provider.received() == len(script)

    def test_contract_close_is_safe_before_open_and_twice(self, provider: FakeProvider) -> None:
        channel = provider.channel()
        channel.close()
        channel.close()
        with channel:
            assert isinstance(channel.send(provider.message(0)), DeliveryResult)
        channel.close()
        channel.close()

    def test_contract_replicas_send_from_several_threads(self, provider: FakeProvider) -> None:
        """``concurrency`` sends through :meth:`Channel.replica` copies, one per thread, each
        opened and closed by its thread: every message arrives once with its own outcome."""
        channel = provider.channel()
        copies = [channel, *(channel.replica() for _ in range(3))]
        outcomes: dict[int, object] = {}

        def send(copy: Channel, first: int) -> None:
            with copy:
                for index in range(first, first + 3):
                    try:
                        outcomes[index] = copy.send(provider.message(index))
                    except Exception as exc:
                        outcomes[index] = exc

        threads = [
            threading.Thread(target=send, args=(copy, 3 * i)) for i, copy in enumerate(copies)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        for copy in copies:
            copy.close()

        assert sorted(outcomes) == list(range(12))
        assert all(isinstance(o, DeliveryResult) for o in outcomes.values()), outcomes
        assert provider.received() == 12
        assert all(type(copy) is type(channel) for copy in copies)

    def test_contract_the_secret_never_shows(
        self, provider: FakeProvider, caplog: pytest.LogCaptureFixture
    ) -> None:
        if not provider.secret:
            pytest.skip("the channel takes no secret")
        caplog.set_level(logging.DEBUG)
        provider.answer(Answer.ACCEPT, Answer.TRANSIENT, Answer.PERMANENT, Answer.NO_ANSWER)
        channel = provider.channel()
        texts = [repr(channel), str(channel), repr(channel.settings), repr(channel.options)]
        with channel:
            for index in range(4):
                try:
                    texts.append(repr(channel.send(provider.message(index))))
                except DeliveryError as error:
                    texts += [str(error), repr(error), repr(error.__cause__)]
        channel.close()

        assert secret_fields(type(channel).Options), "no option is declared secret"
        for text in [*texts, caplog.text]:
            assert provider.secret not in text


_C = TypeVar("_C", bound=Channel)


@contextlib.contextmanager
def channels_of(
    cls: type[_C],
    *,
    name: str,
    plugin: str,
    defaults: Mapping[str, Any],
    runtime: Runtime | None = None,
) -> Iterator[Callable[..., _C]]:
    """``make(**options)``, building a ``cls`` channel named ``name`` with ``options`` over
    ``defaults``, read as a program.toml's ``[channels.NAME]`` table; every channel it made
    is closed on exit (a channel-building fixture is ``with channels_of(...) as make: yield
    make``)."""
    made: list[_C] = []

    def make(**options: Any) -> _C:
        settings = PluginSettings(
            name=name, plugin=plugin, options={**defaults, **options}, origin="program.toml"
        )
        channel = cls(settings, runtime=runtime or Runtime())
        made.append(channel)
        return channel

    try:
        yield make
    finally:
        for channel in made:
            channel.close()


def openapi_check(spec: Any, server: str) -> Callable[[str, str, Mapping[str, str], bytes], None]:
    """A local fake's request check (``check=`` of :class:`~onetomany.testing_http.LocalHTTPFake`)
    that refuses, with a ValueError naming the problems, any request the provider's OpenAPI
    document ``spec`` (an ``openapi_core.OpenAPI``) does not allow, read as if it had gone to
    ``server``. Needs ``openapi-core``, a test dependency."""
    import requests
    from openapi_core.contrib.requests import RequestsOpenAPIRequest

    def check(method: str, path: str, headers: Mapping[str, str], body: bytes) -> None:
        request = requests.Request(method, server + path, headers=dict(headers), data=body)
        result = spec.unmarshal_request(RequestsOpenAPIRequest(request.prepare()))
        if result.errors:
            raise ValueError("; ".join(_openapi_problem(error) for error in result.errors))

    return check


def _openapi_problem(error: Exception) -> str:
    causes = getattr(error, "schema_errors", None) or ([error.__cause__] if error.__cause__ else [])
    inner = "; ".join(str(getattr(cause, "message", cause)) for cause in causes)
    return f"{error}" + (f" ({inner})" if inner else "")
