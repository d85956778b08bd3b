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
from collections.abc import Sequence
from datetime import datetime
from typing import Literal

import attrs

from onetomany.model import Event
from onetomany.rules.segments import SegmentSet
from onetomany.rules.triggers import SEGMENT_EVENTS
from onetomany.store import Store
from onetomany.store.queries.contacts import account_ids
from onetomany.store.queries.segment_members import MemberChange, member_ids, move_members
from onetomany.store.segments import matching_contact_ids

log = logging.getLogger(__name__)


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
    get an event, so two engines updating at once record each crossing once
    (:func:`~onetomany.store.queries.segment_members.move_members`).
    """
    if not names:
        return []
    plan: dict[str, tuple[list[str], list[str]]] = {}
    for name in names:
        current = set(matching_contact_ids(store, segments.expr(name), now=now, segments=segments))
        stored = member_ids(store, name)
        plan[name] = (sorted(current - stored), sorted(stored - current))
    touched = {c for entering, leaving in plan.values() for c in [*entering, *leaving]}
    if not touched:
        return []
    accounts = account_ids(store, touched)
    changes: list[SegmentChange] = []

    def record(moved: list[MemberChange]) -> list[Event]:
        changes.extend(c for m in moved if (c := _crossing(m, accounts, now)) is not None)
        return [_event(c) for c in changes]

    move_members(store, plan, now=now, events=record)
    return changes


def _crossing(
    moved: MemberChange, accounts: dict[str, str | None], now: datetime
) -> SegmentChange | None:
    """The crossing a moved member row records; None for a contact that no longer exists."""
    if moved.change == "left" and moved.contact_id not in accounts:
        log.info(
            "contact %r no longer exists: removed from segment %r without a segment_left event",
            moved.contact_id,
            moved.segment,
        )
        return None
    return SegmentChange(
        segment=moved.segment,
        contact_id=moved.contact_id,
        account_id=accounts.get(moved.contact_id),
        change=moved.change,
        at=now,
        event_id=crossing_id(moved.segment, moved.contact_id, moved.since, moved.change),
    )


def _event(change: SegmentChange) -> Event:
    return Event(
        id=change.event_id,
        name=SEGMENT_EVENTS["enter" if change.change == "entered" else "leave"],
        account_id=change.account_id,
        contact_id=change.contact_id,
        occurred_at=change.at,
        properties={"segment": change.segment},
    )
