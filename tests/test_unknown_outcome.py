"""The third outcome: a message that went out with no answer may have arrived.

The dispatcher records it as ``unknown`` and sends it again only when the channel's provider
drops repeated idempotency keys or the touch asks for it. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from onetomany import Account, Contact
from onetomany.delivery.retry import RetryPolicy
from onetomany.engine import Engine
from onetomany.errors import UnknownOutcomeError
from onetomany.model import OutboxStatus
from onetomany.program import Touch
from onetomany.rules.triggers import EventTrigger
from onetomany.store import NewTouch
from onetomany.testing import RecordingChannel, make_plugins

from .conftest import make_program

LOST = UnknownOutcomeError("api.test: ReadTimeout: no answer", retry_after=40.0)


class DeduplicatingChannel(RecordingChannel):
    """A provider that drops a repeated idempotency key."""

    deduplicates = True


@pytest.fixture
def build(tmp_path, frozen_clock, store):
    engines: list[Engine] = []

    def make(channel: RecordingChannel, *, resend_unknown: bool = False) -> Engine:
        touch = Touch(
            name="welcome",
            trigger=EventTrigger(event="signed_up"),
            channel="email",
            template="welcome",
            resend_unknown=resend_unknown,
        )
        engine = Engine(
            make_program(tmp_path, touch),
            store=store,
            clock=frozen_clock,
            plugins=make_plugins(),
            channels={"email": channel},
            retry=RetryPolicy(max_attempts=3, initial=10, maximum=60, jitter=0),
        )
        engine.identify(
            Account(id="a1", name="Northwind"),
            *(
                Contact(id=c, account_id="a1", email=f"{c}@northwind.test", role="admin")
                for c in ("c1", "c2")
            ),
        )
        engine.store.enqueue(
            [
                NewTouch(
                    idempotency_key=f"k-{c}",
                    program="acme",
                    touch="welcome",
                    channel="email",
                    template="welcome",
                    contact_id=c,
                    account_id="a1",
                    available_at=frozen_clock.now(),
                )
                for c in ("c1", "c2")
            ],
            now=frozen_clock.now(),
        )
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.dispatcher.close()


def test_an_unknown_outcome_is_recorded_and_not_sent_again(build, frozen_clock):
    channel = RecordingChannel(failures=[LOST, None])
    engine = build(channel)

    report = engine.dispatch()
    frozen_clock.advance(timedelta(days=1))
    again = engine.dispatch()

    assert (report.unknown, report.sent, report.retrying, report.dead) == (1, 1, 0, 0)
    assert again.claimed == 0
    assert len(channel.attempts) == 2  # the unknown one was not sent twice
    rows = {row.contact_id: row for row in engine.store.outbox_rows()}
    assert rows["c1"].status == OutboxStatus.UNKNOWN
    assert "not sent again" in (rows["c1"].last_error or "")
    [delivery] = engine.store.deliveries(outbox_id=rows["c1"].id)
    assert delivery.status == "unknown"
    found = engine.store.latest_events(
        "message_unknown", by="contact", ids=["c1", "c2"], until=frozen_clock.now()
    )
    assert set(found) == {"c1"}
    assert found["c1"].properties["idempotency_key"] == "k-c1"


def test_a_deduplicating_provider_gets_it_again_after_the_backoff(build, frozen_clock):
    channel = DeduplicatingChannel(failures=[LOST])
    engine = build(channel)

    first = engine.dispatch()
    row = next(r for r in engine.store.outbox_rows() if r.contact_id == "c1")
    assert row.status == OutboxStatus.PENDING
    assert row.available_at >= frozen_clock.now() + timedelta(seconds=40)  # retry_after
    frozen_clock.advance(timedelta(seconds=41))
    second = engine.dispatch()

    assert first.unknown == 1
    assert second.sent == 1
    assert [m.idempotency_key for m in channel.attempts].count("k-c1") == 2
    statuses = [d.status for d in engine.store.deliveries(outbox_id=row.id)]
    assert statuses == ["unknown", "sent"]


def test_a_touch_may_ask_for_a_resend(build, frozen_clock):
    channel = RecordingChannel(failures=[LOST])
    engine = build(channel, resend_unknown=True)

    engine.dispatch()
    frozen_clock.advance(timedelta(minutes=5))
    engine.dispatch()

    assert sorted(channel.keys()) == ["k-c1", "k-c2"]


def test_resends_stop_at_max_attempts_and_the_row_stays_unknown(build, frozen_clock):
    channel = DeduplicatingChannel(failures=[LOST, None, LOST, LOST])
    engine = build(channel)

    for _ in range(5):
        engine.dispatch()
        frozen_clock.advance(timedelta(hours=1))

    row = next(r for r in engine.store.outbox_rows() if r.contact_id == "c1")
    assert row.status == OutboxStatus.UNKNOWN
    assert row.attempts == 3
    assert (row.last_error or "").startswith("gave up after 3 attempts")


class RaisingBatchChannel(RecordingChannel):
    """A batch API that raises the outcome of the message in flight instead of yielding it."""

    def send_many(self, messages):  # type: ignore[no-untyped-def]
        for message in messages:
            if message.contact_id == "c1":
                raise LOST
            yield self.send(message)


def test_an_outcome_raised_from_a_batch_counts_for_the_message_in_flight(build):
    channel = RaisingBatchChannel()
    engine = build(channel)

    report = engine.dispatch()

    assert (report.unknown, report.sent) == (1, 1)
    assert channel.keys() == ["k-c2"]
