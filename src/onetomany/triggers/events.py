"""What the event-driven kinds (event, segment, stage) share: reacting to the event log.

Each new stored event that a touch's trigger matches proposes the touch to the contacts its
audience picks for the event (then its segment). The occurrence is the event's id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs

from onetomany.model.decisions import Check
from onetomany.program import Touch
from onetomany.rules.triggers import EventDriven, Reporter
from onetomany.store.store import DELIVERY_EVENT_NAMES
from onetomany.triggers.base import Candidates, TickContext


@attrs.frozen(kw_only=True)
class EventDrivenKind:
    """A kind the event log drives; its trigger class says which events it matches."""

    name: str
    trigger: type[EventDriven]
    reads_events: bool = True

    def read(self, body: Mapping[str, Any], path: str, reporter: Reporter) -> EventDriven | None:
        return self.trigger.read(body, path, reporter)

    def candidates(
        self, context: TickContext, touches: Sequence[tuple[Touch, Any]], now: datetime
    ) -> Candidates:
        decisions = []
        for event in context.events:
            for touch, trigger in touches:
                if not trigger.matches(event):
                    continue
                own = event.properties.get("touch") == touch.name
                if own and event.name in DELIVERY_EVENT_NAMES:
                    continue  # a touch reacting to its own deliveries would feed itself forever
                check = Check.passed(
                    "trigger",
                    f"{event.name} {event.id} at {event.occurred_at.isoformat()}",
                    event=event.name,
                    event_id=event.id,
                    occurred_at=event.occurred_at.isoformat(),
                )
                found = [(c, event.id, check, event) for c in context.addressees(touch, event)]
                decisions += context.settle_segment(self.name, touch, found, now=now)
        return Candidates(decisions=decisions)
