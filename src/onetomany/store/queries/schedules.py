"""Cadence schedules: the ``schedules`` table, one row per (touch, contact).

A row holds the anchor event a cadence rule counts from, ``next_at`` (the next occurrence,
NULL once the rule is exhausted) and how many occurrences have fired. When occurrences fall
and what a due row sends is decided in :mod:`onetomany.tracking.cadence`; this module reads
and writes the rows.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import attrs
import sqlalchemy as sa

from onetomany.store import schema

if TYPE_CHECKING:
    from onetomany.store import Store

#: Ids per IN list: under SQLite's bound-parameter limit.
_CHUNK = 500


@attrs.frozen(kw_only=True)
class Schedule:
    """One ``schedules`` row: where ``touch``'s rule stands for ``contact_id``."""

    touch: str
    contact_id: str
    anchor_id: str
    anchor_at: datetime
    next_at: datetime | None
    fired: int = 0


@attrs.frozen(kw_only=True)
class ScheduleMove:
    """A fired row moved on: from ``due`` (its ``next_at`` as read) to ``next_at``.

    ``fired`` says whether an occurrence was sent (the row's count grows by one).
    """

    touch: str
    contact_id: str
    due: datetime
    next_at: datetime | None
    fired: bool


def unscheduled_anchors(
    store: Store,
    touch: str,
    *,
    anchor: str,
    by: str,
    roles: Sequence[str],
    now: datetime,
    among: Collection[str] | None = None,
) -> dict[str, tuple[str, datetime]]:
    """The first ``anchor`` event (id, instant) at or before ``now`` of each subject (account
    with ``by="account"``, else contact) that has no schedule for ``touch`` yet and a contact
    in one of ``roles`` (any contact when empty), by subject id; only subjects in ``among``
    when given (a steady round's changed subjects).

    One anti-join over the anchor events (of ``among``, through the subject's (subject, name,
    time) index, when given).
    """
    e, s, c = schema.events, schema.schedules, schema.contacts
    if by == "account":
        subject = e.c.account_id
        # From the account's contacts to their rows (both by index): as a join, SQLite
        # read every schedule of the touch for each anchor, quadratic in the accounts.
        member = schema.contacts.alias("member")
        has_row = sa.select(1).where(s.c.touch == touch, s.c.contact_id == member.c.id)
        scheduled = sa.select(1).where(member.c.account_id == subject, sa.exists(has_row))
        eligible = sa.select(1).where(c.c.account_id == subject)
    else:
        subject = e.c.contact_id
        scheduled = sa.select(1).where(s.c.touch == touch, s.c.contact_id == subject)
        eligible = sa.select(1).where(c.c.id == subject)
    if roles:
        eligible = eligible.where(c.c.role.in_(roles))
    query = (
        sa.select(subject.label("subject"), e.c.id, e.c.occurred_at)
        .where(e.c.name == anchor, subject.is_not(None), e.c.occurred_at <= now)
        .where(~sa.exists(scheduled), sa.exists(eligible))
        .order_by(e.c.occurred_at.desc(), e.c.seq.desc())
    )
    if among is None:
        chunks = [query]
    else:
        wanted = sorted(among)
        chunks = [
            query.where(subject.in_(wanted[start : start + _CHUNK]))
            for start in range(0, len(wanted), _CHUNK)
        ]
    found: dict[str, tuple[str, datetime]] = {}
    with store.read() as conn:
        for chunk in chunks:
            # Latest first, so the last one written per subject is its first anchor.
            found.update({row.subject: (row.id, row.occurred_at) for row in conn.execute(chunk)})
    return found


def add_schedules(store: Store, schedules: Sequence[Schedule], *, now: datetime) -> None:
    """Add schedule rows; a (touch, contact) that already has one keeps it."""
    if not schedules:
        return
    t = schema.schedules
    rows = [attrs.asdict(schedule) | {"updated_at": now} for schedule in schedules]
    with store.write() as conn:
        stmt = store._insert(t).on_conflict_do_nothing(index_elements=[t.c.touch, t.c.contact_id])
        conn.execute(stmt, rows)


def due_schedules(store: Store, touch: str, *, now: datetime) -> list[tuple[Schedule, str | None]]:
    """The rows of ``touch`` whose ``next_at`` has come, oldest first, each with its contact's
    timezone (None: the contact is gone from the store)."""
    s, c = schema.schedules, schema.contacts
    query = (
        sa.select(s, c.c.timezone)
        .select_from(s.outerjoin(c, c.c.id == s.c.contact_id))
        .where(s.c.touch == touch, s.c.next_at <= now)
        .order_by(s.c.next_at, s.c.contact_id)
    )
    with store.read() as conn:
        return [(_schedule(row), row.timezone) for row in conn.execute(query)]


def advance_schedules(store: Store, moves: Iterable[ScheduleMove], *, now: datetime) -> int:
    """Move each row's ``next_at`` on, unless another tick already did (the row's ``next_at``
    is no longer ``due``); returns how many moved."""
    params = [
        {
            "b_touch": m.touch,
            "b_contact": m.contact_id,
            "b_due": m.due,
            "b_next": m.next_at,
            "b_fired": 1 if m.fired else 0,
            "b_now": now,
        }
        for m in moves
    ]
    if not params:
        return 0
    s = schema.schedules
    stmt = (
        sa.update(s)
        .where(
            s.c.touch == sa.bindparam("b_touch"),
            s.c.contact_id == sa.bindparam("b_contact"),
            s.c.next_at == sa.bindparam("b_due", type_=schema.UTCDateTime),
        )
        .values(
            next_at=sa.bindparam("b_next", type_=schema.UTCDateTime),
            fired=s.c.fired + sa.bindparam("b_fired", type_=sa.Integer),
            updated_at=sa.bindparam("b_now", type_=schema.UTCDateTime),
        )
    )
    with store.write() as conn:
        result = conn.execute(stmt, params)
    return max(result.rowcount, 0)


def schedule(store: Store, touch: str, contact_id: str) -> Schedule | None:
    """The schedule row of ``touch`` for ``contact_id``, if it has one."""
    s = schema.schedules
    with store.read() as conn:
        row = conn.execute(
            sa.select(s).where(s.c.touch == touch, s.c.contact_id == contact_id)
        ).first()
    return _schedule(row) if row is not None else None


def scheduled_next(store: Store, touch: str, contact_id: str) -> datetime | None:
    """When ``touch`` is next due for ``contact_id``; None if it has no schedule or is done."""
    s = schema.schedules
    with store.read() as conn:
        value: datetime | None = conn.scalar(
            sa.select(s.c.next_at).where(s.c.touch == touch, s.c.contact_id == contact_id)
        )
    return value


def _schedule(row: sa.Row[object]) -> Schedule:
    return Schedule(
        touch=row.touch,
        contact_id=row.contact_id,
        anchor_id=row.anchor_id,
        anchor_at=row.anchor_at,
        next_at=row.next_at,
        fired=row.fired,
    )
