"""``explain`` agrees with ``tick``: random programs and histories, one verdict each.

Hypothesis builds a small program (a few touches over the trigger kinds, audiences, segment
filters and re-entry rules), a small population and a history of rounds on a frozen clock.
Each round changes some profiles and tracks some events, records segment crossings, and then,
for every (contact, touch) pair:

* ``explain`` is asked **before** the tick: its verdict is a prediction of what the tick does;
* the tick runs, and the rows it queued for the pair are compared with that prediction:
  "would fire" means the tick queues a row (under the key ``explain`` names, when it names
  one), "would not fire" and "fired" mean it queues none for the pair;
* after the tick (and a dispatch), ``explain`` never says "would fire": whatever was due at
  this instant has been queued.

The engine is the reference: a disagreement is a bug in ``explain`` unless the engine is
clearly wrong. Cases the search found are kept below as explicit examples.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs
import sqlalchemy as sa
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from onetomany import Account, Contact
from onetomany.cli.explain import explain
from onetomany.engine import Engine
from onetomany.program import (
    AbsenceTrigger,
    Audience,
    CadenceTrigger,
    EngagementTrigger,
    EventTrigger,
    Reentry,
    SegmentTrigger,
    Touch,
)
from onetomany.store import Store, schema
from onetomany.testing import FrozenClock, RecordingChannel, make_plugins

from .conftest import make_program

SEGMENTS = {
    "paying": "account.plan == 'pro'",
    "big": "account.seats >= 5",
    "recent": 'count("login", days=2) >= 1',
}
ROLES = ("admin", "leader", "sponsor")
PLANS = ("pro", "starter", None)
RRULES = ("FREQ=DAILY", "FREQ=DAILY;INTERVAL=2", "FREQ=DAILY;COUNT=2", "FREQ=WEEKLY")
ZONES = ("UTC", "America/New_York", "Asia/Tokyo")


# -- the program ------------------------------------------------------------------------------


def _trigger(index: int) -> st.SearchStrategy[Any]:
    kinds: list[st.SearchStrategy[Any]] = [
        st.builds(
            EventTrigger,
            event=st.sampled_from(["signed_up", "login"]),
            where=st.sampled_from([{}, {}, {"plan": "pro"}]),
        ),
        st.builds(
            SegmentTrigger,
            segment=st.sampled_from(sorted(SEGMENTS)),
            on=st.sampled_from(["enter", "leave"]),
        ),
        st.builds(
            AbsenceTrigger,
            event=st.just("login"),
            days=st.integers(1, 3),
            by=st.sampled_from(["account", "contact"]),
        ),
        st.builds(
            CadenceTrigger,
            rrule=st.sampled_from(RRULES),
            anchor=st.just("signed_up"),
            by=st.sampled_from(["account", "contact"]),
            after_days=st.integers(0, 1),
        ),
    ]
    if index:
        kinds.append(
            st.builds(
                EngagementTrigger,
                touch=st.sampled_from([f"t{i}" for i in range(index)]),
                outcome=st.sampled_from(["not_opened", "not_clicked"]),
                days=st.integers(1, 2),
            )
        )
    return st.one_of(kinds)


AUDIENCES = st.builds(
    Audience,
    # No roles half the time: a role the accounts lack makes a touch that never fires.
    roles=st.just(()) | st.lists(st.sampled_from(ROLES), unique=True, max_size=2).map(tuple),
    every=st.booleans(),
)
REENTRIES = st.one_of(
    st.just(Reentry()),
    st.just(Reentry(kind="once")),
    st.builds(Reentry, kind=st.just("period"), days=st.integers(1, 3)),
)


@st.composite
def touches(draw: st.DrawFn) -> tuple[Touch, ...]:
    count = draw(st.integers(1, 3))
    return tuple(
        Touch(
            name=f"t{i}",
            trigger=draw(_trigger(i)),
            channel="email",
            template="welcome",
            audience=draw(AUDIENCES),
            segment=draw(st.none() | st.sampled_from(sorted(SEGMENTS))),
            reentry=draw(REENTRIES),
        )
        for i in range(count)
    )


# -- the people -------------------------------------------------------------------------------


@st.composite
def accounts(draw: st.DrawFn, account_id: str) -> Account:
    traits: dict[str, Any] = {}
    plan = draw(st.sampled_from(PLANS))
    if plan is not None:
        traits["plan"] = plan
    seats = draw(st.sampled_from([None, 3, 8]))
    if seats is not None:
        traits["seats"] = seats
    return Account(id=account_id, name=f"Account {account_id}", traits=traits)


@st.composite
def people(draw: st.DrawFn) -> tuple[list[Account], list[Contact]]:
    found_accounts = [draw(accounts(f"a{i}")) for i in range(1, draw(st.integers(1, 2)) + 1)]
    contacts = []
    for account in found_accounts:
        for n in range(1, draw(st.integers(1, 3)) + 1):
            contact_id = f"{account.id}c{n}"
            contacts.append(
                Contact(
                    id=contact_id,
                    account_id=account.id,
                    name=f"Person {contact_id}",
                    email=f"{contact_id}@example.test",
                    role=draw(st.sampled_from((*ROLES, None))),
                    timezone=draw(st.sampled_from(ZONES)),
                    consent={"email": False} if draw(st.integers(0, 5)) == 0 else {},
                )
            )
    return found_accounts, contacts


# -- the history ------------------------------------------------------------------------------

#: An action is (what, account index, contact index or None, detail, extra, hours ago).
TRACK = st.tuples(
    st.just("track"),
    st.integers(0, 1),
    st.none() | st.integers(0, 2),
    st.sampled_from(["signed_up", "login"]),
    st.sampled_from([None, "pro", "starter"]),
    st.sampled_from([0, 0, 30, 80]),  # events can arrive late, dated in the past
)
ACTIONS = st.one_of(
    TRACK,
    TRACK,
    st.tuples(
        st.just("plan"), st.integers(0, 1), st.none(), st.sampled_from(PLANS), st.none(), st.just(0)
    ),
    st.tuples(
        st.just("seats"),
        st.integers(0, 1),
        st.none(),
        st.sampled_from([None, 3, 8]),
        st.none(),
        st.just(0),
    ),
    st.tuples(
        st.just("open"),
        st.integers(0, 1),
        st.integers(0, 2),
        st.integers(0, 2),
        st.sampled_from(["opened", "clicked"]),
        st.just(0),
    ),
)
#: How far the clock moves before a round, in hours.
STEPS = st.sampled_from([0, 1, 6, 24, 25, 48, 72])
ROUNDS = st.lists(st.tuples(STEPS, st.lists(ACTIONS, max_size=4)), min_size=2, max_size=5)


# -- running it -------------------------------------------------------------------------------


@contextmanager
def _engine(
    program_touches: tuple[Touch, ...], store: Store | None = None
) -> Iterator[tuple[Engine, FrozenClock]]:
    """An engine on ``store`` (closed with it), by default on a new SQLite file."""
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        program = attrs.evolve(make_program(base, *program_touches), segments=SEGMENTS)
        clock = FrozenClock()
        store = store or Store(base / "store.db")
        engine = Engine(
            program,
            store=store,
            clock=clock,
            plugins=make_plugins(),
            channels={"email": RecordingChannel()},
        )
        try:
            yield engine, clock
        finally:
            engine.close()


def _apply(
    engine: Engine,
    action: tuple[Any, ...],
    found_accounts: list[Account],
    contacts: list[Contact],
    serial: int,
) -> None:
    what, account_index, contact_index, detail, extra, ago = action
    account = found_accounts[account_index % len(found_accounts)]
    members = [c for c in contacts if c.account_id == account.id]
    contact = members[contact_index % len(members)] if contact_index is not None else None
    if what == "track":
        engine.track(
            detail,
            account_id=account.id,
            contact_id=contact.id if contact else None,
            properties={"plan": extra} if extra else {},
            occurred_at=engine.clock.now() - timedelta(hours=ago),
            id=f"ev{serial}",
        )
    elif what in ("plan", "seats"):
        engine.identify(Account(id=account.id, traits={what: detail}))
    elif what == "open":
        assert contact is not None
        rows = _rows(engine, f"t{detail}", contact.id, status="sent")
        if rows:
            engine.track_engagement(rows[-1], extra, id=f"ev{serial}")


def _rows(engine: Engine, touch: str, contact_id: str, status: str | None = None) -> list[str]:
    t = schema.outbox
    query = sa.select(t.c.idempotency_key).where(t.c.touch == touch, t.c.contact_id == contact_id)
    if status is not None:
        query = query.where(t.c.status == status)
    with engine.store.engine.connect() as conn:
        return list(conn.scalars(query.order_by(t.c.id)))


def _keys(engine: Engine) -> dict[tuple[str, str], set[str]]:
    t = schema.outbox
    found: dict[tuple[str, str], set[str]] = {}
    with engine.store.engine.connect() as conn:
        for row in conn.execute(sa.select(t.c.touch, t.c.contact_id, t.c.idempotency_key)):
            found.setdefault((row.contact_id, row.touch), set()).add(row.idempotency_key)
    return found


def _explain_all(engine: Engine, found_accounts: list[Account]) -> dict[tuple[str, str], Any]:
    """Every (contact, touch) pair's explanation, asked account by account."""
    verdicts = {}
    for touch in engine.program.touches:
        for account in found_accounts:
            for why in explain(engine, account.id, touch.name).recipients:
                verdicts[(why.contact_id, touch.name)] = why
    return verdicts


def check_agreement(
    program_touches: tuple[Touch, ...],
    population: tuple[list[Account], list[Contact]],
    rounds: list[tuple[int, list[tuple[Any, ...]]]],
) -> None:
    found_accounts, contacts = population
    with _engine(program_touches) as (engine, clock):
        engine.identify(*found_accounts, *contacts)
        serial = 0
        for number, (hours, actions) in enumerate(rounds):
            clock.advance(hours=hours)
            for action in actions:
                serial += 1
                _apply(engine, action, found_accounts, contacts, serial)
            engine.update_segments()
            before = _keys(engine)
            predicted = _explain_all(engine, found_accounts)
            engine.tick()
            after = _keys(engine)
            for pair, why in predicted.items():
                new = after.get(pair, set()) - before.get(pair, set())
                context = (
                    f"round {number} at {clock.now():%Y-%m-%d %H:%M}: {pair[1]} for {pair[0]}: "
                    f"explain said {why.verdict!r} (key {why.key}); the tick queued {sorted(new)}"
                )
                kind = type(engine.program.touch(pair[1]).trigger).__name__
                event(f"{kind}: {why.state}")
                if why.state == "would fire":
                    assert new, context
                    assert why.key is None or why.key in new, context
                else:
                    assert not new, context
            engine.dispatch()
        # Right after a tick nothing is left to fire at this instant. (Each round's
        # predictions check this too whenever a round changes nothing and keeps the time.)
        for pair, why in _explain_all(engine, found_accounts).items():
            assert why.state != "would fire", (
                f"after the last tick, {pair[1]} for {pair[0]} still {why.verdict!r}"
            )


@settings(
    # EXPLAIN_AGREES_EXAMPLES=2000 searches longer (make test stays fast with the default).
    max_examples=int(os.environ.get("EXPLAIN_AGREES_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(program_touches=touches(), population=people(), rounds=ROUNDS)
def test_explain_agrees_with_tick(
    program_touches: tuple[Touch, ...],
    population: tuple[list[Account], list[Contact]],
    rounds: list[tuple[int, list[tuple[Any, ...]]]],
) -> None:
    check_agreement(program_touches, population, rounds)
