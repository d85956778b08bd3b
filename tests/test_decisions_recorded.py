"""What ticks decided is recorded (bounded, pruned), and ``Engine.decide`` is a dry run."""

from datetime import timedelta

import pytest
import sqlalchemy as sa

from onetomany import Account, Contact
from onetomany.engine import EVENT_CURSOR, Engine
from onetomany.program import AbsenceTrigger, Audience, CadenceTrigger, EventTrigger, Touch
from onetomany.store import schema
from onetomany.store.queries.decisions import recorded_decisions
from onetomany.testing import FrozenClock, RecordingChannel, make_plugins

from .conftest import make_program

PEOPLE = (
    Account(id="acc-1", name="Initech"),
    Contact(id="ct-1", account_id="acc-1", email="ann@initech.test"),
)


def _engine(tmp_path, store, clock, *touches, **options):
    program = make_program(tmp_path, *touches)
    engine = Engine(
        program,
        store=store,
        clock=clock,
        plugins=make_plugins(),
        channels={"email": RecordingChannel()},
        **options,
    )
    engine.identify(*PEOPLE)
    return engine


def _touch(name, trigger):
    return Touch(
        name=name, trigger=trigger, channel="email", template="welcome", audience=Audience()
    )


def _count(store, table):
    with store.engine.connect() as conn:
        return conn.scalar(sa.select(sa.func.count()).select_from(table))


def test_a_tick_records_each_decision_once_per_key_and_outcome(tmp_path, store):
    clock = FrozenClock()
    engine = _engine(tmp_path, store, clock, _touch("nudge", AbsenceTrigger(event="login", days=3)))
    engine.track("login", account_id="acc-1", contact_id="ct-1", id="l1")
    clock.advance(days=4)
    assert engine.tick() == 1
    clock.advance(hours=1)
    assert engine.tick() == 0  # a steady round reads only what changed: nothing here
    assert len(recorded_decisions(store, "nudge", "ct-1", limit=10)) == 1
    for _ in range(3):  # read from scratch, the absence is proposed again: kept once more
        with store.write() as conn:
            conn.execute(sa.delete(schema.cursors).where(schema.cursors.c.name.like("absence:%")))
        clock.advance(hours=1)
        assert engine.tick() == 0
    records = recorded_decisions(store, "nudge", "ct-1", limit=10)
    assert [(r["outcome"], r["idempotency_key"]) for r in records] == [
        ("skipped", "acme:nudge:ct-1:absence-l1"),
        ("queued", "acme:nudge:ct-1:absence-l1"),
    ]
    assert records[0]["checks"][-1]["name"] == "outbox"
    assert records[1]["checks"][0]["name"] == "trigger"


def test_recorded_decisions_are_pruned_after_the_retention(tmp_path, store):
    clock = FrozenClock()
    engine = _engine(
        tmp_path,
        store,
        clock,
        _touch("hello", EventTrigger(event="signed_up")),
        decision_retention=timedelta(days=2),
    )
    engine.track("signed_up", account_id="acc-1", contact_id="ct-1", id="e1")
    engine.tick()
    assert _count(store, schema.decisions) == 1
    clock.advance(days=3)
    engine.tick()
    assert _count(store, schema.decisions) == 0


def test_a_retention_must_be_positive(tmp_path, store):
    with pytest.raises(ValueError, match="decision_retention must be positive"):
        _engine(
            tmp_path,
            store,
            FrozenClock(),
            _touch("hello", EventTrigger(event="signed_up")),
            decision_retention=timedelta(0),
        )


def test_decide_writes_nothing_and_agrees_with_the_tick(tmp_path, store):
    clock = FrozenClock()
    engine = _engine(
        tmp_path,
        store,
        clock,
        _touch("hello", EventTrigger(event="signed_up")),
        _touch("recap", CadenceTrigger(rrule="FREQ=DAILY", anchor="signed_up")),
    )
    engine.track("signed_up", account_id="acc-1", contact_id="ct-1", id="e1")
    clock.advance(days=1)
    tables = (schema.outbox, schema.schedules, schema.decisions, schema.cursors)
    before = [_count(store, t) for t in tables]
    predicted = {
        name: [d.idempotency_key for d in engine.decide(name, ["ct-1"]) if d.outcome == "queued"]
        for name in ("hello", "recap")
    }
    assert [_count(store, t) for t in tables] == before
    assert store.get_cursor(EVENT_CURSOR) is None
    engine.tick()
    queued = {d.touch: [d.idempotency_key] for d in engine.last_decisions if d.outcome == "queued"}
    assert predicted == queued
    assert all(predicted.values())
