"""Cadence schedules: when each recipient of a cadence touch is next due, kept in the store.

The ``schedules`` table holds one row per (touch, contact): the anchor event the rule counts
from, ``next_at`` (the next occurrence, NULL once the rule is exhausted) and how many
occurrences have fired. A tick does two set-based steps per cadence touch, so its cost grows
with the rows that are new or due, not with the population:

1. :func:`start_schedules`: one anti-join finds the accounts (or contacts) that have the
   anchor event but no schedule for the touch yet; their recipients are picked by the touch's
   audience, and only for those new rows is the first occurrence computed, in Python.
2. :func:`due_firings`: the rows whose ``next_at`` has come (index ``ix_schedules_due``),
   each with the occurrence to send now and the next one after now. The engine queues them;
   :func:`advance_schedules` then moves ``next_at`` on. Queueing first makes a crash in
   between harmless: the next tick fires the same occurrences again, with the same
   idempotency keys, and the outbox keeps the first.

**Missed occurrences.** When several occurrences passed since a row was due (the engine was
down, or the anchor arrived late), only the latest one is sent, never a flood: it is still
the current one. The last occurrence of a finished rule is current for as long as the gap
before it; after that it is stale and nothing is sent (a five-day onboarding cadence added
to a program months later does not greet old accounts with its fifth day).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import attrs
import sqlalchemy as sa

from onetomany.model import Contact
from onetomany.program import Audience, Touch
from onetomany.rules.recurrence import Recurrence
from onetomany.rules.triggers import ENGINE_EVENT_NAMES, CadenceTrigger
from onetomany.store import Store, schema

_CHUNK = 500

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
) -> int:
    """Add schedule rows for the recipients whose subject has the anchor but no schedule yet.

    With ``by = "account"`` the recipients are picked among the account's contacts when its
    schedule starts; with ``by = "contact"`` the recipient is the contact (if the audience's
    roles admit it). Only subjects with a contact the audience admits are selected, so a
    subject nobody can receive is looked at again when such a contact appears, and each
    selected subject gains rows. Returns the rows added.

    With ``from_now`` (adopting a program on stored history,
    :meth:`~onetomany.engine.Engine.start_from_now`) a row starts at the rule's first
    occurrence after ``now``: the occurrences before it are history, not missed, so none is
    caught up (a rule already over gets a row that never fires).
    """
    anchors = _new_anchors(store, touch, trigger, now=now)
    if not anchors:
        return 0
    if trigger.by == "account":
        members = _contacts_of_accounts(store, anchors)
    else:
        found = store.get_contacts(anchors)
        members = {cid: [c] for cid, c in found.items()}
    recurrence = trigger.recurrence
    rows = []
    for subject, (anchor_id, anchor_at) in anchors.items():
        for contact in choose(touch.audience, members.get(subject, [])):
            start = trigger.start(anchor_at, contact.timezone)
            occurrences = recurrence.occurrences(start, ZoneInfo(contact.timezone))
            first = next((at for at in occurrences if not from_now or at > now), None)
            rows.append(
                {
                    "touch": touch.name,
                    "contact_id": contact.id,
                    "anchor_id": anchor_id,
                    "anchor_at": anchor_at,
                    "next_at": first,
                    "fired": 0,
                    "updated_at": now,
                }
            )
    if not rows:
        return 0
    t = schema.schedules
    with store._write() as conn:
        stmt = store._insert(t).on_conflict_do_nothing(index_elements=[t.c.touch, t.c.contact_id])
        conn.execute(stmt, rows)
    return len(rows)


def _new_anchors(
    store: Store, touch: Touch, trigger: CadenceTrigger, *, now: datetime
) -> dict[str, tuple[str, datetime]]:
    """The first anchor event (id, instant) of each subject with no schedule for ``touch``."""
    e, s, c = schema.events, schema.schedules, schema.contacts
    if trigger.by == "account":
        subject = e.c.account_id
        scheduled = (
            sa.select(1)
            .select_from(s.join(c, c.c.id == s.c.contact_id))
            .where(s.c.touch == touch.name, c.c.account_id == subject)
        )
        eligible = sa.select(1).where(c.c.account_id == subject)
    else:
        subject = e.c.contact_id
        scheduled = sa.select(1).where(s.c.touch == touch.name, s.c.contact_id == subject)
        eligible = sa.select(1).where(c.c.id == subject)
    if touch.audience.roles:
        eligible = eligible.where(c.c.role.in_(touch.audience.roles))
    query = (
        sa.select(subject.label("subject"), e.c.id, e.c.occurred_at)
        .where(e.c.name == trigger.anchor, subject.is_not(None), e.c.occurred_at <= now)
        .where(~sa.exists(scheduled), sa.exists(eligible))
        .order_by(e.c.occurred_at.desc(), e.c.seq.desc())
    )
    with store.engine.connect() as conn:
        # Latest first, so the last one written per subject is its first anchor.
        return {row.subject: (row.id, row.occurred_at) for row in conn.execute(query)}


def _contacts_of_accounts(store: Store, account_ids: Iterable[str]) -> dict[str, list[Contact]]:
    """Each account's contacts, in id order."""
    wanted = sorted(set(account_ids))
    c = schema.contacts
    ids: list[str] = []
    with store.engine.connect() as conn:
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            ids += conn.scalars(sa.select(c.c.id).where(c.c.account_id.in_(chunk)))
    grouped: dict[str, list[Contact]] = {}
    for contact in sorted(store.get_contacts(ids).values(), key=lambda x: x.id):
        if contact.account_id is not None:
            grouped.setdefault(contact.account_id, []).append(contact)
    return grouped


def due_firings(
    store: Store, touch: Touch, trigger: CadenceTrigger, *, now: datetime
) -> list[tuple[Firing, str]]:
    """The rows of ``touch`` due at ``now``, planned, each with its contact's timezone."""
    s, c = schema.schedules, schema.contacts
    query = (
        sa.select(s, c.c.timezone)
        .select_from(s.outerjoin(c, c.c.id == s.c.contact_id))
        .where(s.c.touch == touch.name, s.c.next_at <= now)
        .order_by(s.c.next_at, s.c.contact_id)
    )
    with store.engine.connect() as conn:
        rows = list(conn.execute(query))
    recurrence = trigger.recurrence
    firings = []
    for row in rows:
        zone = row.timezone or "UTC"  # a contact gone from the store: its row just advances
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


def advance_schedules(store: Store, firings: Sequence[Firing], *, now: datetime) -> int:
    """Move each fired row's ``next_at`` on, unless another tick already did; returns how many.

    Call it after the firings' touches are queued.
    """
    if not firings:
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
    params = [
        {
            "b_touch": f.touch,
            "b_contact": f.contact_id,
            "b_due": f.due,
            "b_next": f.next_at,
            "b_fired": 1 if f.at is not None else 0,
            "b_now": now,
        }
        for f in firings
    ]
    with store._write() as conn:
        result = conn.execute(stmt, params)
    return max(result.rowcount, 0)


def scheduled_next(store: Store, touch: str, contact_id: str) -> datetime | None:
    """When ``touch`` is next due for ``contact_id``; None if it has no schedule or is done."""
    s = schema.schedules
    with store.engine.connect() as conn:
        value: datetime | None = conn.scalar(
            sa.select(s.c.next_at).where(s.c.touch == touch, s.c.contact_id == contact_id)
        )
    return value


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
    e = schema.events
    subject = (
        e.c.account_id == contact.account_id if contact.account_id else e.c.contact_id == contact.id
    )
    query = (
        sa.select(e.c.id, e.c.name, e.c.occurred_at, e.c.properties)
        .where(subject, e.c.occurred_at > since, e.c.occurred_at <= until)
        .where(e.c.name.not_in(sorted(ENGINE_EVENT_NAMES)))
        .order_by(e.c.occurred_at, e.c.seq)
        .limit(ACTIVITY_LIMIT)
    )
    with store.engine.connect() as conn:
        return [
            {
                "id": row.id,
                "name": row.name,
                "occurred_at": row.occurred_at.isoformat(),
                "properties": dict(row.properties or {}),
            }
            for row in conn.execute(query)
        ]
