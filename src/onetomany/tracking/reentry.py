"""Re-entry rules (:class:`~onetomany.program.Reentry`): how often one touch may reach one
recipient.

The rules settle candidate :class:`~onetomany.model.decisions.Decision` values before they
are queued, a batch at a time, so a tick asks the store one question per touch rather than one
per recipient:

* ``once`` and ``stage`` change the idempotency key's occurrence (``once``;
  ``stage-<entry id>``), so the outbox's unique key enforces them even across concurrent ticks;
* ``period`` keeps the natural occurrence and drops a candidate when the same touch was
  queued for the same contact within the last ``days`` days (or earlier in the batch).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta

from onetomany.model.decisions import Check, Decision
from onetomany.program import Touch
from onetomany.store import Store
from onetomany.store.queries.journeys import stage_entries
from onetomany.store.queries.outbox import last_queued


def idempotency_key(program: str, touch: str, recipient: str, occurrence: str) -> str:
    """The key that makes a touch happen at most once per recipient and occurrence."""
    return f"{program}:{touch}:{recipient}:{occurrence}"


def apply_reentry(
    store: Store, touches: Mapping[str, Touch], decisions: Sequence[Decision]
) -> list[Decision]:
    """Settle the candidates among ``decisions`` by their touch's re-entry rule.

    Each candidate comes back queued (under the key the rule gives it) or skipped, with a
    ``re-entry`` check naming the rule and what it read; decisions already settled come back
    as they are. The result is grouped by touch, each group in its rule's order, which is
    the order the queued ones reach the outbox.
    """
    settled: list[Decision] = []
    by_touch: dict[str, list[Decision]] = {}
    for decision in decisions:
        by_touch.setdefault(decision.touch, []).append(decision)
    for name, group in by_touch.items():
        rule = touches[name].reentry
        pending = [d for d in group if not d.settled]
        if rule.kind == "once":
            check = Check.passed("re-entry", "once ever: keyed 'once'", rule="once")
            settled += [d.queued(check, key=_key(d, "once")) for d in pending]
        elif rule.kind == "stage":
            assert rule.journey is not None
            entries = stage_entries(store, rule.journey, {d.account_id for d in pending})
            for d in pending:
                entry = entries.get(d.account_id or "")
                if entry is None:
                    why = f"once per entry into a {rule.journey} stage, and the account is in none"
                    check = Check.failed("re-entry", why, rule="stage", journey=rule.journey)
                    settled.append(d.skipped(check))
                else:
                    why = f"once per entry into a {rule.journey} stage: entry {entry}"
                    check = Check.passed(
                        "re-entry", why, rule="stage", journey=rule.journey, entry_id=entry
                    )
                    settled.append(d.queued(check, key=_key(d, f"stage-{entry}")))
        elif rule.kind == "period":
            assert rule.days is not None
            settled += _outside_period(store, name, pending, days=rule.days)
        else:
            check = Check.passed("re-entry", "once per occurrence", rule="occurrence")
            settled += [d.queued(check) for d in pending]
        settled += [d for d in group if d.settled]
    return settled


def _key(decision: Decision, occurrence: str) -> str:
    return idempotency_key(decision.program, decision.touch, decision.contact_id, occurrence)


def _outside_period(
    store: Store, touch: str, decisions: list[Decision], *, days: int
) -> list[Decision]:
    window = timedelta(days=days)
    last = last_queued(store, touch, [d.contact_id for d in decisions])
    settled = []
    rule = f"at most once every {days} days"
    for decision in sorted(decisions, key=lambda d: d.at):
        previous = last.get(decision.contact_id)
        inputs = {
            "rule": "period",
            "days": days,
            "last_queued": previous.isoformat() if previous else None,
        }
        if previous is not None and decision.at - previous < window:
            until = (previous + window).isoformat()
            why = f"{rule}, and it was queued at {previous.isoformat()}: blocked until {until}"
            settled.append(decision.skipped(Check.failed("re-entry", why, **inputs)))
            continue
        last[decision.contact_id] = decision.at
        why = f"{rule}: " + (f"last queued {previous.isoformat()}" if previous else "never queued")
        settled.append(decision.queued(Check.passed("re-entry", why, **inputs)))
    return settled
