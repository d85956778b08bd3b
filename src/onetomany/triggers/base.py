"""The contract every trigger kind implements, and what a tick hands it.

A kind is one module under :mod:`onetomany.triggers` holding one :class:`TriggerKind`: its
trigger class (the data and the ``program.toml`` form, in :mod:`onetomany.rules.triggers`,
which is pure and can be read without a store) and :meth:`TriggerKind.candidates`, which reads
the store and proposes one :class:`~onetomany.model.decisions.Decision` per recipient and
occurrence. The engine settles them (re-entry, then the outbox) and keeps them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import attrs

from onetomany.model import Contact, Event
from onetomany.model.decisions import Check, Decision
from onetomany.program import Program, Touch
from onetomany.rules.segments import SegmentSet
from onetomany.rules.triggers import Reporter, Trigger
from onetomany.store import Store
from onetomany.store.segments import matching_contact_ids
from onetomany.tracking.reentry import idempotency_key

__all__ = [
    "Candidates",
    "TickContext",
    "TriggerKind",
    "Waiting",
    "addressees",
    "in_segment",
    "when",
]


@attrs.frozen(kw_only=True)
class Candidates:
    """What one kind proposes in one tick.

    ``decisions`` are candidates (or already skipped, e.g. outside the touch's segment);
    ``after_queued`` runs once the queued ones are written (a cadence moves its schedules on
    then, so a crash in between fires the same occurrences again, under the same keys).
    ``cursors`` are ``(touch, name, value)``: how far the kind has read for a touch, stored
    in the transaction that queues the rows (not at all when the freshness guard held any
    of the touch's decisions, so that the next round reads the same again).
    """

    decisions: tuple[Decision, ...] = attrs.field(default=(), converter=tuple[Decision, ...])
    after_queued: Callable[[], object] | None = None
    cursors: tuple[tuple[str, str, str], ...] = ()


@attrs.frozen(kw_only=True)
class Waiting:
    """What a trigger waits for, for a recipient it proposes nothing for right now.

    ``checks`` say what the kind read (the ``trigger`` check fails; others inform), and
    ``due_at``/``due`` when it would next propose the touch: a time, or what must happen first.
    """

    checks: tuple[Check, ...] = attrs.field(converter=tuple[Check, ...])
    due: str | None = None
    due_at: datetime | None = None


@attrs.frozen(kw_only=True)
class TickContext:
    """What a kind may read during one tick: the program, the store, the named segments,
    and, for a kind that reads the event log, the batch of events being handled."""

    program: Program
    store: Store
    segments: SegmentSet
    events: tuple[Event, ...] = attrs.field(default=(), converter=tuple[Event, ...])
    #: A dry run (``Engine.decide``): the kind writes nothing; what it would write (a new
    #: cadence schedule) it keeps in memory for this run.
    dry: bool = False

    def addressees(self, touch: Touch, event: Event) -> list[Contact]:
        return addressees(self.store, touch, event)

    def in_segment(self, touch: Touch, contacts: Sequence[Contact], now: datetime) -> set[str]:
        """The ids of ``contacts`` in ``touch``'s segment (all of them when it has none)."""
        found = in_segment(self.store, self.segments, touch.segment, list(contacts), now=now)
        return {c.id for c in found}

    def decision(
        self,
        kind: str,
        touch: Touch,
        contact: Contact,
        *,
        occurrence: str,
        now: datetime,
        checks: Sequence[Check] = (),
        event: Event | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> Decision:
        """The candidate of ``touch`` for ``contact`` at ``occurrence``, keyed naturally."""
        program = self.program.name
        return Decision(
            program=program,
            touch=touch.name,
            trigger=kind,
            contact_id=contact.id,
            account_id=contact.account_id or (event.account_id if event else None),
            occurrence=occurrence,
            idempotency_key=idempotency_key(program, touch.name, contact.id, occurrence),
            at=now,
            event_id=event.id if event else None,
            checks=checks,
            payload={"event": event_context(event) if event else None, **(payload or {})},
        )

    def settle_segment(
        self,
        kind: str,
        touch: Touch,
        found: Sequence[tuple[Contact, str, Check, Event | None]],
        *,
        now: datetime,
        payload: Callable[[int], Mapping[str, Any] | None] = lambda _: None,
    ) -> list[Decision]:
        """One decision per ``(contact, occurrence, trigger check, event)`` found: a candidate
        when the contact is in ``touch``'s segment (asked once for all of them), else skipped.
        ``payload(i)`` builds the ``i``-th candidate's payload, only for candidates."""
        inside = self.in_segment(touch, [c for c, _, _, _ in found], now)
        segment = touch.segment
        decisions = []
        for index, (contact, occurrence, check, event) in enumerate(found):
            ok = contact.id in inside
            checks = [check]
            if segment is not None and ok:
                checks.append(Check.passed("segment", f"in segment {segment!r}", segment=segment))
            decision = self.decision(
                kind,
                touch,
                contact,
                occurrence=occurrence,
                now=now,
                checks=checks,
                event=event,
                payload=payload(index) if ok else None,
            )
            if not ok:
                why = f"not in segment {segment!r}"
                decision = decision.skipped(Check.failed("segment", why, segment=segment))
            decisions.append(decision)
        return decisions


class TriggerKind(Protocol):
    """One trigger kind: how ``program.toml`` spells it, and what it proposes each tick."""

    @property
    def name(self) -> str:
        """The kind's name (``"absence"``), which each of its decisions carries."""
        ...

    @property
    def trigger(self) -> type[Trigger]:
        """Its trigger class: the data and the ``program.toml`` form."""
        ...

    @property
    def reads_events(self) -> bool:
        """True for a kind the event log drives: it is handed each batch of new events
        (:attr:`TickContext.events`), and the batch's decisions are queued with the log's
        cursor. False: it is asked once per tick."""
        ...

    def read(self, body: Mapping[str, Any], path: str, reporter: Reporter) -> Trigger | None:
        """Its ``trigger = { ... }`` table, validated; problems go to ``reporter``."""
        ...

    def candidates(
        self, context: TickContext, touches: Sequence[tuple[Touch, Any]], now: datetime
    ) -> Candidates:
        """The decisions this tick proposes for ``touches`` (each with its trigger)."""
        ...

    def waiting(
        self, context: TickContext, touch: Touch, trigger: Any, contact: Contact, now: datetime
    ) -> Waiting:
        """What ``trigger`` waits for before it proposes ``touch`` to ``contact``, who got no
        decision from :meth:`candidates` at ``now``: the state it reads, in its own words."""
        ...


def addressees(store: Store, touch: Touch, event: Event) -> list[Contact]:
    """The contacts ``touch``'s audience rules pick for ``event``, before its segment."""
    named = store.get_contact(event.contact_id) if event.contact_id else None
    if named is not None and not touch.audience.roles:
        return [named]
    account_id = event.account_id or (named.account_id if named else None)
    contacts = store.contacts_of(account_id) if account_id else []
    return touch.audience.pick(contacts)


def in_segment(
    store: Store,
    segments: SegmentSet,
    segment: str | None,
    contacts: list[Contact],
    *,
    now: datetime,
) -> list[Contact]:
    """Those of ``contacts`` in ``segment`` (all of them for None), in one question."""
    if segment is None or not contacts:
        return contacts
    expr = segments.expr(segment)
    among = [c.id for c in contacts]
    inside = set(matching_contact_ids(store, expr, now=now, segments=segments, among=among))
    return [c for c in contacts if c.id in inside]


def event_context(event: Event) -> dict[str, Any]:
    """What a template sees as ``event``."""
    return {
        "id": event.id,
        "name": event.name,
        "occurred_at": event.occurred_at.isoformat(),
        "properties": dict(event.properties),
    }


def when(moment: datetime | None) -> str:
    """``moment`` for people, in UTC to the minute (``never`` for None)."""
    if moment is None:
        return "never"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
