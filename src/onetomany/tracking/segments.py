"""Segment membership: who entered or left the segments that segment triggers watch.

Each round, :func:`update_segment_members` asks the database for every watched segment's
current members (one set-based query per segment), compares them with the members stored in
``segment_members``, and in one transaction adds and removes member rows and records a
``segment_entered`` or ``segment_left`` event per crossing. Those events reach
:class:`~onetomany.rules.triggers.SegmentTrigger` touches through the ordinary event path of
``tick()``.

Decisions (docs/journeys.md, "Segment triggers"):

* The first evaluation of a segment has no stored members, so everyone in it *enters*: a
  touch on ``{ segment = "x", on = "enter" }`` added to a running program reaches the
  segment's current members once.
* A stored member whose contact no longer exists is removed silently, with no
  ``segment_left`` event: deleting a contact (often an erasure request) is not the contact
  leaving the segment, and must not send a "we miss you" touch.
* Segments no longer watched keep their stored members; when watched again, the comparison
  resumes from them, so only real crossings since then fire.

Event ids are derived from the crossing (segment, contact, the instant the membership
began), so a round that is repeated cannot record the same crossing twice.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Literal

import attrs
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from onetomany.model import Event
from onetomany.rules.segments import SegmentSet
from onetomany.rules.triggers import SEGMENT_EVENTS
from onetomany.store import Store, schema
from onetomany.store.segments import matching_contact_ids

log = logging.getLogger(__name__)

_CHUNK = 500


@attrs.frozen(kw_only=True)
class SegmentChange:
    """One contact crossing one segment's boundary, and the event that records it."""

    segment: str
    contact_id: str
    account_id: str | None
    change: Literal["entered", "left"]
    at: datetime
    event_id: str


def crossing_id(segment: str, contact_id: str, since: datetime, change: str) -> str:
    """The event id of a crossing: one per membership start (and its end)."""
    text = f"segment:{change}:{segment}:{contact_id}:{since.isoformat()}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def update_segment_members(
    store: Store, segments: SegmentSet, names: Sequence[str], *, now: datetime
) -> list[SegmentChange]:
    """Bring ``segment_members`` up to date for segments ``names``; returns the crossings.

    Members are computed before the write transaction; inside it, rows are inserted with
    ON CONFLICT DO NOTHING and deleted with RETURNING, and only the rows that really changed
    get an event, so two engines updating at once record each crossing once.
    """
    if not names:
        return []
    plan: dict[str, tuple[list[str], list[str]]] = {}
    for name in names:
        current = set(matching_contact_ids(store, segments.expr(name), now=now, segments=segments))
        stored = _stored_members(store, name)
        plan[name] = (sorted(current - stored), sorted(stored - current))
    touched = {c for entering, leaving in plan.values() for c in [*entering, *leaving]}
    if not touched:
        return []
    accounts = _account_ids(store, touched)
    changes: list[SegmentChange] = []
    with store._write() as conn:
        for name, (entering, leaving) in plan.items():
            changes += _enter(store, conn, name, entering, accounts, now)
            changes += _leave(conn, name, leaving, accounts, now)
        store._add_events(conn, [_event(c) for c in changes], now)
    return changes


def segment_members(store: Store, segment: str) -> dict[str, datetime]:
    """The stored members of ``segment``: contact id -> since when."""
    t = schema.segment_members
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(t.c.contact_id, t.c.since).where(t.c.segment == segment))
        return {row.contact_id: row.since for row in rows}


def _stored_members(store: Store, segment: str) -> set[str]:
    t = schema.segment_members
    with store.engine.connect() as conn:
        return set(conn.scalars(sa.select(t.c.contact_id).where(t.c.segment == segment)))


def _account_ids(store: Store, contact_ids: Iterable[str]) -> dict[str, str | None]:
    """Each existing contact's account (absent: the contact does not exist)."""
    wanted = sorted(set(contact_ids))
    t = schema.contacts
    found: dict[str, str | None] = {}
    with store.engine.connect() as conn:
        for start in range(0, len(wanted), _CHUNK):
            stmt = sa.select(t.c.id, t.c.account_id).where(
                t.c.id.in_(wanted[start : start + _CHUNK])
            )
            found.update({row.id: row.account_id for row in conn.execute(stmt)})
    return found


def _enter(
    store: Store,
    conn: Connection,
    segment: str,
    contact_ids: list[str],
    accounts: dict[str, str | None],
    now: datetime,
) -> list[SegmentChange]:
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
        SegmentChange(
            segment=segment,
            contact_id=contact,
            account_id=accounts.get(contact),
            change="entered",
            at=now,
            event_id=crossing_id(segment, contact, now, "entered"),
        )
        for contact in added
    ]


def _leave(
    conn: Connection,
    segment: str,
    contact_ids: list[str],
    accounts: dict[str, str | None],
    now: datetime,
) -> list[SegmentChange]:
    t = schema.segment_members
    changes = []
    for start in range(0, len(contact_ids), _CHUNK):
        chunk = contact_ids[start : start + _CHUNK]
        stmt = (
            sa.delete(t)
            .where(t.c.segment == segment, t.c.contact_id.in_(chunk))
            .returning(t.c.contact_id, t.c.since)
        )
        for row in conn.execute(stmt):
            if row.contact_id not in accounts:
                log.info(
                    "contact %r no longer exists: removed from segment %r without a "
                    "segment_left event",
                    row.contact_id,
                    segment,
                )
                continue
            changes.append(
                SegmentChange(
                    segment=segment,
                    contact_id=row.contact_id,
                    account_id=accounts[row.contact_id],
                    change="left",
                    at=now,
                    event_id=crossing_id(segment, row.contact_id, row.since, "left"),
                )
            )
    return sorted(changes, key=lambda c: c.contact_id)


def _event(change: SegmentChange) -> Event:
    return Event(
        id=change.event_id,
        name=SEGMENT_EVENTS["enter" if change.change == "entered" else "leave"],
        account_id=change.account_id,
        contact_id=change.contact_id,
        occurred_at=change.at,
        properties={"segment": change.segment},
    )
