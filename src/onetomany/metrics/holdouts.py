"""Holdout results: did a touch change what its recipients did, compared with its control group?

For every touch with a goal and a holdout, the goal's rate among the recipients it was sent
to (treatment: its sent messages, as :mod:`onetomany.metrics.goals` counts them) is compared
with the rate among those its holdout kept out (control: the ``holdout`` decisions, each
recipient's window starting when the touch would have been queued).

The uplift is the difference of the two proportions, ``p_treatment - p_control``, with a 95 %
confidence interval by **Newcombe's hybrid score method** (Newcombe 1998, method 10: the
Wilson score interval of each proportion, combined). Unlike the Wald interval it stays inside
[-1, 1] and keeps its coverage for small groups and rates near 0 or 1. A result is flagged
too small to conclude when either group has fewer than :data:`MIN_GROUP` members or fewer
than :data:`MIN_OUTCOMES` conversions or non-conversions in all (the normal approximation
behind every such interval is poor below that), and inconclusive when the interval holds 0.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs

from onetomany.rules.goals import Goal
from onetomany.store.queries.holdouts import control_counts
from onetomany.store.queries.metrics import goal_counts

if TYPE_CHECKING:
    from onetomany.program import Program
    from onetomany.store import Store

#: The normal quantile of a two-sided 95 % interval.
Z95 = 1.959963984540054
#: Fewer members than this in either group: too small to conclude.
MIN_GROUP = 30
#: Fewer conversions (or non-conversions) than this across both groups: too small.
MIN_OUTCOMES = 5
METHOD = "Newcombe hybrid score interval (method 10) of the difference of two proportions, 95%"


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of ``successes`` out of ``n`` (``n`` > 0)."""
    p = successes / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    denominator = 1 + z * z / n
    return ((centre - spread) / denominator, (centre + spread) / denominator)


def newcombe(x1: int, n1: int, x2: int, n2: int, z: float = Z95) -> tuple[float, float, float]:
    """``p1 - p2`` and its Newcombe hybrid score interval (``n1``, ``n2`` > 0)."""
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson(x1, n1, z)
    l2, u2 = wilson(x2, n2, z)
    difference = p1 - p2
    low = difference - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = difference + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return difference, low, high


@attrs.frozen(kw_only=True)
class HoldoutResult:
    """One touch's goal in treatment and control, and the uplift between them."""

    touch: str
    goal: Goal
    share: float
    treated: int
    treated_converted: int
    held_out: int
    held_out_converted: int

    @property
    def treatment_rate(self) -> float | None:
        return self.treated_converted / self.treated if self.treated else None

    @property
    def control_rate(self) -> float | None:
        return self.held_out_converted / self.held_out if self.held_out else None

    @property
    def uplift(self) -> tuple[float, float, float] | None:
        """(difference, low, high) of the two rates, or None while a group is empty."""
        if not self.treated or not self.held_out:
            return None
        return newcombe(
            self.treated_converted, self.treated, self.held_out_converted, self.held_out
        )

    @property
    def warning(self) -> str | None:
        """Why the result cannot be concluded from, or None."""
        converted = self.treated_converted + self.held_out_converted
        missed = self.treated + self.held_out - converted
        if min(self.treated, self.held_out) < MIN_GROUP or min(converted, missed) < MIN_OUTCOMES:
            return (
                f"too small to conclude: {self.treated} treated and {self.held_out} held out, "
                f"{converted} converted (needs {MIN_GROUP} per group and {MIN_OUTCOMES} "
                "conversions and non-conversions)"
            )
        uplift = self.uplift
        if uplift is not None and uplift[1] <= 0 <= uplift[2]:
            return "inconclusive: the interval holds 0 (no uplift shown at 95%)"
        return None

    def as_dict(self) -> dict[str, Any]:
        uplift = self.uplift
        return {
            "touch": self.touch,
            "goal": {"event": self.goal.event, "within_days": self.goal.within_days},
            "share": self.share,
            "treatment": {
                "n": self.treated,
                "converted": self.treated_converted,
                "rate": self.treatment_rate,
            },
            "control": {
                "n": self.held_out,
                "converted": self.held_out_converted,
                "rate": self.control_rate,
            },
            "uplift": None if uplift is None else uplift[0],
            "interval": None if uplift is None else [uplift[1], uplift[2]],
            "method": METHOD,
            "warning": self.warning,
        }


def holdout_results(
    program: Program,
    store: Store,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> tuple[HoldoutResult, ...]:
    """Every touch with both a goal and a holdout, in the program's order of touches."""
    found = []
    for touch in program.touches:
        goal, holdout = program.goal_of(touch), program.holdout_of(touch)
        if goal is None or holdout is None:
            continue
        span = {"since": since, "until": until}
        treated = goal_counts(
            store,
            touches=[touch.name],
            goal_touches=[touch.name],
            event=goal.event,
            within_days=goal.within_days,
            **span,
        ).get(touch.name, {})
        control = control_counts(
            store, touches=[touch.name], event=goal.event, within_days=goal.within_days, **span
        ).get(touch.name, {})
        found.append(
            HoldoutResult(
                touch=touch.name,
                goal=goal,
                share=holdout.share,
                treated=int(treated.get("sent", 0)),
                treated_converted=int(treated.get("converted", 0)),
                held_out=control.get("held_out", 0),
                held_out_converted=control.get("converted", 0),
            )
        )
    return tuple(found)
