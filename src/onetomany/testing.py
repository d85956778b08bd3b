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
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from onetomany.delivery.channels import Channel, Runtime
from onetomany.errors import DeliveryError
from onetomany.model import Account, ChannelKind, Contact, DeliveryResult, Event, Message
from onetomany.model.clock import FrozenClock
from onetomany.plugins.hookspecs import hookimpl
from onetomany.plugins.manager import Plugins
from onetomany.plugins.registry import Register
from onetomany.plugins.settings import PluginSettings
from onetomany.plugins.sources import Source, SyncResult
from onetomany.store import Store

__all__ = [
    "FrozenClock",
    "RecordingChannel",
    "StaticSource",
    "TestingPlugin",
    "make_plugins",
]


class RecordingChannel(Channel):
    """Keeps every message it is sent in ``sent``; can be scripted to fail.

    ``failures`` is consumed one item per send: an exception instance is raised, ``None``
    means succeed. ``kind`` picks what it renders as (email by default).
    """

    def __init__(
        self,
        settings: PluginSettings | None = None,
        *,
        runtime: Runtime | None = None,
        kind: ChannelKind | None = None,
        failures: Iterable[DeliveryError | None] = (),
    ) -> None:
        settings = settings or PluginSettings(name="recording", plugin="recording")
        super().__init__(settings, runtime=runtime)
        raw_kind = kind or settings.options.get("kind", ChannelKind.EMAIL)
        self._kind = ChannelKind(raw_kind)
        self.failures: list[DeliveryError | None] = list(failures)
        self.sent: list[Message] = []
        self.attempts: list[Message] = []
        self.opened = 0

    @property
    def serves(self) -> ChannelKind:
        return self._kind

    def open(self) -> None:
        self.opened += 1

    def send(self, message: Message) -> DeliveryResult:
        self.attempts.append(message)
        if self.failures:
            failure = self.failures.pop(0)
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
