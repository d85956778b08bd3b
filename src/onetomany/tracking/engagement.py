"""Engagement outcomes: opens and clicks, and the escalation ladders they stop.

A host reports that a contact opened or clicked a message with
:meth:`~onetomany.Engine.track_engagement`, naming the outbox row by its idempotency key; the
engine stores a ``message_opened`` or ``message_clicked`` event carrying that key.

An :class:`~onetomany.program.EngagementTrigger` (``{ not_opened = "welcome", days = 3 }``)
makes its touch the next step of a ladder. Each tick, :func:`unengaged` asks the store, in one
statement per step, for the sent rows of the watched touch that:

* were sent at least ``days`` ago. The send time is the ``deliveries`` row with status
  ``sent``: it is written once, in the transaction that marks the row sent, and nothing moves
  it afterwards (``outbox.updated_at`` would, should anything ever touch the row again);
* have not escalated yet: no outbox row holds the next step's key (the occurrence is
  ``after-<outbox id of the previous row>``, which explanations rely on);
* were not engaged with: no counting event carries their key.

Only rows with status ``sent`` escalate. A row that died (bounced, no address, no consent)
never reached the contact, so "not opened" says nothing about them; it has its own
``message_dead`` event for a touch that wants to react to it.

For those few rows only, engagement with any earlier step of the same ladder run is checked
too: each escalated row carries the keys of the steps before it in ``payload["ladder"]``, so
an open of the original email after the resend went out stops the SMS and the CSM task.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime, timedelta
from typing import Any

import attrs

from onetomany.errors import InputError
from onetomany.model import Event
from onetomany.program import Touch
from onetomany.rules.triggers import ENGAGEMENT_EVENTS, EngagementTrigger
from onetomany.store import OutboxRow, Store
from onetomany.store.queries.events import engaged_keys
from onetomany.store.queries.outbox import outbox_row, sent_not_engaged
from onetomany.tracking.reentry import idempotency_key


def engagement_event(
    store: Store,
    key: str,
    kind: str,
    *,
    at: datetime,
    now: datetime,
    id: str | None = None,
    properties: Mapping[str, Any] | None = None,
) -> Event:
    """Store the ``kind`` (``opened`` or ``clicked``) event of the outbox row keyed ``key``,
    with ``properties`` beside the row's (``machine: true`` marks a machine's open).

    Raises :class:`~onetomany.errors.InputError` naming the key when no row has it, or naming
    the kind when it is neither; nothing is stored then.
    """
    if kind not in ENGAGEMENT_EVENTS:
        known = ", ".join(repr(k) for k in ENGAGEMENT_EVENTS)
        raise InputError(f"engagement kind {kind!r} for message {key!r} is not one of {known}")
    row = outbox_row(store, key)
    if row is None:
        raise InputError(f"no outbox row has the idempotency key {key!r}; nothing was tracked")
    fields: dict[str, Any] = {
        "name": ENGAGEMENT_EVENTS[kind],
        "occurred_at": at,
        "contact_id": row.contact_id,
        "account_id": row.account_id,
        "properties": {
            **(properties or {}),
            "idempotency_key": key,
            "touch": row.touch,
            "channel": row.channel,
        },
    }
    if id is not None:
        fields["id"] = id
    event = Event(**fields)
    store.add_events([event], now=now)
    return event


@attrs.frozen(kw_only=True)
class Unengaged:
    """A sent row whose contact did not engage within the step's days: it escalates."""

    row: OutboxRow
    sent_at: datetime

    @property
    def ladder(self) -> list[str]:
        """The keys of this row's ladder run, from the root message to this row."""
        return [*_keys(self.row.payload.get("ladder")), self.row.idempotency_key]

    def payload(self, trigger: EngagementTrigger) -> dict[str, Any]:
        """What the escalated row carries: the ladder's keys, and its history for people."""
        earlier = self.row.payload.get("escalation")
        steps = list(earlier.get("steps", [])) if isinstance(earlier, Mapping) else []
        steps.append(
            {
                "key": self.row.idempotency_key,
                "touch": self.row.touch,
                "channel": self.row.channel,
                "sent_at": self.sent_at.isoformat(),
            }
        )
        what = "opened" if trigger.outcome == "not_opened" else "clicked"
        reason = (
            f"{self.row.touch!r} sent {self.sent_at:%Y-%m-%d %H:%M} UTC was not {what} "
            f"within {trigger.days} days"
        )
        return {"ladder": self.ladder, "escalation": {"reason": reason, "steps": steps}}


#: A step's occurrence is ``after-<outbox id of the row it escalates>``.
OCCURRENCE_PREFIX = "after-"


def occurrence(row_id: int) -> str:
    """The occurrence of the step that escalates outbox row ``row_id``."""
    return f"{OCCURRENCE_PREFIX}{row_id}"


def unengaged(
    store: Store,
    program: str,
    touch: Touch,
    trigger: EngagementTrigger,
    *,
    now: datetime,
    among: Collection[int] | None = None,
) -> list[Unengaged]:
    """The sent rows of ``trigger.touch`` that ``touch`` escalates at ``now`` (only among the
    outbox ids ``among`` when given: a steady round's, :mod:`onetomany.triggers.engagement`).

    One statement selects the rows sent ``days`` ago or more that neither escalated nor were
    engaged with; then the earlier steps of those rows' ladder runs are checked, for them
    alone.
    """
    counted = trigger.engagement
    # idempotency_key(program, touch.name, o.contact_id, occurrence(o.id)), spelled in SQL
    # as head + contact id + tail + row id; a test holds the two spellings together.
    head, tail = idempotency_key(program, touch.name, "\0", occurrence(0))[:-1].split("\0")
    candidates = [
        Unengaged(row=row, sent_at=sent_at)
        for row, sent_at in sent_not_engaged(
            store,
            program=program,
            touch=trigger.touch,
            next_key=(head, tail),
            engagement=counted,
            sent_by=now - timedelta(days=trigger.days),
            now=now,
            among=among,
        )
    ]
    earlier = {k for c in candidates for k in c.ladder[:-1]}
    if not earlier:
        return candidates
    stopped = engaged_keys(
        store, earlier, names=counted, contact_ids=[c.row.contact_id for c in candidates], now=now
    )
    return [c for c in candidates if not stopped.intersection(c.ladder[:-1])]


def _keys(value: object) -> list[str]:
    return [str(k) for k in value] if isinstance(value, list) else []
