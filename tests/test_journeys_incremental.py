"""Steady journey rounds look only at the accounts whose answer may have changed, and take the
steps that looking at everyone would.

After its first round, a journey keeps a cursor (when the round ran, how far it had read the
event log). The reference is the same engine with that cursor wiped before every round, which
looks at every account and every state: hypothesis draws journeys (criteria on traits, roles,
events by account and by contact, named segments, some that move with time on their own,
stages with ``ideal_days``), people, and rounds of events (some dated in the past, some in
the future), profile changes, newcomers, contacts moving between accounts and clock steps;
both must take the same steps, store the same states and emit the same events every round.
The tests after it name which accounts a round looks at, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onetomany import Account, Contact
from onetomany.engine import Engine
from onetomany.model.clock import FrozenClock
from onetomany.rules.journeys import Journey, Stage, StageChange
from onetomany.rules.segments import SegmentSet
from onetomany.store import Store, schema
from onetomany.store.queries.journeys import states_in
from onetomany.store.queries.retention import delete_events
from onetomany.store.segments import accounts_meeting
from onetomany.testing import make_plugins
from onetomany.tracking import journeys as tracking

from .conftest import make_program

SEGMENTS = {
    "paying": "account.plan == 'pro'",
    "active": 'count("login") >= 2',
    "recent": 'count("login", days=2) >= 1',
}
#: Criteria that change only with what is written (profiles, events).
WRITTEN = (
    "account.plan == 'pro'",
    "account.ready == true",
    "contact.role == 'admin'",
    'exists(last("signed_up"))',
    'count("login") >= 2',
    'count("report", by="contact") >= 1',
    'missing(last("report"))',
    'segment("paying")',
    'segment("active") and exists(contact.role)',
)
#: Criteria that move with time on their own: their journey looks at everyone each round.
TIMED = ('count("login", days=2) >= 1', 'days_since(last("login")) >= 1', 'segment("recent")')
ROLES = ("admin", "member", None)


@st.composite
def journeys(draw: st.DrawFn) -> tuple[Journey, ...]:
    criteria = st.sampled_from(WRITTEN)
    if draw(st.integers(0, 3)) == 0:
        criteria = st.sampled_from(WRITTEN + TIMED)
    found = []
    for j in range(draw(st.integers(1, 2))):
        stages = [
            Stage(
                name=f"s{i}",
                entry=draw(criteria) if i == 0 else draw(st.none() | criteria),
                complete=draw(criteria),
                ideal_days=draw(st.none() | st.integers(1, 3)),
            )
            for i in range(draw(st.integers(1, 3)))
        ]
        found.append(Journey(name=f"j{j}", stages=tuple(stages)))
    return tuple(found)


@st.composite
def people(draw: st.DrawFn) -> list[Account | Contact]:
    found: list[Account | Contact] = []
    for a in range(draw(st.integers(1, 3))):
        plan = draw(st.sampled_from(["pro", "starter"]))
        found.append(Account(id=f"a{a}", traits={"plan": plan}))
        found += [
            Contact(id=f"a{a}c{n}", account_id=f"a{a}", role=draw(st.sampled_from(ROLES)))
            for n in range(draw(st.integers(0, 2)))
        ]
    return found


#: (what, account index, contact index, detail, hours ago: negative is in the future).
ACTIONS = st.one_of(
    st.tuples(
        st.just("track"),
        st.integers(0, 2),
        st.none() | st.integers(0, 3),
        st.sampled_from(["login", "login", "signed_up", "report", "other"]),
        st.sampled_from([0, 1, 30, -5, -30]),
    ),
    st.tuples(
        st.sampled_from(["plan", "ready"]),
        st.integers(0, 2),
        st.none(),
        st.sampled_from(["pro", "starter", True, False]),
        st.just(0),
    ),
    st.tuples(
        st.just("role"), st.integers(0, 2), st.integers(0, 3), st.sampled_from(ROLES), st.just(0)
    ),
    st.tuples(st.just("join"), st.integers(0, 2), st.none(), st.sampled_from(ROLES), st.just(0)),
    st.tuples(st.just("move"), st.integers(0, 2), st.integers(0, 3), st.integers(0, 2), st.just(0)),
)
STEPS = st.sampled_from([0, 1, 5, 23, 24, 25, 48, 72])
ROUNDS = st.lists(st.tuples(STEPS, st.lists(ACTIONS, max_size=4)), min_size=2, max_size=7)


def _new_engine(base: Path, found: tuple[Journey, ...], store: Store | None = None) -> Engine:
    """An engine running ``found``, which accepts events dated up to two days ahead."""
    program = attrs.evolve(
        make_program(base), segments=SegmentSet(SEGMENTS), journeys={j.name: j for j in found}
    )
    return Engine(
        program,
        store=store or Store(base / "store.db"),
        clock=FrozenClock(),
        plugins=make_plugins(),
        future_tolerance=timedelta(days=2),
    )


@contextmanager
def _engine(found: tuple[Journey, ...]) -> Iterator[Engine]:
    with tempfile.TemporaryDirectory() as folder:
        engine = _new_engine(Path(folder), found)
        try:
            yield engine
        finally:
            engine.close()


def _apply(engine: Engine, action: tuple[Any, ...], serial: int) -> None:
    what, account_index, contact_index, detail, ago = action
    accounts = sorted(engine.store.accounts(), key=lambda a: a.id)
    account = accounts[account_index % len(accounts)]
    members = sorted(engine.store.contacts_of(account.id), key=lambda c: c.id)
    contact = (
        members[contact_index % len(members)] if members and contact_index is not None else None
    )
    if what == "track":
        engine.track(
            detail,
            account_id=account.id,
            contact_id=contact.id if contact else None,
            occurred_at=engine.clock.now() - timedelta(hours=ago),
            id=f"ev{serial}",
        )
    elif what in ("plan", "ready"):
        engine.identify(attrs.evolve(account, traits={**account.traits, what: detail}))
    elif what == "role" and contact is not None:
        engine.identify(attrs.evolve(contact, role=detail))
    elif what == "move" and contact is not None:
        elsewhere = accounts[detail % len(accounts)]
        engine.identify(attrs.evolve(contact, account_id=elsewhere.id))
    elif what == "join":
        engine.identify(Contact(id=f"{account.id}n{serial}", account_id=account.id, role=detail))


def _forget(engine: Engine) -> None:
    t = schema.cursors
    with engine.store.engine.begin() as conn:
        conn.execute(t.delete().where(t.c.name.like("journey:%")))


def _seen(engine: Engine, found: tuple[Journey, ...]) -> object:
    """What a round leaves behind: every state and every stage event."""
    states = {j.name: states_in(engine.store, j.name) for j in found}
    stage_events = [
        (e.id, e.name, e.account_id, e.occurred_at, e.properties)
        for _, e in engine.store.events_after(0)
        if e.name.startswith("stage_")
    ]
    return states, stage_events


def _key(steps: list[StageChange]) -> list[tuple[str, ...]]:
    return sorted((s.journey, s.account_id, s.stage, s.action, s.entry_id) for s in steps)


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(found=journeys(), population=people(), rounds=ROUNDS)
def test_steady_rounds_take_the_steps_looking_at_everyone_would(
    found: tuple[Journey, ...],
    population: list[Account | Contact],
    rounds: list[tuple[int, list[tuple[Any, ...]]]],
) -> None:
    with ExitStack() as stack:
        steady, fresh = (stack.enter_context(_engine(found)) for _ in range(2))
        for engine in (steady, fresh):
            engine.identify(*population)
            engine.clock.advance(minutes=1)
        serial = 0
        for number, (hours, actions) in enumerate(rounds):
            for action in actions:
                serial += 1
                for engine in (steady, fresh):
                    _apply(engine, action, serial)
            _forget(fresh)
            taken = steady.update_journeys()
            expected = fresh.update_journeys()
            where = f"round {number} at {steady.clock.now()}"
            assert _key(taken) == _key(expected), where
            assert _seen(steady, found) == _seen(fresh, found), where
            for engine in (steady, fresh):
                engine.clock.advance(hours=hours)


# -- what a steady round looks at ----------------------------------------------------------------

ONBOARDING = Journey(
    name="onboarding",
    stages=(
        Stage(name="setup", entry='exists(last("signed_up"))', complete='count("report") >= 1'),
        Stage(name="adopt", complete="account.adopted == true", ideal_days=7),
    ),
)


@pytest.fixture
def engine(tmp_path: Path, store: Store) -> Iterator[Engine]:
    """An engine on each database, with 20 accounts signed up a minute before its clock."""
    found = _new_engine(tmp_path, (ONBOARDING,), store)
    found.identify(
        *[Account(id=f"a{i}") for i in range(20)],
        *[Contact(id=f"a{i}c", account_id=f"a{i}", role="admin") for i in range(20)],
    )
    for i in range(20):
        found.track("signed_up", account_id=f"a{i}", id=f"signup{i}")
    # A profile saved at the instant of a round is looked at again by the next one.
    found.clock.advance(minutes=1)
    yield found
    found.close()


@pytest.fixture
def looked_at(monkeypatch: pytest.MonkeyPatch) -> list[set[str] | None]:
    """The accounts each round looked at (None: every one)."""
    seen: list[set[str] | None] = []
    original = tracking._criteria

    def spy(*args: Any, among: set[str] | None = None, **kwargs: Any) -> tracking.Criteria:
        seen.append(None if among is None else set(among))
        return original(*args, among=among, **kwargs)

    monkeypatch.setattr(tracking, "_criteria", spy)
    return seen


def test_a_steady_round_looks_only_at_accounts_written_since_or_due(
    engine: Engine, looked_at: list[set[str] | None]
) -> None:
    assert len(engine.update_journeys()) == 20  # everyone enters setup
    engine.clock.advance(minutes=1)
    assert engine.update_journeys() == []
    engine.track("report", account_id="a3", id="r3")
    engine.identify(Account(id="a5", traits={"adopted": True}))
    engine.track("other", account_id="a7", id="o7")  # no criterion reads it
    engine.clock.advance(minutes=1)
    steps = engine.update_journeys()
    assert sorted((s.account_id, s.stage, s.action) for s in steps) == [
        ("a3", "adopt", "entered"),
        ("a3", "setup", "completed"),
    ]
    engine.clock.advance(days=7)
    overdue = engine.update_journeys()
    assert [(s.account_id, s.stage, s.action) for s in overdue] == [("a3", "adopt", "overdue")]
    assert looked_at == [None, set(), {"a3", "a5"}, {"a3"}]


def test_an_event_dated_in_the_future_counts_when_the_clock_reaches_it(
    engine: Engine, looked_at: list[set[str] | None]
) -> None:
    engine.update_journeys()
    engine.clock.advance(minutes=1)
    later = engine.clock.now() + timedelta(hours=5)
    engine.track("report", account_id="a4", occurred_at=later, id="r4")
    assert engine.update_journeys() == []
    engine.clock.advance(hours=6)
    steps = engine.update_journeys()
    assert {(s.account_id, s.action) for s in steps} == {("a4", "completed"), ("a4", "entered")}
    assert looked_at[1:] == [{"a4"}, {"a4"}]


def test_a_changed_journey_a_lost_cursor_or_a_clock_gone_back_looks_at_everyone(
    engine: Engine, looked_at: list[set[str] | None]
) -> None:
    engine.update_journeys()
    engine.clock.advance(minutes=1)
    engine.update_journeys()
    changed = attrs.evolve(
        ONBOARDING,
        stages=(
            *ONBOARDING.stages[:1],
            Stage(name="adopt", complete="account.adopted == true", ideal_days=8),
        ),
    )
    engine.program = attrs.evolve(engine.program, journeys={"onboarding": changed})
    engine.update_journeys()  # a changed definition
    engine.update_journeys()
    _forget(engine)
    engine.update_journeys()  # a lost cursor
    engine.clock.advance(hours=-1)
    engine.update_journeys()  # a clock gone back
    assert looked_at == [None, set(), None, set(), None, None]


def test_a_journey_that_moves_with_time_looks_at_everyone_every_round(
    engine: Engine, looked_at: list[set[str] | None]
) -> None:
    timed = Journey(
        name="quiet",
        stages=(Stage(name="q", entry='days_since(last("signed_up")) >= 2', complete="false"),),
    )
    engine.program = attrs.evolve(engine.program, journeys={"quiet": timed})
    assert engine.update_journeys() == []
    engine.clock.advance(days=2)
    assert len(engine.update_journeys()) == 20
    assert looked_at == [None, None]
    assert engine.store.get_cursor("journey:acme:quiet") is None


def test_accounts_meeting_among_asks_only_about_those_accounts(engine: Engine) -> None:
    now = engine.clock.now()
    everyone = accounts_meeting(engine.store, 'exists(last("signed_up"))', now=now)
    assert len(everyone) == 20
    among = accounts_meeting(
        engine.store, 'exists(last("signed_up"))', now=now, among=["a1", "a2", "nobody"]
    )
    assert among == {"a1", "a2"}
    assert accounts_meeting(engine.store, "true", now=now, among=[]) == frozenset()


def test_the_cursor_is_written_with_the_rounds_moves(engine: Engine) -> None:
    engine.update_journeys()
    stored = engine.store.get_cursor("journey:acme:onboarding")
    assert stored is not None and str(engine.clock.now().isoformat()) in stored
    with engine.store.engine.connect() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(schema.journey_states))
        assert count.scalar_one() == 20


def test_events_deleted_by_retention_make_the_next_round_look_at_everyone(
    engine: Engine, looked_at: list[set[str] | None]
) -> None:
    engine.update_journeys()
    seqs = [at.seq for at, e in engine.store.events_after(0) if e.id == "signup1"]
    assert delete_events(engine.store, seqs) == 1
    assert engine.store.get_cursor("journey:acme:onboarding") is None
    engine.clock.advance(minutes=1)
    engine.update_journeys()
    assert looked_at == [None, None]


def test_an_event_counted_through_a_named_segment_is_a_change(
    engine: Engine, looked_at: list[set[str] | None]
) -> None:
    active = Journey(
        name="active",
        stages=(Stage(name="s", entry='segment("active")', complete="account.done == true"),),
    )
    engine.program = attrs.evolve(engine.program, journeys={"active": active})
    assert engine.update_journeys() == []
    engine.clock.advance(minutes=1)
    engine.track("login", account_id="a2", id="l1")
    engine.track("login", account_id="a2", id="l2")
    assert [(s.account_id, s.action) for s in engine.update_journeys()] == [("a2", "entered")]
    assert looked_at == [None, {"a2"}]
