"""Time-driven triggers' steady rounds read only what changed, and queue what reading
everything would.

The first test holds absence touches to that; the second cadence and engagement touches
(an escalation ladder over an event touch and a cadence), with messages sent and opened
between rounds.

After its first round, an absence touch keeps a cursor (when it ran, how far it had read the
event log) and its next rounds ask only about the subjects whose answer may have changed
since. The reference is the same engine with that memory wiped before every round, which
reads every absent subject as a fresh store replaying the same events would: hypothesis
draws programs (absence touches by account and by contact, audiences, segments on traits
and on event counts, re-entry rules), people, and rounds of events (some dated in the past),
profile changes, newcomers and clock steps, and both must have queued the same
rows after every round.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from typing import Any

import attrs
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onetomany import Account, Contact
from onetomany.engine import Engine
from onetomany.program import (
    AbsenceTrigger,
    CadenceTrigger,
    EngagementTrigger,
    EventTrigger,
    Touch,
)
from onetomany.store import Store, schema
from onetomany.testing import FrozenClock

from .test_explain_agrees import (
    AUDIENCES,
    PLANS,
    REENTRIES,
    ROLES,
    RRULES,
    SEGMENTS,
    _engine,
    _keys,
    _rows,
    people,
)

TRIGGERS = st.one_of(
    st.builds(
        AbsenceTrigger,
        event=st.just("login"),
        days=st.integers(1, 3),
        by=st.sampled_from(["account", "contact"]),
    ),
    st.builds(EventTrigger, event=st.just("signed_up")),
)


@st.composite
def absence_touches(draw: st.DrawFn) -> tuple[Touch, ...]:
    return tuple(
        Touch(
            name=f"t{i}",
            trigger=draw(TRIGGERS),
            channel="email",
            template="welcome",
            audience=draw(AUDIENCES),
            segment=draw(st.none() | st.sampled_from(sorted(SEGMENTS))),
            reentry=draw(REENTRIES),
        )
        for i in range(draw(st.integers(1, 3)))
    )


#: (what, account index, contact index or None, detail, hours ago).
ACTIONS = st.one_of(
    st.tuples(
        st.just("track"),
        st.integers(0, 1),
        st.none() | st.integers(0, 2),
        st.sampled_from(["login", "login", "signed_up"]),
        st.sampled_from([0, 0, 1, 30, 80]),
    ),
    st.tuples(st.just("plan"), st.integers(0, 1), st.none(), st.sampled_from(PLANS), st.just(0)),
    st.tuples(
        st.just("role"),
        st.integers(0, 1),
        st.integers(0, 2),
        st.sampled_from((*ROLES, None)),
        st.just(0),
    ),
    st.tuples(st.just("join"), st.integers(0, 1), st.none(), st.sampled_from(ROLES), st.just(0)),
)
#: Clock steps in hours: whole days often, so that absences begin right at a round.
STEPS = st.sampled_from([0, 1, 23, 24, 24, 25, 48, 72])
ROUNDS = st.lists(st.tuples(STEPS, st.lists(ACTIONS, max_size=4)), min_size=2, max_size=6)


def _apply(
    engine: Engine,
    action: tuple[Any, ...],
    found_accounts: list[Account],
    contacts: list[Contact],
    serial: int,
) -> None:
    what, account_index, contact_index, detail, ago = action
    account = found_accounts[account_index % len(found_accounts)]
    members = [c for c in contacts if c.account_id == account.id]
    contact = members[contact_index % len(members)] if contact_index is not None else None
    if what == "track":
        engine.track(
            detail,
            account_id=account.id,
            contact_id=contact.id if contact else None,
            occurred_at=engine.clock.now() - timedelta(hours=ago),
            id=f"ev{serial}",
        )
    elif what == "plan":
        engine.identify(Account(id=account.id, traits={"plan": detail}))
    elif what == "role":
        assert contact is not None
        engine.identify(attrs.evolve(contact, role=detail))
    elif what == "open":  # the contact opens (or clicks) its latest sent message of a touch
        assert contact is not None
        rows = _rows(engine, f"t{ago}", contact.id, status="sent")
        if rows:
            engine.track_engagement(rows[-1], detail, id=f"ev{serial}")
    else:  # someone new joins an account, perhaps one that is absent already
        engine.identify(
            Contact(
                id=f"{account.id}n{serial}",
                account_id=account.id,
                email=f"{account.id}n{serial}@example.test",
                role=detail,
            )
        )


def _forget(engine: Engine) -> None:
    """Wipe what the time-driven touches remember between rounds."""
    t = schema.cursors
    with engine.store.engine.begin() as conn:
        for kind in ("absence", "cadence", "engagement"):
            conn.execute(t.delete().where(t.c.name.like(f"{kind}:%")))


#: Two empty stores for the two engines of a pair (None: two new SQLite files).
Stores = Callable[[], tuple[Store, Store]] | None


@contextmanager
def _pair(touches: tuple[Touch, ...], stores: Stores) -> Iterator[list[tuple[Engine, FrozenClock]]]:
    with ExitStack() as stack:
        given = stores() if stores is not None else (None, None)
        yield [stack.enter_context(_engine(touches, store)) for store in given]


def _rounds_agree(
    touches: tuple[Touch, ...],
    population: tuple[list[Account], list[Contact]],
    rounds: list[tuple[int, list[tuple[Any, ...]]]],
    *,
    dispatch: bool,
    stores: Stores = None,
) -> None:
    """Play ``rounds`` on two engines; each round, the one with cursors queues what the one
    whose cursors were wiped queues (``dispatch``: send what they queued between rounds)."""
    found_accounts, contacts = population
    with _pair(touches, stores) as engines:
        for engine, _ in engines:
            engine.identify(*found_accounts, *contacts)
        serial = 0
        for number, (hours, actions) in enumerate(rounds):
            for _, clock in engines:
                clock.advance(hours=hours)
            for action in actions:
                serial += 1
                for engine, _ in engines:
                    _apply(engine, action, found_accounts, contacts, serial)
            (steady, _), (fresh, _) = engines
            _forget(fresh)
            steady.tick()
            fresh.tick()
            assert _keys(steady) == _keys(fresh), f"round {number} at {steady.clock.now()}"
            if dispatch:
                steady.dispatch()
                fresh.dispatch()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(touches=absence_touches(), population=people(), rounds=ROUNDS)
def test_steady_rounds_queue_what_reading_everything_would(
    touches: tuple[Touch, ...],
    population: tuple[list[Account], list[Contact]],
    rounds: list[tuple[int, list[tuple[Any, ...]]]],
) -> None:
    _rounds_agree(touches, population, rounds, dispatch=False)


def test_a_steady_round_reads_only_the_subjects_that_changed(store: Store) -> None:
    touch = Touch(
        name="t0",
        trigger=AbsenceTrigger(event="login", days=30),
        channel="email",
        template="welcome",
        segment="paying",
    )
    with _engine((touch,), store) as (engine, clock):
        for i in range(30):
            engine.identify(
                Account(id=f"a{i}", traits={"plan": "pro"}),
                Contact(id=f"c{i}", account_id=f"a{i}", email=f"c{i}@example.test"),
            )
            engine.track("login", account_id=f"a{i}", contact_id=f"c{i}", id=f"l{i}")
        clock.advance(days=31)
        assert engine.tick() == 30
        clock.advance(minutes=1)
        engine.track("login", account_id="a0", contact_id="c0", id="again")
        asked: list[Any] = []

        def listen(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
            if "IN (" in statement:
                # SQLite's driver takes a tuple of values, psycopg a dict by name.
                asked.append(params.values() if isinstance(params, dict) else params)

        sa.event.listen(engine.store.engine, "before_cursor_execute", listen)
        assert engine.tick() == 0
        sa.event.remove(engine.store.engine, "before_cursor_execute", listen)
        # Only the account with a new login is read again, not the 29 still absent.
        assert [p for p in asked if "a1" in map(str, p) or "c1" in map(str, p)] == []
        assert any("a0" in map(str, p) for p in asked)
        clock.advance(days=30)
        assert engine.tick() == 1  # its new absence, found the moment it begins


@st.composite
def ladder_touches(draw: st.DrawFn) -> tuple[Touch, ...]:
    """A welcome on sign-up or a cadence anchored on it, then engagement steps watching any
    touch before them."""
    first = draw(
        st.one_of(
            st.builds(EventTrigger, event=st.just("signed_up")),
            st.builds(
                CadenceTrigger,
                rrule=st.sampled_from(RRULES),
                anchor=st.just("signed_up"),
                by=st.sampled_from(["account", "contact"]),
                after_days=st.integers(0, 1),
            ),
        )
    )
    triggers: list[Any] = [first]
    for index in range(1, draw(st.integers(2, 3))):
        triggers.append(
            draw(
                st.builds(
                    EngagementTrigger,
                    touch=st.sampled_from([f"t{i}" for i in range(index)]),
                    outcome=st.sampled_from(["not_opened", "not_clicked"]),
                    days=st.integers(1, 2),
                )
                | st.builds(
                    CadenceTrigger,
                    rrule=st.sampled_from(RRULES),
                    anchor=st.just("signed_up"),
                    by=st.sampled_from(["account", "contact"]),
                    after_days=st.integers(0, 1),
                )
            )
        )
    return tuple(
        Touch(
            name=f"t{i}",
            trigger=trigger,
            channel="email",
            template="welcome",
            audience=draw(AUDIENCES),
            segment=draw(st.none() | st.sampled_from(sorted(SEGMENTS))),
            reentry=draw(REENTRIES),
        )
        for i, trigger in enumerate(triggers)
    )


#: As ACTIONS, with opens and clicks of a touch's latest sent message (its index last).
LADDER_ACTIONS = st.one_of(
    ACTIONS,
    st.tuples(
        st.just("open"),
        st.integers(0, 1),
        st.integers(0, 2),
        st.sampled_from(["opened", "clicked"]),
        st.integers(0, 2),
    ),
)
LADDER_ROUNDS = st.lists(
    st.tuples(STEPS, st.lists(LADDER_ACTIONS, max_size=4)), min_size=2, max_size=6
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(touches=ladder_touches(), population=people(), rounds=LADDER_ROUNDS)
def test_steady_cadence_and_engagement_rounds_queue_what_reading_everything_would(
    touches: tuple[Touch, ...],
    population: tuple[list[Account], list[Contact]],
    rounds: list[tuple[int, list[tuple[Any, ...]]]],
) -> None:
    # Sent between rounds, so that the ladders have messages to watch.
    _rounds_agree(touches, population, rounds, dispatch=True)


def test_an_engagement_round_finds_the_rows_that_crossed_its_days_between_rounds(
    store: Store,
) -> None:
    welcome = Touch(
        name="t0", trigger=EventTrigger(event="signed_up"), channel="email", template="welcome"
    )
    resend = Touch(
        name="t1",
        trigger=EngagementTrigger(touch="t0", outcome="not_opened", days=1),
        channel="email",
        template="welcome",
    )
    with _engine((welcome, resend), store) as (engine, clock):
        for i in range(3):
            engine.identify(
                Account(id=f"a{i}"),
                Contact(id=f"c{i}", account_id=f"a{i}", email=f"c{i}@example.test"),
            )
            engine.track("signed_up", account_id=f"a{i}", contact_id=f"c{i}", id=f"s{i}")
        assert engine.tick() == 3
        engine.dispatch()
        opened = _rows(engine, "t0", "c0", status="sent")
        engine.track_engagement(opened[-1], "opened", id="open0")
        clock.advance(hours=1)
        assert engine.tick() == 0  # sent an hour ago: not due, but read since it was sent
        clock.advance(hours=12)
        assert engine.tick() == 0  # nothing stored since: a round reading no row
        clock.advance(hours=12)
        # Neither stored nor saved since the last round: found because it crossed its day.
        assert engine.tick() == 2
        assert {c for c, t in _keys(engine) if t == "t1"} == {"c1", "c2"}
        clock.advance(hours=1)
        assert engine.tick() == 0
