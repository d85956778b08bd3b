"""``trigger = { absence = "login", days = 30, by = "account" }``: once per absence.

The absent contacts are found set-based in SQL (the trigger's segment condition); each
absence's occurrence is ``absence-<id of the last event>``, so a new event starts a new one.

A round reads the whole population only the first time. After that, a cursor per touch
(stored with the round's rows) says when the last round ran and how far it had read the
event log, and a round asks only about the subjects whose answer may differ from then
(:func:`~onetomany.store.queries.absence.changed_subjects`): those whose latest event
crossed the threshold in between, who have a new event, or whose profile was saved since.
Every other absent subject was decided by an earlier round with the same inputs, so
reading it again would only be dropped by the outbox's key. That holds while the touch's
outcome depends on nothing else that moves with time: a segment that counts events or reads
tiers, journeys or health, and the ``stage`` and ``period`` re-entry rules, make the touch
read every absent subject each round, as before. A round the freshness guard held stores
no cursor, so the next one reads the same again. A dry run (``Engine.decide``) reads every
absent subject: it proposes what a first round would, which the outbox check then settles.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from onetomany.model import Contact, Event
from onetomany.model.decisions import Check
from onetomany.program import Touch
from onetomany.rules.triggers import AbsenceTrigger, Reporter
from onetomany.store import Store
from onetomany.store.queries.absence import changed_subjects, contact_ids_of, log_position
from onetomany.store.segments import matching_contact_ids
from onetomany.triggers.base import Candidates, TickContext, Waiting, when
from onetomany.triggers.rounds import cursor_name, cursor_value, last_round, shape

#: Read a little either side of the threshold: ``days_since`` counts whole seconds.
_MARGIN = timedelta(minutes=1)


class AbsenceKind:
    name = "absence"
    trigger = AbsenceTrigger
    reads_events = False

    def read(self, body: Mapping[str, Any], path: str, reporter: Reporter) -> AbsenceTrigger | None:
        return AbsenceTrigger.read(body, path, reporter)

    def candidates(
        self,
        context: TickContext,
        touches: Sequence[tuple[Touch, AbsenceTrigger]],
        now: datetime,
    ) -> Candidates:
        decisions = []
        cursors: list[tuple[str, str, str]] = []
        store = context.store
        # Read before the queries below: an event stored meanwhile is after it, read again.
        position = log_position(store) if not context.dry else None
        for touch, trigger in touches:
            among: list[str] | None = None
            valid_for = shape(context.segments, touch, trigger)
            if position is not None and valid_for is not None:
                name = cursor_name(self.name, context.program.name, touch)
                previous = last_round(store.get_cursor(name), valid_for, now)
                among = _changed_contacts(store, trigger, previous, now)
                cursors.append((touch.name, name, cursor_value(valid_for, now, position)))
            if among is not None and not among:
                continue
            ids = matching_contact_ids(
                store, trigger.condition(), now=now, segments=context.segments, among=among
            )
            contacts = sorted(store.get_contacts(ids).values(), key=lambda c: c.id)
            groups: dict[str | None, list[Contact]] = {}
            for contact in contacts:
                subject = contact.account_id if trigger.by == "account" else contact.id
                groups.setdefault(subject, []).append(contact)
            latest = store.latest_events(
                trigger.event, by=trigger.by, ids=[s for s in groups if s], until=now
            )
            found: list[tuple[Contact, str, Check, Event | None]] = []
            for subject, members in groups.items():
                last = latest.get(subject) if subject else None
                if last is None:
                    continue
                check = Check.passed(
                    "trigger",
                    f"last {trigger.event!r} by the {trigger.by} was {last.id} at "
                    f"{last.occurred_at.isoformat()}: absent at least {trigger.days} days",
                    last_event=last.id,
                    last_at=last.occurred_at.isoformat(),
                    days=trigger.days,
                )
                occurrence = f"absence-{last.id}"
                found += [(c, occurrence, check, last) for c in touch.audience.pick(members)]
            # One segment question for every recipient of the touch, not one per account.
            decisions += context.settle_segment(self.name, touch, found, now=now)
        return Candidates(decisions=decisions, cursors=tuple(cursors))

    def waiting(
        self,
        context: TickContext,
        touch: Touch,
        trigger: AbsenceTrigger,
        contact: Contact,
        now: datetime,
    ) -> Waiting:
        subject = contact.account_id if trigger.by == "account" else contact.id
        owner = f"the account {subject!r}" if trigger.by == "account" else repr(contact.id)
        if subject is None:
            why = "the contact has no account, so an absence by account never applies"
            return Waiting(checks=[Check.failed("trigger", why)])
        last = context.store.latest_events(
            trigger.event, by=trigger.by, ids=[subject], until=now
        ).get(subject)
        if last is None:
            why = (
                f"no {trigger.event!r} by {owner} ever, so it is not absent from it "
                f'(a segment with missing(last("{trigger.event}")) finds those)'
            )
            later = f"{trigger.days} days after a {trigger.event!r} by {owner}"
            return Waiting(checks=[Check.failed("trigger", why)], due=later)
        due = last.occurred_at + timedelta(days=trigger.days)
        inputs = {"last_event": last.id, "last_at": last.occurred_at.isoformat()}
        head = f"last {trigger.event!r} by {owner} was {last.id} at {when(last.occurred_at)}"
        if due > now:
            why = f"{head}: absent only from {when(due)} ({trigger.days} days)"
            check = Check.failed("trigger", why, due_at=due.isoformat(), **inputs)
            return Waiting(checks=[check], due_at=due, due=f"{trigger.days} days after {last.id}")
        roles = ", ".join(touch.audience.roles)
        why = f"{head}: absent, but the audience ({roles}) does not pick {contact.id}"
        return Waiting(checks=[Check.failed("audience", why, **inputs)])


def _changed_contacts(
    store: Store, trigger: AbsenceTrigger, last: Mapping[str, Any] | None, now: datetime
) -> list[str] | None:
    """The contacts whose absence may differ from the ``last`` round's; None (all of them)
    without one."""
    if last is None:
        return None
    then: datetime = last["at"]
    days = timedelta(days=trigger.days)
    subjects = changed_subjects(
        store,
        event=trigger.event,
        by=trigger.by,
        crossed_after=then - days - _MARGIN,
        crossed_until=now - days + _MARGIN,
        stored_after=last["log"],
        changed_since=then,
    )
    return contact_ids_of(store, by=trigger.by, subjects=subjects) if subjects else []


KIND = AbsenceKind()
