"""Running the engine's policies over one claimed batch, and what their rulings settle.

The policies run in order, each over the rows no earlier policy stopped, so a policy that
spends something for a row it lets through (a frequency cap's slot) only ever sees rows the
policies before it let through. Per row, the first failed check settles it: without ``until``
the row is skipped (never retried, not an attempt); with ``until`` it is deferred until then.
A row every policy lets through goes on to be composed and sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import attrs

from onetomany.delivery.policy import Pending, Policy, Ruling
from onetomany.errors import StoreError
from onetomany.model.decisions import Check, Decision, Outcome, Verdict

__all__ = ["Judgement", "PolicyBug", "judge", "verdict_decision"]


class PolicyBug(Exception):
    """A policy broke the contract (it raised, or gave no ruling for some row)."""


@attrs.frozen(kw_only=True)
class Judgement:
    """What the policies said about one row: every check, in order, and how it is settled.

    ``outcome`` is ``queued`` (it passes on), ``skipped`` or ``deferred``; ``policy`` names the
    policy that settled it, ``check`` its failed check and ``until`` the deferral's end.
    """

    pending: Pending
    checks: tuple[Check, ...]
    outcome: Outcome = Outcome.QUEUED
    policy: str | None = None
    until: datetime | None = None

    @property
    def reason(self) -> str:
        """The failed check's reason, as the outbox row keeps it (``policy: reason``)."""
        if self.outcome is Outcome.QUEUED:
            return ""
        failed = self.checks[-1]
        return f"{failed.name}: {failed.reason or 'refused'}"


def judge(policies: Sequence[Policy], pending: Sequence[Pending], now: datetime) -> list[Judgement]:
    """Each of ``pending`` judged by ``policies`` in order, one :class:`Judgement` per row in
    the same order. Raises :class:`PolicyBug` if a policy raises or breaks the contract."""
    checks: list[list[Check]] = [[] for _ in pending]
    settled: dict[int, Judgement] = {}
    for policy in policies:
        open_rows = [i for i in range(len(pending)) if i not in settled]
        if not open_rows:
            break
        name = getattr(policy, "name", type(policy).__name__)
        try:
            rulings = policy.rule([pending[i] for i in open_rows], now)
        except StoreError:
            raise  # the store is out of reach, not the policy wrong: the caller may wait
        except Exception as exc:
            raise PolicyBug(f"policy {name!r} raised {type(exc).__name__}: {exc}") from exc
        if not isinstance(rulings, list) or len(rulings) != len(open_rows):
            given = len(rulings) if isinstance(rulings, list) else type(rulings).__name__
            raise PolicyBug(
                f"policy {name!r} gave {given} ruling(s) for {len(open_rows)} row(s); "
                "it must give one per row, in order"
            )
        for i, ruling in zip(open_rows, rulings, strict=True):
            if not isinstance(ruling, Ruling):
                raise PolicyBug(f"policy {name!r} gave {ruling!r:.100}, not a Ruling")
            checks[i].append(ruling.check)
            if ruling.check.verdict is Verdict.FAIL:
                settled[i] = Judgement(
                    pending=pending[i],
                    checks=tuple(checks[i]),
                    outcome=Outcome.SKIPPED if ruling.until is None else Outcome.DEFERRED,
                    policy=name,
                    until=ruling.until,
                )
    return [
        settled.get(i) or Judgement(pending=item, checks=tuple(checks[i]))
        for i, item in enumerate(pending)
    ]


def verdict_decision(judgement: Judgement, now: datetime) -> Decision | None:
    """The judgement of a settled row as a :class:`Decision` (what ``explain`` shows), or
    None for a row that passes on or names no contact."""
    row = judgement.pending.row
    if judgement.outcome is Outcome.QUEUED or row.contact_id is None:
        return None
    decision = Decision(
        program=row.program,
        touch=row.touch,
        trigger="dispatch",
        contact_id=row.contact_id,
        account_id=row.account_id,
        occurrence=row.idempotency_key,
        idempotency_key=row.idempotency_key,
        at=now,
        event_id=row.event_id,
        checks=judgement.checks[:-1],
    )
    failed = judgement.checks[-1]
    if judgement.until is None:
        return decision.skipped(failed)
    return decision.deferred(failed, judgement.until)
