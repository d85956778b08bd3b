"""What the event-driven kinds (event, segment, stage) share: reacting to the event log.

Each new stored event that a touch's trigger matches proposes the touch to the contacts its
audience picks for the event (then its segment). The occurrence is the event's id.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs

from onetomany.model import Contact, Event
from onetomany.model.decisions import Check
from onetomany.program import Touch
from onetomany.rules.triggers import EventDriven, Reporter
from onetomany.store.queries.events import latest_events_of
from onetomany.store.store import DELIVERY_EVENT_NAMES
from onetomany.triggers.base import Candidates, TickContext, Waiting, when

#: What a kind adds about the state its events come from (a segment's membership, a
#: journey's stage), for :meth:`EventDrivenKind.waiting`.
StateView = Callable[[TickContext, Any, Contact, datetime], list[Check]]


@attrs.frozen(kw_only=True)
class EventDrivenKind:
    """A kind the event log drives; its trigger class says which events it matches."""

    name: str
    trigger: type[EventDriven]
    reads_events: bool = True
    state: StateView | None = None

    def read(self, body: Mapping[str, Any], path: str, reporter: Reporter) -> EventDriven | None:
        return self.trigger.read(body, path, reporter)

    def candidates(
        self, context: TickContext, touches: Sequence[tuple[Touch, Any]], now: datetime
    ) -> Candidates:
        decisions = []
        for event in context.events:
            for touch, trigger in touches:
                if not _fires(trigger, touch, event):
                    continue
                check = Check.passed(
                    "trigger",
                    f"{event.name} {event.id} at {when(event.occurred_at)}",
                    event=event.name,
                    event_id=event.id,
                    occurred_at=event.occurred_at.isoformat(),
                )
                found = [(c, event.id, check, event) for c in context.addressees(touch, event)]
                decisions += context.settle_segment(self.name, touch, found, now=now)
        return Candidates(decisions=decisions)

    def waiting(
        self, context: TickContext, touch: Touch, trigger: Any, contact: Contact, now: datetime
    ) -> Waiting:
        state = self.state(context, trigger, contact, now) if self.state else []
        recent = latest_events_of(context.store, contact, [trigger.event_name], limit=200)
        latest = next((e for _, e in recent if _fires(trigger, touch, e)), None)
        again = f"at the next {trigger.event_name!r} event that matches"
        if latest is None:
            owner = f" or account {contact.account_id!r}" if contact.account_id else ""
            why = f"nothing has happened {trigger.describe()} for {contact.id!r}{owner} yet"
            check = Check.failed("trigger", why, event=trigger.event_name)
            return Waiting(checks=[check, *state], due=again)
        head = f"latest {latest.name} {latest.id} at {when(latest.occurred_at)}"
        reached = [c.id for c in context.addressees(touch, latest)]
        if contact.id not in reached:
            why = f"{head} went to {', '.join(reached) or 'nobody'}, not {contact.id}"
            check = Check.failed("audience", why, event_id=latest.id, reached=reached)
        else:
            why = f"{head} was handled by an earlier tick (its decision is in the history)"
            check = Check.info("trigger", why, event_id=latest.id)
        return Waiting(checks=[check, *state], due=again)


def _fires(trigger: EventDriven, touch: Touch, event: Event) -> bool:
    own = event.properties.get("touch") == touch.name
    # A touch reacting to its own deliveries would feed itself forever.
    return trigger.matches(event) and not (own and event.name in DELIVERY_EVENT_NAMES)
