"""The stored members of watched segments (``segment_members``: one row per segment and
contact, with the instant the membership began).

Who is in a segment now is asked of the segment compiler (:mod:`onetomany.store.segments`);
what a crossing means, and the event that records it, is decided in
:mod:`onetomany.tracking.segments`. This module reads the stored members and moves them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Literal

import attrs
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from onetomany.model import Event
from onetomany.store import schema

if TYPE_CHECKING:
    from onetomany.store import Store

#: Ids per IN list: under SQLite's bound-parameter limit.
_CHUNK = 500


@attrs.frozen(kw_only=True)
class MemberChange:
    """A member row really added (``entered``, ``since`` the round's instant) or removed
    (``left``, with the ``since`` it held)."""

    segment: str
    contact_id: str
    change: Literal["entered", "left"]
    since: datetime


def segment_members(store: Store, segment: str) -> dict[str, datetime]:
    """The stored members of ``segment``: contact id -> since when."""
    t = schema.segment_members
    with store.read() as conn:
        rows = conn.execute(sa.select(t.c.contact_id, t.c.since).where(t.c.segment == segment))
        return {row.contact_id: row.since for row in rows}


def member_ids(store: Store, segment: str) -> set[str]:
    """The ids of the stored members of ``segment``."""
    t = schema.segment_members
    with store.read() as conn:
        return set(conn.scalars(sa.select(t.c.contact_id).where(t.c.segment == segment)))


def member_since(store: Store, segment: str, contact_id: str) -> datetime | None:
    """Since when ``contact_id`` is a stored member of ``segment``; None if it is not."""
    t = schema.segment_members
    with store.read() as conn:
        since: datetime | None = conn.execute(
            sa.select(t.c.since).where(t.c.segment == segment, t.c.contact_id == contact_id)
        ).scalar_one_or_none()
    return since


def move_members(
    store: Store,
    moves: Mapping[str, tuple[Sequence[str], Sequence[str]]],
    *,
    now: datetime,
    events: Callable[[list[MemberChange]], Iterable[Event]],
) -> list[MemberChange]:
    """Add and remove members (``{segment: (entering, leaving)}``) in one transaction, with
    the events ``events`` makes of the rows that really changed; returns those changes.

    Rows are inserted with ON CONFLICT DO NOTHING and deleted with RETURNING, so when two
    engines move the same members at once each change is returned (and recorded) once. Per
    segment, the entered come first, then the left, each in contact id order.
    """
    changes: list[MemberChange] = []
    with store.write() as conn:
        for segment, (entering, leaving) in moves.items():
            changes += _enter(store, conn, segment, entering, now)
            changes += _leave(conn, segment, leaving)
        store._add_events(conn, events(changes), now)
    return changes


def _enter(
    store: Store, conn: Connection, segment: str, contact_ids: Sequence[str], now: datetime
) -> list[MemberChange]:
    if not contact_ids:
        return []
    t = schema.segment_members
    stmt = (
        store._insert(t)
        .on_conflict_do_nothing(index_elements=["segment", "contact_id"])
        .returning(t.c.contact_id)
    )
    rows = [{"segment": segment, "contact_id": c, "since": now} for c in contact_ids]
    # Only the rows really inserted come back: another engine may have added the rest.
    added = sorted(conn.scalars(stmt, rows).all())
    return [
        MemberChange(segment=segment, contact_id=contact, change="entered", since=now)
        for contact in added
    ]


def _leave(conn: Connection, segment: str, contact_ids: Sequence[str]) -> list[MemberChange]:
    t = schema.segment_members
    changes = []
    for start in range(0, len(contact_ids), _CHUNK):
        chunk = contact_ids[start : start + _CHUNK]
        stmt = (
            sa.delete(t)
            .where(t.c.segment == segment, t.c.contact_id.in_(chunk))
            .returning(t.c.contact_id, t.c.since)
        )
        changes += [
            MemberChange(segment=segment, contact_id=row.contact_id, change="left", since=row.since)
            for row in conn.execute(stmt)
        ]
    return sorted(changes, key=lambda c: c.contact_id)
