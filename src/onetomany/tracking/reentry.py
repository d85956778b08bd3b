"""Re-entry rules (:class:`~onetomany.program.Reentry`): how often one touch may reach one
recipient.

The rules act on candidate outbox rows before they are queued, a batch at a time, so a tick
asks the store one question per touch rather than one per recipient:

* ``once`` and ``stage`` change the idempotency key's occurrence (``once``;
  ``stage-<entry id>``), so the outbox's unique key enforces them even across concurrent ticks;
* ``period`` keeps the natural occurrence and drops a candidate when the same touch was
  queued for the same contact within the last ``days`` days (or earlier in the batch).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import attrs

from onetomany.program import Touch
from onetomany.store import NewTouch, Store
from onetomany.store.queries.journeys import stage_entries
from onetomany.store.queries.outbox import last_queued


def idempotency_key(program: str, touch: str, recipient: str, occurrence: str) -> str:
    """The key that makes a touch happen at most once per recipient and occurrence."""
    return f"{program}:{touch}:{recipient}:{occurrence}"


def apply_reentry(store: Store, candidates: Sequence[tuple[Touch, NewTouch]]) -> list[NewTouch]:
    """The candidates each touch's re-entry rule lets through, keyed accordingly."""
    kept: list[NewTouch] = []
    by_touch: dict[str, list[NewTouch]] = {}
    touches: dict[str, Touch] = {}
    for touch, row in candidates:
        by_touch.setdefault(touch.name, []).append(row)
        touches[touch.name] = touch
    for name, rows in by_touch.items():
        touch = touches[name]
        rule = touch.reentry
        if rule.kind == "once":
            kept += [_with_occurrence(r, "once") for r in rows]
        elif rule.kind == "stage":
            assert rule.journey is not None
            entries = stage_entries(store, rule.journey, {r.account_id for r in rows})
            kept += [
                _with_occurrence(r, f"stage-{entries[r.account_id]}")
                for r in rows
                if r.account_id in entries
            ]
        elif rule.kind == "period":
            assert rule.days is not None
            kept += _outside_period(store, name, rows, days=rule.days)
        else:
            kept += rows
    return kept


def _with_occurrence(row: NewTouch, occurrence: str) -> NewTouch:
    key = idempotency_key(row.program, row.touch, row.contact_id or "", occurrence)
    return attrs.evolve(row, idempotency_key=key)


def _outside_period(store: Store, touch: str, rows: list[NewTouch], *, days: int) -> list[NewTouch]:
    window = timedelta(days=days)
    last = last_queued(store, touch, [r.contact_id for r in rows if r.contact_id])
    kept = []
    for row in sorted(rows, key=lambda r: r.available_at):
        contact = row.contact_id or ""
        previous = last.get(contact)
        if previous is not None and row.available_at - previous < window:
            continue
        last[contact] = row.available_at
        kept.append(row)
    return kept
