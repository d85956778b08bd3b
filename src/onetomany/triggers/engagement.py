"""``trigger = { not_opened = "welcome", days = 3 }``: one step of an escalation ladder.

The sent messages nobody engaged with in time are found in SQL
(:mod:`onetomany.tracking.engagement`); each proposes the step to the contact the message
went to, once per message (``after-<outbox id>``), carrying its ladder run in the payload.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from onetomany.model import Contact, Event
from onetomany.model.decisions import Check
from onetomany.program import Touch
from onetomany.rules.triggers import EngagementTrigger, Reporter
from onetomany.tracking.engagement import occurrence, unengaged
from onetomany.triggers.base import Candidates, TickContext


class EngagementKind:
    name = "engagement"
    trigger = EngagementTrigger
    reads_events = False

    def read(
        self, body: Mapping[str, Any], path: str, reporter: Reporter
    ) -> EngagementTrigger | None:
        return EngagementTrigger.read(body, path, reporter)

    def candidates(
        self,
        context: TickContext,
        touches: Sequence[tuple[Touch, EngagementTrigger]],
        now: datetime,
    ) -> Candidates:
        store = context.store
        decisions = []
        for touch, trigger in touches:
            due = unengaged(store, context.program.name, touch, trigger, now=now)
            contacts = store.get_contacts(c.row.contact_id for c in due if c.row.contact_id)
            present = [c for c in due if c.row.contact_id in contacts]
            payloads = [c.payload(trigger) for c in present]
            found: list[tuple[Contact, str, Check, Event | None]] = [
                (
                    contacts[c.row.contact_id or ""],
                    occurrence(c.row.id),
                    Check.passed(
                        "trigger",
                        payloads[i]["escalation"]["reason"],
                        previous_row=c.row.id,
                        previous_key=c.row.idempotency_key,
                        sent_at=c.sent_at.isoformat(),
                    ),
                    None,
                )
                for i, c in enumerate(present)
            ]
            decisions += context.settle_segment(
                self.name, touch, found, now=now, payload=payloads.__getitem__
            )
        return Candidates(decisions=decisions)


KIND = EngagementKind()
