"""``trigger = { rrule = "FREQ=MONTHLY;INTERVAL=3", anchor = "signed_up" }``: once per date.

Schedules live in the store (:mod:`onetomany.tracking.cadence`): each tick starts the new
ones, proposes the current occurrence of every due one (its UTC instant is the occurrence,
``at-<instant>``), and moves them on once the queued decisions are written.

Which subjects need a new schedule is read for everyone only in the first round. After that
a cursor per touch (:mod:`onetomany.triggers.rounds`, stored with the round's rows) says when
the last round ran and how far it had read the event log, and a round looks only at the
subjects with an anchor stored since, an anchor dated after the last round that has come
since, or a contact saved since (a newcomer, a new role).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from onetomany.model import Contact, Event
from onetomany.model.decisions import Check
from onetomany.program import Audience, Touch
from onetomany.rules.triggers import CadenceTrigger, Reporter
from onetomany.store import Store
from onetomany.store.queries.absence import changed_subjects, log_position
from onetomany.store.queries.schedules import Schedule, advance_schedules, schedule
from onetomany.tracking.cadence import (
    Firing,
    activity,
    due_firings,
    new_schedules,
    start_schedules,
)
from onetomany.triggers.base import Candidates, TickContext, Waiting, when
from onetomany.triggers.rounds import cursor_name, cursor_value, digest, last_round

#: Read a little before the last round: an anchor stored at its very instant.
_MARGIN = timedelta(minutes=1)


def pick(audience: Audience, contacts: list[Contact]) -> list[Contact]:
    return audience.pick(contacts)


class CadenceKind:
    name = "cadence"
    trigger = CadenceTrigger
    reads_events = False

    def read(self, body: Mapping[str, Any], path: str, reporter: Reporter) -> CadenceTrigger | None:
        return CadenceTrigger.read(body, path, reporter)

    def candidates(
        self,
        context: TickContext,
        touches: Sequence[tuple[Touch, CadenceTrigger]],
        now: datetime,
    ) -> Candidates:
        store = context.store
        decisions = []
        fired: list[Firing] = []
        cursors: list[tuple[str, str, str]] = []
        # Read before the queries below: an event stored meanwhile is after it, read again.
        position = log_position(store) if not context.dry else None
        for touch, trigger in touches:
            unsaved: list[tuple[Schedule, str | None]] = []
            if position is None:
                fresh = new_schedules(store, touch, trigger, now=now, choose=pick)
                zones = store.get_contacts(s.contact_id for s in fresh)
                unsaved = [(s, zones[s.contact_id].timezone) for s in fresh]
            else:
                # Which subjects gain a schedule depends on the anchor, its subject and the
                # audience's roles only, not on the touch's segment or re-entry rule.
                valid_for = digest(trigger, touch.audience.roles)
                name = cursor_name(self.name, context.program.name, touch)
                among = _changed_subjects(store, trigger, store.get_cursor(name), valid_for, now)
                start_schedules(store, touch, trigger, now=now, choose=pick, among=among)
                cursors.append((touch.name, name, cursor_value(valid_for, now, position)))
            due = due_firings(store, touch, trigger, now=now, unsaved=unsaved)
            fired += [firing for firing, _ in due]
            firing = [(f, zone) for f, zone in due if f.at is not None]
            contacts = store.get_contacts(f.contact_id for f, _ in firing)
            # A contact gone from the store is not proposed; its schedule just moves on.
            present = [(f, zone) for f, zone in firing if f.contact_id in contacts]
            found: list[tuple[Contact, str, Check, Event | None]] = [
                (contacts[f.contact_id], f.occurrence, _check(f, zone), None) for f, zone in present
            ]
            payload = functools.partial(
                _payload, store, [contacts[f.contact_id] for f, _ in present], present, now
            )
            decisions += context.settle_segment(self.name, touch, found, now=now, payload=payload)
        return Candidates(
            decisions=decisions,
            after_queued=functools.partial(
                advance_schedules, store, [f.move for f in fired], now=now
            ),
            cursors=tuple(cursors),
        )

    def waiting(
        self,
        context: TickContext,
        touch: Touch,
        trigger: CadenceTrigger,
        contact: Contact,
        now: datetime,
    ) -> Waiting:
        store = context.store
        row = schedule(store, touch.name, contact.id)
        if row is None:
            fresh = new_schedules(store, touch, trigger, now=now, choose=pick)
            row = next((s for s in fresh if s.contact_id == contact.id), None)
        if row is None:
            subject = contact.account_id if trigger.by == "account" else contact.id
            anchor = (
                store.latest_events(trigger.anchor, by=trigger.by, ids=[subject], until=now).get(
                    subject
                )
                if subject
                else None
            )
            if anchor is None:
                why = f"no anchor event {trigger.anchor!r} for the {trigger.by} yet"
                return Waiting(
                    checks=[Check.failed("trigger", why)],
                    due=f"after a {trigger.anchor!r} event, by the rule",
                )
            roles = ", ".join(touch.audience.roles) or "the first contact"
            why = (
                f"anchor {anchor.name} {anchor.id} at {when(anchor.occurred_at)}, but the "
                f"audience ({roles}) does not pick {contact.id}"
            )
            return Waiting(checks=[Check.failed("audience", why, anchor_id=anchor.id)])
        inputs = {
            "anchor_id": row.anchor_id,
            "next_at": row.next_at.isoformat() if row.next_at else None,
            "fired": row.fired,
        }
        head = f"anchored on {row.anchor_id} at {when(row.anchor_at)}, {row.fired} sent so far"
        if row.next_at is None:
            why = f"{head}: the cadence has no further occurrence"
            return Waiting(checks=[Check.failed("trigger", why, **inputs)])
        local = row.next_at.astimezone(ZoneInfo(contact.timezone))
        shown = f"{local:%Y-%m-%d %H:%M} {contact.timezone}"
        why = f"{head}: next occurrence at {shown}"
        return Waiting(
            checks=[Check.failed("trigger", why, **inputs)],
            due_at=row.next_at,
            due=f"the cadence's next occurrence ({shown})",
        )


def _changed_subjects(
    store: Store, trigger: CadenceTrigger, stored: str | None, valid_for: str, now: datetime
) -> set[str] | None:
    """The subjects that may have gained a schedule since the round that stored ``stored``
    (None: every subject, without a usable cursor): an anchor stored since, one dated after
    that round that has come since, or a contact saved since (a newcomer, a new role)."""
    last = last_round(stored, valid_for, now)
    if last is None:
        return None
    then: datetime = last["at"]
    return changed_subjects(
        store,
        event=trigger.anchor,
        by=trigger.by,
        crossed_after=then - _MARGIN,
        crossed_until=now,
        stored_after=last["log"],
        changed_since=then,
    )


def _payload(
    store: Store,
    contacts: list[Contact],
    firings: list[tuple[Firing, str]],
    now: datetime,
    index: int,
) -> dict[str, Any]:
    """What the ``index``-th firing's row carries: the occurrence, and the activity since
    the previous one (for a recap)."""
    firing, zone = firings[index]
    since = firing.since or firing.anchor_at
    return {
        "cadence": firing.context(zone),
        "activity": activity(store, contacts[index], since=since, until=firing.at or now),
    }


def _check(firing: Firing, zone: str) -> Check:
    context = firing.context(zone)
    return Check.passed(
        "trigger",
        f"occurrence {context['number']} at {context['local']}, anchored on {firing.anchor_id}",
        at=context["at"],
        number=context["number"],
        anchor_id=firing.anchor_id,
        due=firing.due.isoformat(),
    )


KIND = CadenceKind()
