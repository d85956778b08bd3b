"""The dispatcher survives its own failures: one bad row costs that row, never the batch.

Each test runs on SQLite and on PostgreSQL (``store``), with real templates, the recording
channel of ``onetomany.testing`` scripted to fail, and an injected clock.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import timedelta

import pytest

from onetomany import Account, Contact
from onetomany.delivery.compose import Composer
from onetomany.delivery.dispatcher import DEFAULT_LEASE, DEFAULT_RECORD_EVERY, Dispatcher
from onetomany.delivery.retry import RetryPolicy
from onetomany.engine import Engine
from onetomany.errors import TransientDeliveryError
from onetomany.model import DeliveryResult, Message
from onetomany.store import NewTouch, Store
from onetomany.testing import RecordingChannel, make_plugins

from .conftest import make_program, write_templates

DIVIDE = """\
+++
subject = "Seats"
+++
<mjml><mj-body><mj-section><mj-column>
<mj-text>{{ 100 // contact.traits.seats }} per seat</mj-text>
</mj-column></mj-section></mj-body></mjml>
"""

GOOD = [f"ok{i:02}" for i in range(12)]


def _people(*ids: str) -> list[Account | Contact]:
    return [Account(id="a1", name="Northwind")] + [
        Contact(
            id=cid,
            account_id="a1",
            name=f"Person {cid}",
            email=f"{cid}@northwind.test",
            traits={"seats": 0 if cid == "bad-render" else 4},
        )
        for cid in ids
    ]


def _queue(engine: Engine, *contact_ids: str, template: str = "welcome") -> None:
    engine.store.enqueue(
        [
            NewTouch(
                idempotency_key=f"k-{cid}",
                program="acme",
                touch="welcome",
                channel="email",
                template="divide" if cid == "bad-render" else template,
                contact_id=cid,
                account_id="a1",
                available_at=engine.clock.now(),
            )
            for cid in contact_ids
        ],
        now=engine.clock.now(),
    )


@pytest.fixture
def build(tmp_path, frozen_clock, store):
    """An engine on ``store`` whose program has the ``welcome`` and ``divide`` templates."""
    engines: list[Engine] = []

    def make(channel, **options):
        program = make_program(tmp_path)
        write_templates(tmp_path / "templates", divide=DIVIDE)
        engine = Engine(
            program,
            store=store,
            clock=options.pop("clock", frozen_clock),
            plugins=make_plugins(),
            channels={"email": channel},
            **options,
        )
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        for channel in engine.channels.values():
            channel.close()


class PoisonComposer(Composer):
    """Composes like the real one, except for the row of contact ``bad-compose``."""

    def compose(self, row, **kwargs):  # type: ignore[no-untyped-def]
        if row.contact_id == "bad-compose":
            # What an unencodable address does inside the formatting of a header.
            raise UnicodeEncodeError("ascii", "ana@exämple.test", 6, 7, "ordinal not in range")
        return super().compose(row, **kwargs)


class Unprintable:
    """A provider id from a plugin bug: not a string, and it cannot be made one."""

    def __str__(self) -> str:
        raise ValueError("no text for this id")


class PoisonChannel(RecordingChannel):
    """Records like the recording channel, but fails in its own ways for marked recipients."""

    def send(self, message: Message) -> DeliveryResult:
        self.attempts.append(message)
        who = message.contact_id
        if who == "bad-mime":
            raise UnicodeEncodeError("ascii", "exämple", 2, 3, "building the MIME headers")
        if who == "bad-send":
            raise RuntimeError("the provider's SDK tripped over its own feet")
        if who == "bad-socket":
            raise ConnectionResetError(104, "Connection reset by peer")
        if who == "bad-result":
            return True  # type: ignore[return-value]  # a plugin bug: not a DeliveryResult
        self.sent.append(message)
        if who == "bad-record":
            return DeliveryResult(provider_message_id=Unprintable())  # type: ignore[arg-type]
        if who == "odd-reply":
            # PostgreSQL refuses a NUL, and the column keeps 512 characters.
            return DeliveryResult(provider_message_id="<\x00" + "x" * 600 + ">")
        return DeliveryResult(provider_message_id=f"rec-{len(self.sent)}")


BAD = ["bad-compose", "bad-render", "bad-mime", "bad-send", "bad-socket", "bad-result"]


def test_a_row_that_raises_in_any_step_costs_that_row_only(build, store):
    channel = PoisonChannel()
    engine = build(channel, batch_size=7, record_every=3, retry=RetryPolicy(initial=60, jitter=0))
    valid = [*GOOD, "odd-reply", "bad-record"]
    ids = [cid for pair in zip(valid, BAD + [""] * len(valid), strict=False) for cid in pair if cid]
    engine.identify(*_people(*ids))
    _queue(engine, *ids)
    dispatcher = Dispatcher(
        store=engine.store,
        composer=PoisonComposer(engine.program, engine.templates),
        channels=engine.channels,
        clock=engine.clock,
        plugins=engine.plugins,
        retry=engine.dispatcher.retry,
        batch_size=7,
        record_every=3,
    )

    report = dispatcher.dispatch()

    # Every valid row is delivered exactly once.
    assert Counter(m.contact_id for m in channel.sent) == Counter(valid)
    rows = {row.contact_id: row for row in store.outbox_rows()}
    assert {cid for cid, row in rows.items() if row.status == "sent"} == set(valid)
    # Each bad row carries its reason; only the socket error is worth a retry.
    assert {cid: rows[cid].status for cid in BAD} == {
        "bad-compose": "dead",
        "bad-render": "dead",
        "bad-mime": "dead",
        "bad-send": "dead",
        "bad-socket": "pending",
        "bad-result": "dead",
    }
    assert rows["bad-compose"].last_error.startswith("UnicodeEncodeError: 'ascii' codec")
    assert "ZeroDivisionError" in rows["bad-render"].last_error
    assert rows["bad-mime"].last_error.startswith("UnicodeEncodeError:")
    assert rows["bad-send"].last_error == (
        "RuntimeError: the provider's SDK tripped over its own feet"
    )
    assert rows["bad-socket"].last_error == (
        "ConnectionResetError: [Errno 104] Connection reset by peer"
    )
    assert rows["bad-result"].last_error.startswith("TypeError: the channel returned True")
    # A sent outcome the store cannot take as given is written plain, with the reason.
    assert rows["bad-record"].last_error == (
        "(the outcome could not be recorded as given: ValueError: no text for this id)"
    )
    assert (report.claimed, report.sent, report.dead, report.retrying) == (20, 14, 5, 1)
    assert report.unrecorded == 0 and report.stopped is None
    [odd] = store.deliveries(outbox_id=rows["odd-reply"].id)
    assert odd.provider_message_id is not None and len(odd.provider_message_id) == 512
    # Nothing is left claimed, and nothing is due again within this call.
    assert {row.status for row in rows.values()} == {"sent", "dead", "pending"}
    assert dispatcher.dispatch().claimed == 0


class NoOpen(RecordingChannel):
    """A channel whose connection fails while the batch opens it, the first ``failures`` times."""

    def __init__(self, refusals: int) -> None:
        super().__init__()
        self.refusals = refusals

    def open(self) -> None:
        super().open()
        if self.refusals:
            self.refusals -= 1
            raise ConnectionRefusedError(111, "Connection refused")


def test_a_channel_that_cannot_open_releases_the_batch_with_the_reason(build, store, frozen_clock):
    channel = NoOpen(refusals=1)
    engine = build(channel, retry=RetryPolicy(initial=60, jitter=0))
    engine.identify(*_people(*GOOD[:3]))
    _queue(engine, *GOOD[:3])

    report = engine.dispatch()

    assert (report.claimed, report.retrying, report.sent) == (3, 3, 0)
    rows = store.outbox_rows()
    assert {(row.status, row.attempts) for row in rows} == {("pending", 1)}
    assert {row.last_error for row in rows} == {
        "channel 'email' could not open: ConnectionRefusedError: [Errno 111] Connection refused"
    }
    assert {row.claim_token for row in rows} == {None}
    # Not due again within the same call or before the backoff; then delivered.
    assert engine.dispatch().claimed == 0
    frozen_clock.advance(seconds=60)
    assert engine.dispatch().sent == 3
    assert sorted(m.contact_id for m in channel.sent) == GOOD[:3]


def test_a_channel_that_never_opens_ends_in_the_dead_letters(build, store, frozen_clock):
    engine = build(NoOpen(refusals=10), retry=RetryPolicy(max_attempts=3, initial=1, jitter=0))
    engine.identify(*_people("c1"))
    _queue(engine, "c1")
    for _ in range(3):
        engine.dispatch()
        frozen_clock.advance(hours=1)
    [row] = store.outbox_rows()
    assert (row.status, row.attempts) == ("dead", 3)
    assert row.last_error.startswith("gave up after 3 attempts: channel 'email' could not open")


def test_one_dispatch_never_retries_a_row_twice_even_when_time_races(build, store, frozen_clock):
    class RacingClock:
        """A clock that jumps a day each time it is read, so every retry is due at once."""

        def __init__(self, start):
            self.at = start

        def now(self):
            self.at += timedelta(days=1)
            return self.at

        def sleep(self, seconds):
            self.at += timedelta(seconds=seconds)

    down = RecordingChannel(failures=[TransientDeliveryError("451 try later")] * 1000)
    clock = RacingClock(frozen_clock.now())
    engine = build(down, clock=clock, retry=RetryPolicy(max_attempts=50, initial=1, jitter=0))
    engine.identify(*_people("c1", "c2"))
    _queue(engine, "c1", "c2")

    report = engine.dispatch()

    assert (report.claimed, report.retrying) == (2, 2)
    assert len(down.attempts) == 2
    assert {row.attempts for row in store.outbox_rows()} == {1}


# -- leases -----------------------------------------------------------------------------------


class Stepping(RecordingChannel):
    """Sends, moving the shared frozen clock by ``step`` per message and calling ``during``
    (another dispatcher's pass) at message number ``at``."""

    def __init__(self, clock, *, step, at=0, during=None, fail_at=False):
        super().__init__()
        self.clock, self.step, self.at, self.during, self.fail_at = clock, step, at, during, fail_at

    def send(self, message: Message) -> DeliveryResult:
        self.clock.advance(seconds=self.step.total_seconds())
        if len(self.attempts) + 1 == self.at and self.during is not None:
            self.during()
            if self.fail_at:
                self.attempts.append(message)
                raise TransientDeliveryError("451 greylisted")
        return super().send(message)


class SteppingOneByOne(Stepping):
    """The same, through a ``send_many`` of its own that still sends message by message (as
    the SMTP channel's does): the dispatcher hands it a whole unit at once."""

    sends_one_by_one = True

    def send_many(self, messages):  # type: ignore[no-untyped-def]
        for message in messages:
            try:
                yield self.send(message)
            except TransientDeliveryError as error:
                yield error


@pytest.fixture(params=[Stepping, SteppingOneByOne], ids=["send", "one-by-one"])
def stepping(request):
    return request.param


def _second_worker(engine: Engine, store: Store, channel: RecordingChannel) -> Dispatcher:
    return Dispatcher(
        store=Store(store.url, migrate=False),
        composer=Composer(engine.program, engine.templates),
        channels={"email": channel},
        clock=engine.clock,
        plugins=engine.plugins,
    )


def test_a_long_batch_renews_its_lease_so_no_one_else_takes_its_rows(
    build, store, frozen_clock, stepping
):
    other = RecordingChannel()
    reports = []
    first = stepping(frozen_clock, step=DEFAULT_LEASE / 3, at=8)
    engine = build(first)
    assert engine.dispatcher.lease == DEFAULT_LEASE == timedelta(minutes=1)
    second = _second_worker(engine, store, other)
    first.during = lambda: reports.append(second.dispatch())
    engine.identify(*_people(*GOOD))
    _queue(engine, *GOOD)

    report = engine.dispatch()

    # The batch took 12 x 20 s = 4 minutes, four times its lease, and kept every row.
    assert report.sent == len(GOOD) and report.stale == 0
    assert reports[0].claimed == 0
    assert other.sent == []
    assert sorted(m.contact_id for m in first.sent) == GOOD
    assert {row.status for row in store.outbox_rows()} == {"sent"}
    second.store.close()


def test_a_worker_whose_lease_ran_out_changes_nothing_and_sends_no_more(
    build, store, frozen_clock, caplog, stepping
):
    other = RecordingChannel()
    reports = []
    # Message 3 stalls for twice the lease; meanwhile a second worker takes the batch over,
    # sends what it finds and records it. Then the first worker's send of message 3 fails.
    first = stepping(frozen_clock, step=timedelta(seconds=1), at=3, fail_at=True)
    engine = build(first)
    second = _second_worker(engine, store, other)

    def stall() -> None:
        frozen_clock.advance(seconds=2 * DEFAULT_LEASE.total_seconds())
        reports.append(second.dispatch())

    first.during = stall
    engine.identify(*_people(*GOOD))
    _queue(engine, *GOOD)

    with caplog.at_level(logging.WARNING, logger="onetomany.delivery.dispatcher"):
        report = engine.dispatch()

    # The first worker sent two messages, failed the third, and sent nothing after it.
    assert [m.contact_id for m in first.sent] == GOOD[:2]
    assert len(first.attempts) == 3
    # The second worker sent every row, the two unrecorded ones again: within the bound.
    assert sorted(m.contact_id for m in other.sent) == GOOD
    duplicates = set(GOOD[:2])
    assert len(duplicates) <= DEFAULT_RECORD_EVERY
    # The late writes (two sent, one retrying) changed nothing: every row stays sent.
    rows = store.outbox_rows()
    assert {(row.status, row.attempts) for row in rows} == {("sent", 1)}
    assert report.stale == len(GOOD)  # 3 outcomes refused + 9 rows not sent
    assert reports[0].sent == len(GOOD)
    assert [d.status for d in store.deliveries()] == ["sent"] * len(GOOD)
    assert "another worker claimed it" in caplog.text
    second.store.close()
