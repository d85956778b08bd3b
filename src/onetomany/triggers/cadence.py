"""``trigger = { rrule = "FREQ=MONTHLY;INTERVAL=3", anchor = "signed_up" }``: once per date.

Schedules live in the store (:mod:`onetomany.tracking.cadence`): each tick starts the new
ones, proposes the current occurrence of every due one (its UTC instant is the occurrence,
``at-<instant>``), and moves them on once the queued decisions are written.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from onetomany.model import Contact, Event
from onetomany.model.decisions import Check
from onetomany.program import Audience, Touch
from onetomany.rules.triggers import CadenceTrigger, Reporter
from onetomany.store import Store
from onetomany.store.queries.schedules import advance_schedules
from onetomany.tracking.cadence import Firing, activity, due_firings, start_schedules
from onetomany.triggers.base import Candidates, TickContext


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
        for touch, trigger in touches:
            start_schedules(store, touch, trigger, now=now, choose=pick)
            due = due_firings(store, touch, trigger, now=now)
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
