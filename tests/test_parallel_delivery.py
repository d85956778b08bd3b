"""Parallel delivery inside one worker: ``concurrency`` sender threads per channel, each over a
connection of its own, with the outbox's guarantees intact.

Each test runs on SQLite and on PostgreSQL (``store``) unless it says otherwise; the SMTP ones
send to a real aiosmtpd server on loopback.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onetomany.delivery.channels import Channel
from onetomany.engine import Engine
from onetomany.errors import (
    ConfigErrors,
    DeliveryError,
    PermanentDeliveryError,
    TransientDeliveryError,
    UnknownOutcomeError,
)
from onetomany.model import DeliveryResult, Message, OutboxStatus
from onetomany.model.clock import SystemClock
from onetomany.plugins.settings import PluginSettings
from onetomany.program import load_program
from onetomany.rules.rate_limits import parse_rate
from onetomany.store import Store
from onetomany.testing import RecordingChannel, make_plugins

from .conftest import make_program
from .smtp_sink import SmtpSink
from .test_failover import enqueue, group_engine
from .test_program import GOOD, _folder
from .test_store_outage import ROWS as OUTAGE_ROWS
from .test_store_outage import LockAfterFirstWrite
from .test_store_outage import _engine as outage_engine
from .test_store_outage import _queue as queue_rows
from .test_store_outage import _recipients as recipients
from .test_store_outage import database as database  # a fixture

_SHARED: dict[str, dict[str, Any]] = {}


class Connections(Channel):
    """A channel whose every instance is one connection: it records who sent what, through
    which instance and when, and whether each instance was closed. Replicas are built by the
    default :meth:`Channel.replica`, from the settings, as a plugin's are."""

    kinds = RecordingChannel.kinds
    #: Seconds each send waits, as for a provider's answer.
    pause = 0.002

    def __init__(self, settings: PluginSettings | None = None, **kwargs: object) -> None:
        # Copies share their record through the settings' name (a channel takes no option
        # it does not declare), as plugin copies share nothing but their settings.
        name = f"conn-{uuid.uuid4().hex[:8]}"
        super().__init__(settings or PluginSettings(name=name, plugin="connections"), **kwargs)  # type: ignore[arg-type]
        shared = _SHARED.setdefault(
            self.settings.name,
            {"log": [], "instances": [], "lock": threading.Lock(), "broken": set(), "opens": []},
        )
        self.shared = shared
        with shared["lock"]:
            self.number = len(shared["instances"])
            shared["instances"].append(self)
        self.open_now = False
        self.closed = False

    def open(self) -> None:
        if self.number in self.shared["broken"] and "open" in self.shared["broken"]:
            raise ConnectionRefusedError(111, "Connection refused")
        self.open_now, self.closed = True, False
        with self.shared["lock"]:
            self.shared["opens"].append(self.number)

    def close(self) -> None:
        self.open_now, self.closed = False, True

    def send(self, message: Message) -> DeliveryResult:
        assert self.open_now, "sent through a channel that is not open"
        if self.number in self.shared["broken"] and "send" in self.shared["broken"]:
            raise RuntimeError(f"connection {self.number} tripped over its own feet")
        time.sleep(self.pause)  # the provider's answer on its way: the thread waits, as on I/O
        with self.shared["lock"]:
            self.shared["log"].append(
                (message.idempotency_key, self.number, self.runtime.clock.now())
            )
        return DeliveryResult(provider_message_id=f"{self.number}-{message.idempotency_key}")

    @property
    def sent(self) -> list[tuple[str, int, datetime]]:
        return list(self.shared["log"])


class NoonClock(SystemClock):
    """Real time passing, from a Monday noon (UTC): inside the default send windows at
    whatever hour the suite runs, so the quiet-hours policy defers nothing."""

    def __init__(self) -> None:
        self._start = time.monotonic()

    def now(self) -> datetime:
        elapsed = timedelta(seconds=time.monotonic() - self._start)
        return datetime(2026, 1, 5, 12, 0, tzinfo=UTC) + elapsed


def _engine(tmp_path, clock, store, channel: Channel, **options: object) -> Engine:
    program = make_program(tmp_path)
    return Engine(
        program,
        store=store,
        clock=clock,
        plugins=make_plugins(),
        channels={"email": channel},
        **options,  # type: ignore[arg-type]
    )


def _statuses(engine: Engine) -> Counter[str]:
    return Counter(str(row.status) for row in engine.store.outbox_rows())


# -- never twice, nothing lost ------------------------------------------------------------------


def test_n_senders_send_each_row_once_over_their_own_connections(tmp_path, frozen_clock, store):
    channel = Connections()
    engine = _engine(tmp_path, frozen_clock, store, channel, batch_size=25, record_every=7)
    keys = enqueue(engine, frozen_clock, 90)

    report = engine.dispatch(concurrency=4)

    sent = Counter(key for key, _, _ in channel.sent)
    assert sent == Counter(keys)  # each once
    assert report.sent == 90 and report.claimed == 90 and report.unrecorded == 0
    assert _statuses(engine) == {"sent": 90}
    assert Counter(d.idempotency_key for d in engine.store.deliveries()) == Counter(keys)
    # Four connections, each a separate instance, and the load spread over them.
    used = {number for _, number, _ in channel.sent}
    assert len(channel.shared["instances"]) == 4 and len(used) > 1
    engine.close()


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    rows=st.integers(0, 40),
    concurrency=st.integers(1, 8),
    batch_size=st.integers(1, 30),
    record_every=st.integers(1, 12),
    transient=st.sets(st.integers(0, 39), max_size=10),
)
def test_any_concurrency_sends_each_row_at_most_once_per_attempt(
    tmp_path_factory, frozen_clock, rows, concurrency, batch_size, record_every, transient
):
    """Whatever the threads, batch and record sizes, a pass gives every claimed row exactly
    one outcome, sends each at most once, and the store holds what was sent (SQLite)."""
    folder = tmp_path_factory.mktemp("run")
    failures = [
        TransientDeliveryError("try later") if i in transient else None for i in range(rows)
    ]
    channel = RecordingChannel(failures=failures)
    store = Store(folder / "store.db")
    try:
        engine = _engine(
            folder, frozen_clock, store, channel, batch_size=batch_size, record_every=record_every
        )
        keys = enqueue(engine, frozen_clock, rows)

        report = engine.dispatch(concurrency=concurrency)

        attempted = Counter(m.idempotency_key for m in channel.attempts)
        assert set(attempted) == set(keys) and all(n == 1 for n in attempted.values())
        failed = sum(1 for f in failures if f is not None)
        assert report.sent == rows - failed and report.retrying == failed
        assert report.claimed == rows and report.unrecorded == 0
        statuses = _statuses(engine)
        assert statuses["sent"] == rows - failed and statuses["pending"] == failed
        assert sorted(d.idempotency_key for d in store.deliveries()) == sorted(keys)
        engine.close()
    finally:
        store.close()


_FAILURES: dict[str, DeliveryError | None] = {
    "sent": None,
    "retrying": TransientDeliveryError("try later"),
    "dead": PermanentDeliveryError("no such mailbox"),
    "unknown": UnknownOutcomeError("the connection dropped after DATA"),
}


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    outcomes=st.lists(st.sampled_from(sorted(_FAILURES)), max_size=40),
    concurrency=st.integers(1, 6),
    batch_size=st.integers(1, 9),
    record_every=st.integers(1, 7),
)
def test_random_outcomes_over_pipelined_batches_settle_each_row_once(
    tmp_path_factory, frozen_clock, outcomes, concurrency, batch_size, record_every
):
    """The senders outlive each batch (the next is claimed while they send): whatever the
    outcomes, threads, batch and record sizes, every claimed row is sent once and gets
    exactly one outcome, counted and stored as the channel gave it (SQLite)."""
    folder = tmp_path_factory.mktemp("run")
    channel = RecordingChannel(failures=[_FAILURES[name] for name in outcomes])
    store = Store(folder / "store.db")
    try:
        engine = _engine(
            folder, frozen_clock, store, channel, batch_size=batch_size, record_every=record_every
        )
        keys = enqueue(engine, frozen_clock, len(outcomes))

        report = engine.dispatch(concurrency=concurrency)

        attempted = Counter(m.idempotency_key for m in channel.attempts)
        assert set(attempted) == set(keys) and set(attempted.values()) <= {1}
        wanted = Counter(outcomes)
        got = {name: getattr(report, name) for name in _FAILURES}
        assert got == {name: wanted[name] for name in _FAILURES}
        assert report.claimed == len(keys) and report.unrecorded == 0 and report.stale == 0
        statuses = _statuses(engine)
        assert statuses["sent"] == wanted["sent"] and statuses["pending"] == wanted["retrying"]
        assert statuses["dead"] == wanted["dead"] and statuses.total() == len(keys)
        assert sorted(d.idempotency_key for d in store.deliveries()) == sorted(keys)
        engine.close()
    finally:
        store.close()


class SlowConnections(Connections):
    pause = 0.05


def test_the_next_batch_is_claimed_while_the_senders_send(
    tmp_path, frozen_clock, temp_store, monkeypatch
):
    """The dispatching thread claims the next batch while the first is still being sent, yet
    never holds more than one batch besides the one it claims."""
    channel = SlowConnections()
    engine = _engine(tmp_path, frozen_clock, temp_store, channel, batch_size=4)
    keys = enqueue(engine, frozen_clock, 16)
    claims: list[tuple[int, int]] = []  # (rows held from earlier batches, messages sent)
    claim = temp_store.claim

    def counted(**kwargs: Any) -> Any:
        claims.append((len(engine.dispatcher._held), len(channel.sent)))
        return claim(**kwargs)

    monkeypatch.setattr(temp_store, "claim", counted)

    report = engine.dispatch(concurrency=1)

    assert report.sent == 16 and Counter(key for key, _, _ in channel.sent) == Counter(keys)
    assert len(claims) == 5  # four batches and the empty claim that ends the call
    # The second batch was claimed while the first was on its way (a send takes 50 ms)...
    held, sent = claims[1]
    assert held > 0 and sent < 4
    # ...and no claim was made with more than a batch of rows still unsettled.
    assert all(held <= 4 for held, _ in claims)
    engine.close()


def test_each_connection_opens_once_per_call_whatever_the_batches(tmp_path, frozen_clock, store):
    channel = Connections()
    engine = _engine(tmp_path, frozen_clock, store, channel, batch_size=5, record_every=3)
    keys = enqueue(engine, frozen_clock, 60)

    report = engine.dispatch(concurrency=3)

    assert Counter(key for key, _, _ in channel.sent) == Counter(keys)
    assert report.sent == 60 and report.unrecorded == 0 and _statuses(engine) == {"sent": 60}
    # Twelve batches, three connections, each opened once and closed when the call ended.
    assert sorted(channel.shared["opens"]) == [0, 1, 2]
    assert all(c.closed for c in channel.shared["instances"])
    enqueue(engine, frozen_clock, 10, start=60)
    assert engine.dispatch(concurrency=3).sent == 10
    assert sorted(channel.shared["opens"]) == [0, 0, 1, 1, 2, 2]  # once more: a new call
    engine.close()


def test_a_sender_that_raises_costs_its_messages_only(tmp_path, frozen_clock, store):
    channel = Connections()
    channel.shared["broken"] |= {2, "send"}  # the third connection is a plugin bug
    engine = _engine(tmp_path, frozen_clock, store, channel, batch_size=200)
    keys = enqueue(engine, frozen_clock, 60)

    report = engine.dispatch(concurrency=3)

    statuses = _statuses(engine)
    # Every row has its outcome: sent by the healthy senders, or dead-lettered with the bug.
    assert statuses["sent"] + statuses["dead"] == 60 and statuses["sent"] > 0
    assert report.sent == statuses["sent"] and report.dead == statuses["dead"]
    assert {key for key, _, _ in channel.sent} | {
        row.idempotency_key for row in engine.store.outbox_rows(status=OutboxStatus.DEAD)
    } == set(keys)
    dead = engine.store.outbox_rows(status=OutboxStatus.DEAD)
    assert all("RuntimeError: connection 2 tripped" in (row.last_error or "") for row in dead)
    engine.close()


def test_a_sender_that_cannot_open_leaves_its_share_to_the_others(tmp_path, frozen_clock, store):
    channel = Connections()
    channel.shared["broken"] |= {1, 3, "open"}
    engine = _engine(tmp_path, frozen_clock, store, channel)
    keys = enqueue(engine, frozen_clock, 40)

    report = engine.dispatch(concurrency=4)

    assert report.sent == 40 and _statuses(engine) == {"sent": 40}
    assert Counter(key for key, _, _ in channel.sent) == Counter(keys)
    assert {number for _, number, _ in channel.sent} <= {0, 2}
    engine.close()


def test_when_no_sender_opens_the_rows_come_back_as_failed_attempts(tmp_path, frozen_clock, store):
    channel = Connections()
    channel.shared["broken"] |= {0, 1, "open"}
    engine = _engine(tmp_path, frozen_clock, store, channel)
    enqueue(engine, frozen_clock, 10)

    report = engine.dispatch(concurrency=2)

    assert report.sent == 0 and report.retrying == 10
    rows = engine.store.outbox_rows()
    assert all(row.status == OutboxStatus.PENDING and row.attempts == 1 for row in rows)
    assert all("could not open: ConnectionRefusedError" in (row.last_error or "") for row in rows)
    engine.close()


# -- connections ------------------------------------------------------------------------------


def test_close_closes_every_connection(tmp_path, frozen_clock, store):
    channel = Connections()
    engine = _engine(tmp_path, frozen_clock, store, channel, concurrency=5, batch_size=10)
    enqueue(engine, frozen_clock, 30)

    assert engine.dispatch().sent == 30  # the engine's own setting: five senders
    instances = channel.shared["instances"]
    assert len(instances) == 5
    assert all(c.closed for c in instances)  # each closed by its thread after the batch
    for c in instances:
        c.closed = False

    engine.close()

    assert all(c.closed for c in instances)


def test_a_real_smtp_server_gets_each_message_once_over_n_connections(tmp_path, frozen_clock):
    with SmtpSink() as sink:
        settings_ = PluginSettings(
            name="email",
            plugin="smtp",
            options={"host": "127.0.0.1", "port": sink.port, "security": "none"},
        )
        program = make_program(tmp_path, email=settings_)
        engine = Engine(program, store=Store(tmp_path / "store.db"), clock=frozen_clock)
        keys = enqueue(engine, frozen_clock, 60)

        report = engine.dispatch(concurrency=4)
        engine.close()

        assert report.sent == 60
        ids = Counter(
            line.split(b":", 1)[1].strip()
            for raw in sink.messages
            for line in raw.splitlines()
            if line.lower().startswith(b"message-id:")
        )
        assert len(ids) == 60 and set(ids.values()) == {1}
        assert len(keys) == len(sink.messages) == 60


# -- what the threads share ---------------------------------------------------------------------


@pytest.mark.parametrize("concurrency", [2, 6])
def test_the_rate_limit_holds_with_n_senders(tmp_path, store, concurrency):
    """A group's rate is shared by its senders: on a real clock, no window of the sends holds
    more than the bucket plus the rate times the window (in memory on SQLite, the store's
    bucket on PostgreSQL)."""
    clock = NoonClock()
    primary, secondary = Connections(), Connections()
    rate = parse_rate("40/s", key="k")
    engine = group_engine(tmp_path, clock, store, primary, secondary, rate=rate)
    enqueue(engine, clock, 60)

    report = engine.dispatch(concurrency=concurrency)

    assert report.sent == 60 and report.deferred == {}
    times = sorted(at for _, _, at in primary.sent)
    assert len(times) == 60
    for i, j in itertools.combinations(range(len(times)), 2):
        span = (times[j] - times[i]).total_seconds()
        # +1: a send is stamped just after its token was taken, so the first of a window
        # may have taken its token a moment before the window's start.
        assert j - i + 1 <= rate.burst + span * rate.per_second + 1
    engine.close()


def test_a_group_replica_shares_circuits_and_limit(tmp_path, frozen_clock, store):
    primary, secondary = Connections(), Connections()
    engine = group_engine(
        tmp_path, frozen_clock, store, primary, secondary, rate=parse_rate("50/s", key="k")
    )
    group = engine.dispatcher.channels["email"]

    copy = group.replica()

    assert copy is not group and copy.limiter is group.limiter  # type: ignore[attr-defined]
    pairs = zip(copy.members, group.members, strict=True)  # type: ignore[attr-defined]
    for mine, theirs in pairs:
        assert mine.channel is not theirs.channel and mine.circuit is theirs.circuit
    engine.close()


def test_concurrency_must_be_a_whole_number(tmp_path, frozen_clock, temp_store):
    with pytest.raises(ValueError, match="concurrency must be a whole number"):
        _engine(tmp_path, frozen_clock, temp_store, RecordingChannel(), concurrency=-1)
    engine = _engine(tmp_path, frozen_clock, temp_store, RecordingChannel())
    with pytest.raises(ValueError, match=r"not 2\.5"):
        engine.dispatch(concurrency=2.5)  # type: ignore[arg-type]
    engine.close()


# -- the setting ---------------------------------------------------------------------------------


def test_a_program_sets_the_concurrency_in_its_delivery_table(tmp_path, monkeypatch):
    monkeypatch.setenv("ACME_SMTP_PASSWORD", "x")
    toml = GOOD + "\n[delivery]\nmax_attempts = 8\nconcurrency = 4\n"
    program = load_program(_folder(tmp_path, toml))
    assert program.concurrency == 4 and program.retry.max_attempts == 8
    engine = Engine(
        program,
        store=Store(tmp_path / "store.db"),
        plugins=make_plugins(),
        channels={"email": RecordingChannel()},
    )
    assert engine.dispatcher.concurrency == 4
    engine.close()


@pytest.mark.parametrize("value", ["-1", "2.5", '"many"', "true", "65"])
def test_a_bad_concurrency_is_named(tmp_path, monkeypatch, value):
    monkeypatch.setenv("ACME_SMTP_PASSWORD", "x")
    with pytest.raises(ConfigErrors) as info:
        load_program(_folder(tmp_path, GOOD + f"\n[delivery]\nconcurrency = {value}\n"))
    [error] = info.value.errors
    assert error.key == "delivery.concurrency" and error.file
    assert error.reason.startswith("expected a whole number from 0 to 64")


def test_the_dispatch_command_takes_a_concurrency(tmp_path):
    from typer.testing import CliRunner

    from onetomany import Account, Contact
    from onetomany.cli.commands import app

    from .test_ops_status import write_program

    # The command runs on the wall clock: email's window is open at every hour of the run.
    folder = write_program(tmp_path / "prog", '\n[windows]\nemail = "always"\n')
    with Engine(load_program(folder)) as engine:
        people = [
            Contact(id=f"c{i}", account_id="a1", email=f"c{i}@northwind.test") for i in range(6)
        ]
        engine.identify(Account(id="a1", name="Northwind"), *people)
        for person in people:
            engine.track("signed_up", contact_id=person.id, account_id="a1")
        assert engine.tick() == 6
    runner = CliRunner()

    refused = runner.invoke(app, ["dispatch", str(folder), "--concurrency", "-1"])
    sent = runner.invoke(app, ["dispatch", str(folder), "--concurrency", "3"])

    assert refused.exit_code == 2 and "--concurrency" in refused.output
    assert sent.exit_code == 0, sent.output
    assert "claimed 6: delivered 6" in sent.output
    assert len(list((folder / "var" / "outbox").glob("*.eml"))) == 6


# -- a store that stops a parallel pass ---------------------------------------------------------


def test_a_store_that_stops_a_parallel_pass_loses_nothing_and_sends_nothing_twice(
    tmp_path, database, frozen_clock
):
    """The senders end after the message in hand; what they sent is kept and written first
    by the next call; the rows they did not send come back after their lease."""
    lock = LockAfterFirstWrite(database, hold=2.0)
    with (
        SmtpSink() as sink,
        outage_engine(tmp_path, database, sink.port, lock, frozen_clock, patience=0.3) as engine,
    ):
        queue_rows(engine)
        first = engine.dispatch(concurrency=3)

        assert first.stopped is not None and (first.dead, first.retrying) == (0, 0)
        assert first.sent == len(sink.messages) and first.unrecorded > 0
        lock.wait()
        second = engine.dispatch(concurrency=3)
        assert (second.claimed, second.unrecorded, second.stopped) == (0, 0, None)
        statuses = Counter(str(row.status) for row in engine.store.outbox_rows())
        assert statuses["sent"] == len(sink.messages)
        frozen_clock.advance(seconds=engine.dispatcher.lease.total_seconds() + 1)
        third = engine.dispatch(concurrency=3)
        rows = engine.store.outbox_rows()

    assert recipients(sink) == Counter({f"p{i}@acme.test": 1 for i in range(OUTAGE_ROWS)})
    assert first.sent + second.sent + third.sent == len(sink.messages) == OUTAGE_ROWS
    assert {str(row.status) for row in rows} == {"sent"}
