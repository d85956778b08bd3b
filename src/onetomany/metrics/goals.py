"""Conversion goals: did the people a touch reached do what it was meant to make them do?

Each touch with a goal (its own, or the program's) is measured over its sent messages: how
many converted within the goal's days (every-touch attribution: each message before a
conversion gets it), how many were the last message aimed at that goal before it converted
(last-touch attribution), and the mean time to convert. Counting is one statement per goal
(:func:`onetomany.store.queries.metrics.goal_counts`).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs

from onetomany.rules.goals import Goal
from onetomany.store.queries.metrics import goal_counts

if TYPE_CHECKING:
    from onetomany.program import Program
    from onetomany.store import Store


@attrs.frozen(kw_only=True)
class Conversion:
    """One touch measured against its goal."""

    touch: str
    goal: Goal
    sent: int
    #: Messages followed by the goal event within the days (every-touch attribution).
    converted: int
    #: Conversions this touch was the last message before (last-touch attribution).
    last_touch: int
    #: The mean time from send to conversion; None without conversions.
    time_to_convert: timedelta | None

    @property
    def rate(self) -> float | None:
        return self.converted / self.sent if self.sent else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "touch": self.touch,
            "goal": {"event": self.goal.event, "within_days": self.goal.within_days},
            "sent": self.sent,
            "converted": self.converted,
            "last_touch": self.last_touch,
            "rate": self.rate,
            "hours_to_convert": (
                self.time_to_convert.total_seconds() / 3600 if self.time_to_convert else None
            ),
        }


def conversions(
    program: Program,
    store: Store,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> tuple[Conversion, ...]:
    """Every touch with a goal, measured over its messages sent in ``[since, until)``, in
    the program's order of touches."""
    by_goal: dict[Goal, list[str]] = {}
    for touch in program.touches:
        goal = program.goal_of(touch)
        if goal is not None:
            by_goal.setdefault(goal, []).append(touch.name)
    # Last-touch credit goes to the last message aimed at the same event, whatever its days.
    aimed: dict[str, list[str]] = {}
    for goal, names in by_goal.items():
        aimed.setdefault(goal.event, []).extend(names)
    found: dict[str, Conversion] = {}
    for goal, names in by_goal.items():
        counts = goal_counts(
            store,
            touches=names,
            goal_touches=aimed[goal.event],
            event=goal.event,
            within_days=goal.within_days,
            since=since,
            until=until,
        )
        for name in names:
            row = counts.get(name, {})
            hours = row.get("hours", math.nan)
            found[name] = Conversion(
                touch=name,
                goal=goal,
                sent=int(row.get("sent", 0)),
                converted=int(row.get("converted", 0)),
                last_touch=int(row.get("last_touch", 0)),
                time_to_convert=None if math.isnan(hours) else timedelta(hours=hours),
            )
    return tuple(found[t.name] for t in program.touches if t.name in found)
