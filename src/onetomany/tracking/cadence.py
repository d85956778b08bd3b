"""Cadence schedules: when each recipient of a cadence touch is next due, kept in the store.

The ``schedules`` table holds one row per (touch, contact): the anchor event the rule counts
from, ``next_at`` (the next occurrence, NULL once the rule is exhausted) and how many
occurrences have fired. A tick does two set-based steps per cadence touch, so its cost grows
with the rows that are new or due, not with the population:

1. :func:`start_schedules`: one anti-join finds the accounts (or contacts) that have the
   anchor event but no schedule for the touch yet; their recipients are picked by the touch's
   audience, and only for those new rows is the first occurrence computed, in Python. After
   the first round it looks only at the subjects that changed since the last
   (:mod:`onetomany.triggers.cadence`).
2. :func:`due_firings`: the rows whose ``next_at`` has come (index ``ix_schedules_due``),
   each with the occurrence to send now and the next one after now. The engine queues them;
   :func:`~onetomany.store.queries.schedules.advance_schedules` then moves ``next_at`` on.
   Queueing first makes a crash in between harmless: the next tick fires the same
   occurrences again, with the same idempotency keys, and the outbox keeps the first.

**Missed occurrences.** When several occurrences passed since a row was due (the engine was
down, or the anchor arrived late), only the latest one is sent, never a flood: it is still
the current one. The last occurrence of a finished rule is current for as long as the gap
before it; after that it is stale and nothing is sent (a five-day onboarding cadence added
to a program months later does not greet old accounts with its fifth day).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import attrs

from onetomany.model import Contact
from onetomany.program import Audience, Touch
from onetomany.rules.recurrence import Recurrence
from onetomany.rules.triggers import ENGINE_EVENT_NAMES, CadenceTrigger
from onetomany.store import Store
from onetomany.store.queries.contacts import contacts_of_accounts
from onetomany.store.queries.events import events_between
from onetomany.store.queries.schedules import (
    Schedule,
    ScheduleMove,
    add_schedules,
    due_schedules,
    unscheduled_anchors,
)

#: Picks one account's recipients by an audience (the engine's :func:`~onetomany.engine.pick`).
Chooser = Callable[[Audience, list[Contact]], list[Contact]]


@attrs.frozen(kw_only=True)
class Firing:
    """One due schedule row: what to send now (``at``; None if nothing) and when next."""

    touch: str
    contact_id: str
    anchor_id: str
    anchor_at: datetime
    #: ``next_at`` as read; advancing is conditional on it, so two ticks cannot both advance.
    due: datetime
    at: datetime | None
    next_at: datetime | None
    #: Occurrences fired before this one.
    fired: int
    #: The occurrence before ``at`` (or the anchor): a recap covers what happened since.
    since: datetime | None = None

    @property
    def move(self) -> ScheduleMove:
        """How its row moves on once its touch is queued (:func:`advance_schedules
        <onetomany.store.queries.schedules.advance_schedules>`)."""
        return ScheduleMove(
            touch=self.touch,
            contact_id=self.contact_id,
            due=self.due,
            next_at=self.next_at,
            fired=self.at is not None,
        )

    @property
    def occurrence(self) -> str:
        """The idempotency occurrence: the occurrence's UTC instant."""
        assert self.at is not None
        return f"at-{self.at:%Y-%m-%dT%H:%M:%SZ}"

    def context(self, zone: str) -> dict[str, Any]:
        """What the outbox payload (and so the template) sees as ``cadence``."""
        assert self.at is not None
        return {
            "at": self.at.isoformat(),
            "local": self.at.astimezone(ZoneInfo(zone)).isoformat(),
            "number": self.fired + 1,
            "since": (self.since or self.anchor_at).astimezone(UTC).isoformat(),
            "anchor_id": self.anchor_id,
            "anchor_at": self.anchor_at.isoformat(),
        }


def plan(
    recurrence: Recurrence, start: datetime, zone: ZoneInfo, *, due: datetime, now: datetime
) -> tuple[datetime | None, datetime | None, datetime]:
    """(the occurrence to send now, or None; the first occurrence after ``now``, or None;
    the occurrence before the one to send, or ``start``).

    ``start`` is the rule's start (:meth:`CadenceTrigger.start`). The occurrence to send is
    the latest one in ``[due, now]``: earlier missed ones are skipped. The last occurrence of
    an exhausted rule is dropped once it is older than the gap before it.
    """
    previous = start
    before = start
    send: datetime | None = None
    gap = timedelta(0)
    for at in recurrence.occurrences(start, zone):
        if at > now:
            return send, at, before
        if at >= due:
            send, gap, before = at, at - previous, previous
        previous = at
    if send is not None and now - send >= gap:
        send = None  # stale: the rule is over and its last occurrence long past
    return send, None, before


def start_schedules(
    store: Store,
    touch: Touch,
    trigger: CadenceTrigger,
    *,
    now: datetime,
    choose: Chooser,
    from_now: bool = False,
    among: Collection[str] | None = None,
) -> int:
    """Add schedule rows for the recipients whose subject has the anchor but no schedule yet
    (:func:`new_schedules`). Returns the rows added."""
    schedules = new_schedules(
        store, touch, trigger, now=now, choose=choose, from_now=from_now, among=among
    )
    if schedules:
        add_schedules(store, schedules, now=now)
    return len(schedules)


def new_schedules(
    store: Store,
    touch: Touch,
    trigger: CadenceTrigger,
    *,
    now: datetime,
    choose: Chooser,
    from_now: bool = False,
    among: Collection[str] | None = None,
) -> list[Schedule]:
    """The schedule rows the recipients whose subject has the anchor but no schedule yet get.

    With ``by = "account"`` the recipients are picked among the account's contacts when its
    schedule starts; with ``by = "contact"`` the recipient is the contact (if the audience's
    roles admit it). Only subjects with a contact the audience admits are selected, so a
    subject nobody can receive is looked at again when such a contact appears, and each
    selected subject gains rows.

    With ``from_now`` (adopting a program on stored history,
    :meth:`~onetomany.engine.Engine.start_from_now`) a row starts at the rule's first
    occurrence after ``now``: the occurrences before it are history, not missed, so none is
    caught up (a rule already over gets a row that never fires).

    ``among`` limits the subjects looked at (a steady round's, :mod:`onetomany.triggers.cadence`).
    """
    anchors = unscheduled_anchors(
        store,
        touch.name,
        anchor=trigger.anchor,
        by=trigger.by,
        roles=touch.audience.roles,
        now=now,
        among=among,
    )
    if not anchors:
        return []
    if trigger.by == "account":
        members = contacts_of_accounts(store, anchors)
    else:
        found = store.get_contacts(anchors)
        members = {cid: [c] for cid, c in found.items()}
    recurrence = trigger.recurrence
    schedules = []
    for subject, (anchor_id, anchor_at) in anchors.items():
        for contact in choose(touch.audience, members.get(subject, [])):
            start = trigger.start(anchor_at, contact.timezone)
            occurrences = recurrence.occurrences(start, ZoneInfo(contact.timezone))
            first = next((at for at in occurrences if not from_now or at > now), None)
            schedules.append(
                Schedule(
                    touch=touch.name,
                    contact_id=contact.id,
                    anchor_id=anchor_id,
                    anchor_at=anchor_at,
                    next_at=first,
                    fired=0,
                )
            )
    return schedules


def due_firings(
    store: Store,
    touch: Touch,
    trigger: CadenceTrigger,
    *,
    now: datetime,
    unsaved: Sequence[tuple[Schedule, str | None]] = (),
) -> list[tuple[Firing, str]]:
    """The rows of ``touch`` due at ``now``, planned, each with its contact's timezone.

    ``unsaved`` are rows not in the store (a dry run's new schedules, with their contacts'
    timezones), taken as if they were. The engine queues the firings, then moves their rows
    on with :func:`advance_schedules <onetomany.store.queries.schedules.advance_schedules>`
    (each firing's :attr:`Firing.move`).
    """
    recurrence = trigger.recurrence
    firings = []
    stored = due_schedules(store, touch.name, now=now)
    extra = [(row, zone) for row, zone in unsaved if row.next_at is not None and row.next_at <= now]
    rows = (
        sorted([*stored, *extra], key=lambda r: (r[0].next_at, r[0].contact_id))
        if extra
        else stored
    )
    for row, timezone in rows:
        zone = timezone or "UTC"  # a contact gone from the store: its row just advances
        assert row.next_at is not None  # a due row has one
        start = trigger.start(row.anchor_at, zone)
        at, after, since = plan(recurrence, start, ZoneInfo(zone), due=row.next_at, now=now)
        firing = Firing(
            touch=touch.name,
            contact_id=row.contact_id,
            anchor_id=row.anchor_id,
            anchor_at=row.anchor_at,
            due=row.next_at,
            at=at,
            next_at=after,
            fired=row.fired,
            since=since,
        )
        firings.append((firing, zone))
    return firings


#: At most this many events are handed to a recap's template.
ACTIVITY_LIMIT = 50


def activity(
    store: Store, contact: Contact, *, since: datetime, until: datetime
) -> list[dict[str, Any]]:
    """The product events of ``contact``'s account (or the contact's own) in ``(since, until]``.

    A cadence's template sees them as ``activity``: the day recap lists what the team did
    since the previous recap. Events the program itself writes
    (:data:`~onetomany.rules.triggers.ENGINE_EVENT_NAMES`: deliveries, opens, stage and segment
    moves, tier changes) are left out: they are not something the customer did. Oldest
    first, at most :data:`ACTIVITY_LIMIT`.
    """
    return [
        {
            "id": row["id"],
            "name": row["name"],
            "occurred_at": row["occurred_at"].isoformat(),
            "properties": dict(row["properties"] or {}),
        }
        for row in events_between(
            store,
            contact,
            since=since,
            until=until,
            leave_out=ENGINE_EVENT_NAMES,
            limit=ACTIVITY_LIMIT,
        )
    ]
