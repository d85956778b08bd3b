"""The incremental tick's property tests on PostgreSQL: steady rounds queue what reading
everything would, with the cursors' arms ("crossed since the last round", "stored since
position P", "saved since") asked of PostgreSQL's planner, types and clock.

The rounds and the reference are those of :mod:`tests.test_incremental_tick`; only the
stores differ. Each example reuses two databases of the test cluster, emptied first (a new
database per example would cost more than the example), with fewer examples than on SQLite
to keep the suite's time.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings

from onetomany import Account, Contact, Event
from onetomany.program import AbsenceTrigger, CadenceTrigger, Touch
from onetomany.store import Store, schema
from onetomany.store.queries.schedules import scheduled_next

from .test_explain_agrees import _engine, _keys, people
from .test_incremental_tick import (
    LADDER_ROUNDS,
    ROUNDS,
    _rounds_agree,
    absence_touches,
    ladder_touches,
)

#: Examples per property on PostgreSQL (60 on SQLite): about ten seconds each on a busy machine.
ON_POSTGRESQL = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class _Databases:
    """Two migrated databases, handed out empty for each example."""

    def __init__(self, urls: tuple[str, str]) -> None:
        self.urls = urls
        for url in urls:
            Store(url).close()  # migrated once; each example only empties the tables
        tables = ", ".join(f'"{name}"' for name in sorted(schema.metadata.tables))
        self.empty = sa.text(f"TRUNCATE {tables} RESTART IDENTITY")

    def __call__(self) -> tuple[Store, Store]:
        stores = []
        for url in self.urls:
            store = Store(url)
            with store.engine.begin() as conn:
                conn.execute(self.empty)
            stores.append(store)
        return stores[0], stores[1]


@pytest.fixture(scope="module")
def databases(postgres_url: str, postgres_admin: sa.Engine) -> Iterator[_Databases]:
    names = [f"t_{uuid.uuid4().hex}" for _ in range(2)]
    with postgres_admin.connect() as conn:
        for name in names:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    base = sa.make_url(postgres_url)
    urls = [base.set(database=name).render_as_string(hide_password=False) for name in names]
    yield _Databases((urls[0], urls[1]))
    with postgres_admin.connect() as conn:
        for name in names:
            conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))


@ON_POSTGRESQL
@given(touches=absence_touches(), population=people(), rounds=ROUNDS)
def test_steady_absence_rounds_on_postgresql_queue_what_reading_everything_would(
    databases: _Databases,
    touches: tuple[Touch, ...],
    population: tuple[list[Account], list[Contact]],
    rounds: list[tuple[int, list[tuple[Any, ...]]]],
) -> None:
    _rounds_agree(touches, population, rounds, dispatch=False, stores=databases)


@ON_POSTGRESQL
@given(touches=ladder_touches(), population=people(), rounds=LADDER_ROUNDS)
def test_steady_cadence_and_engagement_rounds_on_postgresql_queue_what_reading_everything_would(
    databases: _Databases,
    touches: tuple[Touch, ...],
    population: tuple[list[Account], list[Contact]],
    rounds: list[tuple[int, list[tuple[Any, ...]]]],
) -> None:
    _rounds_agree(touches, population, rounds, dispatch=True, stores=databases)


#: Each kind's trigger, and what its round does for a subject with that event dated 3 days
#: ago: an absence of a day has begun (a row queued), a cadence's schedule starts.
LATE = {
    "absence": AbsenceTrigger(event="login", days=1, by="contact"),
    "cadence": CadenceTrigger(rrule="FREQ=WEEKLY", anchor="login", by="contact"),
}


@pytest.mark.parametrize("kind", sorted(LATE))
def test_a_round_does_not_step_past_an_event_committed_after_a_later_one(
    pg_url: str, kind: str
) -> None:
    """Two writers: the first takes the lower ``seq`` and commits after a round has read the
    second's event. The event is dated days back, so only the "stored since position P" arm
    finds it; a cursor moved to the highest ``seq`` read would skip it for good."""
    touch = Touch(name="t0", trigger=LATE[kind], channel="email", template="welcome")
    with _engine((touch,), Store(pg_url)) as (engine, clock):
        store = engine.store
        engine.identify(
            Account(id="a1"),
            *(Contact(id=c, account_id="a1", email=f"{c}@example.test") for c in ("c1", "c2")),
        )
        assert engine.tick() == 0  # the first round: nobody has logged in, a cursor is kept
        clock.advance(minutes=1)
        back = clock.now() - timedelta(days=3)
        early = Event(id="early", name="login", account_id="a1", contact_id="c1", occurred_at=back)
        with store.engine.connect() as writer:
            store._add_events(writer, [early], clock.now())  # its seq taken, not committed
            engine.track("login", account_id="a1", contact_id="c2", occurred_at=back, id="late")
            engine.tick()
            writer.commit()
        clock.advance(minutes=1)
        engine.tick()
        if kind == "absence":
            assert set(_keys(engine)) == {("c1", "t0"), ("c2", "t0")}
        else:
            assert scheduled_next(store, "t0", "c1") is not None
            assert scheduled_next(store, "t0", "c2") is not None
