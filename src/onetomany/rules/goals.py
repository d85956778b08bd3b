"""Conversion goals: what a touch (or a whole program) is meant to make happen.

``goal = { event = "report_created", within_days = 7 }`` on a touch (or in ``[program]``, for
every touch without its own): a message converts when its recipient's account (or the contact,
when it has no account) records ``event`` after the message was sent and within the days.
"""

from __future__ import annotations

from typing import Protocol

import attrs

_GOAL_FORM = '{ event = "report_created", within_days = 7 }'


class Reporter(Protocol):
    def error(self, key: str, reason: str) -> None: ...


@attrs.frozen(kw_only=True)
class Goal:
    """The event a touch aims at, and how long after the send it still counts."""

    event: str = attrs.field(validator=attrs.validators.min_len(1))
    within_days: int = attrs.field(validator=attrs.validators.ge(1))

    def describe(self) -> str:
        return f"{self.event} within {self.within_days} days"


def read_goal(body: object, path: str, reporter: Reporter) -> Goal | None:
    """The goal a ``goal = {...}`` table gives, or None after reporting what is wrong."""
    if not isinstance(body, dict):
        reporter.error(path, f"expected a table like {_GOAL_FORM}, got {body!r}")
        return None
    unknown = sorted(set(body) - {"event", "within_days"})
    if unknown:
        reporter.error(path, f"unknown key(s) {unknown} (known: event, within_days)")
        return None
    event, days = body.get("event"), body.get("within_days", 7)
    if not isinstance(event, str) or not event.strip():
        reporter.error(f"{path}.event", f"expected an event name, got {event!r}")
        return None
    if not isinstance(days, int) or isinstance(days, bool) or days < 1:
        reporter.error(f"{path}.within_days", f"expected a whole number of days >= 1, got {days!r}")
        return None
    return Goal(event=event, within_days=days)
