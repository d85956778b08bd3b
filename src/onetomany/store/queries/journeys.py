"""Journey states (``journey_states``: where each account is in each journey) and history
(``journey_history``: every step it took).

How accounts move is decided in :mod:`onetomany.tracking.journeys`; this module reads the
states and history, finds the accounts a steady round must look at again (those with data
written since the last round, and those whose stage became overdue in between, through
``ix_journey_states_entered``), and writes a round's steps and cursors in one transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from onetomany.rules.journeys import JourneyState, StageChange
from onetomany.store import schema
from onetomany.store.queries.absence import stored_since
from onetomany.store.store import EventPosition

if TYPE_CHECKING:
    from onetomany.store import Store

#: Ids per IN list: under SQLite's bound-parameter limit.
_CHUNK = 500

#: One account's move in a round: the state read, the state to write, and the steps between.
Move = tuple[JourneyState | None, JourneyState | None, list[StageChange]]


def journey_states(store: Store, account_id: str) -> list[JourneyState]:
    """Every journey ``account_id`` is in, by journey name."""
    t = schema.journey_states
    stmt = sa.select(t).where(t.c.account_id == account_id).order_by(t.c.journey)
    with store.read() as conn:
        return [_state(row) for row in conn.execute(stmt)]


def journey_state(store: Store, journey: str, account_id: str) -> JourneyState | None:
    """Where ``account_id`` is in ``journey``; None if it has not entered it."""
    t = schema.journey_states
    stmt = sa.select(t).where(t.c.journey == journey, t.c.account_id == account_id)
    with store.read() as conn:
        row = conn.execute(stmt).first()
    return _state(row) if row is not None else None


def states_in(store: Store, journey: str) -> dict[str, JourneyState]:
    """Every account's state in ``journey``, by account id."""
    t = schema.journey_states
    with store.read() as conn:
        rows = conn.execute(sa.select(t).where(t.c.journey == journey))
        return {row.account_id: _state(row) for row in rows}


def states_of(store: Store, journey: str, account_ids: Iterable[str]) -> dict[str, JourneyState]:
    """The states in ``journey`` of ``account_ids`` (those that entered it), by account id."""
    wanted = sorted(set(account_ids))
    t = schema.journey_states
    found: dict[str, JourneyState] = {}
    with store.read() as conn:
        for start in range(0, len(wanted), _CHUNK):
            stmt = sa.select(t).where(
                t.c.journey == journey, t.c.account_id.in_(wanted[start : start + _CHUNK])
            )
            found.update({row.account_id: _state(row) for row in conn.execute(stmt)})
    return found


def written_since(
    store: Store,
    *,
    events: Collection[str],
    stored_after: EventPosition,
    occurred_after: datetime,
    until: datetime,
    changed_since: datetime,
) -> set[str]:
    """The accounts whose data may have changed since a round: one of ``events`` stored
    after ``stored_after`` or dated in ``(occurred_after, until]`` (the clock reached it),
    for the account or one of its contacts; or the account or one of its contacts saved at
    ``changed_since`` or later."""
    e, a, c = schema.events, schema.accounts, schema.contacts
    accounts: set[str] = set()
    contacts: set[str] = set()
    with store.read() as conn:
        if events:
            # By position alone, the name checked here (see queries.absence.changed_subjects).
            stored = sa.select(e.c.name, e.c.account_id, e.c.contact_id).where(
                stored_since(store, stored_after)
            )
            reached = sa.select(e.c.name, e.c.account_id, e.c.contact_id).where(
                e.c.occurred_at > occurred_after, e.c.occurred_at <= until
            )
            for query in (stored, reached):
                for name, account_id, contact_id in conn.execute(query):
                    if name in events:
                        accounts.add(account_id)
                        contacts.add(contact_id)
        accounts.update(conn.scalars(sa.select(a.c.id).where(a.c.updated_at >= changed_since)))
        accounts.update(
            conn.scalars(sa.select(c.c.account_id).where(c.c.updated_at >= changed_since))
        )
        # An event by contact counts for the contact's account, which the event may not name.
        wanted = sorted(i for i in contacts if i is not None)
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            accounts.update(conn.scalars(sa.select(c.c.account_id).where(c.c.id.in_(chunk))))
    accounts.discard(None)
    return accounts


def became_overdue(
    store: Store, journey: str, ideal_days: Mapping[str, int], *, after: datetime, until: datetime
) -> set[str]:
    """The accounts whose open stage of ``journey`` (by stage name: its ``ideal_days``)
    reached its ideal duration in ``(after, until]``: entered in that window shifted back by
    the duration, not completed and not overdue yet. One index range per stage."""
    t = schema.journey_states
    found: set[str] = set()
    with store.read() as conn:
        for stage, days in sorted(ideal_days.items()):
            ideal = timedelta(days=days)
            query = sa.select(t.c.account_id).where(
                t.c.journey == journey,
                t.c.stage == stage,
                t.c.entered_at > after - ideal,
                t.c.entered_at <= until - ideal,
                t.c.completed_at.is_(None),
                t.c.overdue_at.is_(None),
            )
            found.update(conn.scalars(query))
    return found


def stage_entries(store: Store, journey: str, account_ids: Iterable[str | None]) -> dict[str, str]:
    """The entry id of each account's current stage of ``journey`` (absent: not in it)."""
    wanted = sorted({a for a in account_ids if a})
    t = schema.journey_states
    found: dict[str, str] = {}
    with store.read() as conn:
        for start in range(0, len(wanted), _CHUNK):
            stmt = sa.select(t.c.account_id, t.c.entry_id).where(
                t.c.journey == journey, t.c.account_id.in_(wanted[start : start + _CHUNK])
            )
            found.update({row.account_id: row.entry_id for row in conn.execute(stmt)})
    return found


def journey_history(store: Store, account_id: str, journey: str | None = None) -> list[StageChange]:
    """The steps ``account_id`` took (through ``journey``, or every journey), oldest first."""
    t = schema.journey_history
    stmt = sa.select(t).where(t.c.account_id == account_id).order_by(t.c.id)
    if journey is not None:
        stmt = stmt.where(t.c.journey == journey)
    with store.read() as conn:
        return [_change(row) for row in conn.execute(stmt)]


def latest_steps(store: Store, account_id: str, journey: str, *, limit: int) -> list[StageChange]:
    """The last ``limit`` steps ``account_id`` took through ``journey``, newest first."""
    t = schema.journey_history
    stmt = (
        sa.select(t)
        .where(t.c.journey == journey, t.c.account_id == account_id)
        .order_by(t.c.id.desc())
        .limit(limit)
    )
    with store.read() as conn:
        return [_change(row) for row in conn.execute(stmt)]


def save_moves(
    store: Store,
    moves: Sequence[Move],
    *,
    now: datetime,
    cursors: Sequence[tuple[str, str]] = (),
) -> list[StageChange]:
    """Write a round's moves, and its ``cursors`` (``(name, value)``), in one transaction;
    returns the steps really taken.

    A state row changes only if it still holds the state read (another engine may have
    moved it since); only the steps of the moves written go into the history and become
    events.
    """
    taken: list[StageChange] = []
    if not moves and not cursors:
        return taken
    with store.write() as conn:
        for name, value in cursors:
            store._set_cursor(conn, name, value, now)
        for old, new, steps in moves:
            if _save(store, conn, old, new):
                taken += steps
        if taken:
            conn.execute(sa.insert(schema.journey_history), [_history_row(s) for s in taken])
            store._add_events(conn, [s.event() for s in taken], now)
    return taken


def _save(
    store: Store, conn: Connection, old: JourneyState | None, new: JourneyState | None
) -> bool:
    """Write ``new`` over ``old`` if the row still holds ``old``; False if it changed."""
    t = schema.journey_states
    if old is None:
        assert new is not None
        stmt = (
            store._insert(t)
            .values(_state_values(new))
            .on_conflict_do_nothing(index_elements=["journey", "account_id"])
            .returning(t.c.account_id)
        )
        return conn.execute(stmt).first() is not None
    unchanged = sa.and_(
        t.c.journey == old.journey,
        t.c.account_id == old.account_id,
        t.c.entry_id == old.entry_id,
        t.c.completed_at.is_(None) if old.completed_at is None else t.c.completed_at.is_not(None),
        t.c.overdue_at.is_(None) if old.overdue_at is None else t.c.overdue_at.is_not(None),
    )
    if new is None:
        return conn.execute(sa.delete(t).where(unchanged)).rowcount == 1
    return conn.execute(sa.update(t).where(unchanged).values(_state_values(new))).rowcount == 1


def _state(row: sa.Row[object]) -> JourneyState:
    m = row._mapping
    return JourneyState(
        journey=m["journey"],
        account_id=m["account_id"],
        stage=m["stage"],
        entry_id=m["entry_id"],
        entered_at=m["entered_at"],
        completed_at=m["completed_at"],
        overdue_at=m["overdue_at"],
    )


def _change(row: sa.Row[object]) -> StageChange:
    m = row._mapping
    return StageChange(
        journey=m["journey"],
        account_id=m["account_id"],
        stage=m["stage"],
        action=m["action"],
        entry_id=m["entry_id"],
        at=m["at"],
    )


def _state_values(state: JourneyState) -> dict[str, object]:
    return {
        "journey": state.journey,
        "account_id": state.account_id,
        "stage": state.stage,
        "entry_id": state.entry_id,
        "entered_at": state.entered_at,
        "completed_at": state.completed_at,
        "overdue_at": state.overdue_at,
    }


def _history_row(step: StageChange) -> dict[str, object]:
    return {
        "journey": step.journey,
        "account_id": step.account_id,
        "stage": step.stage,
        "action": step.action,
        "entry_id": step.entry_id,
        "at": step.at,
    }
