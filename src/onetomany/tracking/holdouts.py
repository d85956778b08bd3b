"""Holdouts applied to a round's decisions: a queued touch for a recipient in its control
group becomes a ``holdout`` decision (:mod:`onetomany.rules.holdouts` draws the groups)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from onetomany.model.decisions import Check, Decision, Outcome

if TYPE_CHECKING:
    from onetomany.program import Program


def apply_holdouts(program: Program, decisions: Iterable[Decision]) -> list[Decision]:
    """``decisions`` with each queued one whose recipient its touch's holdout keeps out
    turned into a ``holdout`` decision, and a ``holdout`` check (passed) on the others that
    had to draw. Decisions that are not queued are left as they are."""
    holdouts = {t.name: program.holdout_of(t) for t in program.touches}
    if not any(holdouts.values()):
        return list(decisions)  # the usual case costs one pass over the touches
    settled = []
    for decision in decisions:
        holdout = holdouts.get(decision.touch) if decision.outcome is Outcome.QUEUED else None
        if holdout is None:
            settled.append(decision)
            continue
        unit = holdout.unit(decision.contact_id, decision.account_id)
        inputs = {"share": holdout.share, "by": holdout.by, "unit": unit}
        if holdout.holds_out(decision.contact_id, decision.account_id):
            why = f"{holdout.by} {unit} is in the control group ({holdout.share:.0%} held out)"
            settled.append(decision.held_out(Check.failed("holdout", why, **inputs)))
        else:
            why = f"{holdout.by} {unit} is in the treatment group"
            settled.append(decision.check(Check.passed("holdout", why, **inputs)))
    return settled
