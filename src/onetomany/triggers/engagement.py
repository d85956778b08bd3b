"""``trigger = { not_opened = "welcome", days = 3 }``: one step of an escalation ladder.

The sent messages nobody engaged with in time are found in SQL
(:mod:`onetomany.tracking.engagement`); each proposes the step to the contact the message
went to, once per message (``after-<outbox id>``), carrying its ladder run in the payload.

A round reads every sent row of the watched touch only the first time. After that a cursor
per touch (:mod:`onetomany.triggers.rounds`, stored with the round's rows) says when the last
round ran and the newest delivery it had seen, and a round asks only about the rows that may
have become due since (:func:`~onetomany.store.queries.engagement.changed_sent_rows`): sent
``days`` before a moment between the two rounds, sent since, or whose contact was saved since.
A segment that counts events, and the ``stage`` and ``period`` re-entry rules, keep the full
read each round, as for an absence touch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from onetomany.model import Contact, Event
from onetomany.model.decisions import Check
from onetomany.program import Touch
from onetomany.rules.triggers import EngagementTrigger, Reporter
from onetomany.store import Store
from onetomany.store.queries.absence import log_position
from onetomany.store.queries.engagement import changed_sent_rows, last_delivery
from onetomany.store.queries.outbox import touch_rows
from onetomany.tracking.engagement import occurrence, unengaged
from onetomany.triggers.base import Candidates, TickContext, Waiting, when
from onetomany.triggers.rounds import cursor_name, cursor_value, last_round, shape

#: Read a little either side of the threshold.
_MARGIN = timedelta(minutes=1)


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
        cursors: list[tuple[str, str, str]] = []
        # Read before the queries below: whatever is stored meanwhile is after them.
        position = None if context.dry else (log_position(store), last_delivery(store))
        for touch, trigger in touches:
            among: set[int] | None = None
            valid_for = shape(context.segments, touch, trigger)
            if position is not None and valid_for is not None:
                name = cursor_name(self.name, context.program.name, touch)
                last = last_round(store.get_cursor(name), valid_for, now)
                among = _changed_rows(store, context.program.name, trigger, last, now)
                log, delivery = position
                cursors.append(
                    (touch.name, name, cursor_value(valid_for, now, log, delivery=delivery))
                )
            if among is not None and not among:
                continue
            due = unengaged(store, context.program.name, touch, trigger, now=now, among=among)
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
        return Candidates(decisions=decisions, cursors=tuple(cursors))

    def waiting(
        self,
        context: TickContext,
        touch: Touch,
        trigger: EngagementTrigger,
        contact: Contact,
        now: datetime,
    ) -> Waiting:
        previous = trigger.touch
        sent = [
            r
            for r in touch_rows(context.store, previous, contact.id, limit=20)
            if r["status"] == "sent"
        ]
        what = "opened" if trigger.outcome == "not_opened" else "clicked"
        if not sent:
            why = f"{previous!r} was never sent to {contact.id}"
            later = f"{trigger.days} days after {previous!r} is sent"
            return Waiting(checks=[Check.failed("trigger", why)], due=later)
        row = sent[0]  # the newest sent message is the one a new escalation would follow
        sent_at: datetime = row["updated_at"]  # a sent row's last update is its delivery
        due = sent_at + timedelta(days=trigger.days)
        inputs = {"previous_row": row["id"], "previous_key": row["idempotency_key"]}
        head = f"{previous!r} row #{row['id']} was sent at {when(sent_at)}"
        if due > now:
            why = f"{head}, not due before {when(due)}: escalates then unless {what} first"
            return Waiting(
                checks=[Check.failed("trigger", why, due_at=due.isoformat(), **inputs)],
                due_at=due,
                due=f"{trigger.days} days after row #{row['id']}, unless {what}",
            )
        why = f"{head}, and it or an earlier step of its ladder was {what} (or it escalated)"
        return Waiting(checks=[Check.failed("trigger", why, **inputs)])


def _changed_rows(
    store: Store,
    program: str,
    trigger: EngagementTrigger,
    last: Mapping[str, Any] | None,
    now: datetime,
) -> set[int] | None:
    """The watched rows that may have become due since the ``last`` round; None (all of
    them) without one."""
    if last is None or "delivery" not in last:
        return None
    then: datetime = last["at"]
    days = timedelta(days=trigger.days)
    return changed_sent_rows(
        store,
        program=program,
        touch=trigger.touch,
        sent_after=then - days - _MARGIN,
        sent_until=now - days + _MARGIN,
        delivered_after=int(last["delivery"]),
        changed_since=then,
    )


KIND = EngagementKind()
