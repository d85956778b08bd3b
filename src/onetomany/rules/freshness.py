"""The freshness guard: a trigger that reads a source's data holds while that data is stale.

A broken usage pipeline must never send "we miss you, 30 days without a login" to every
customer. Each source may declare how stale it may get (``max_staleness = "6h"`` under
``[sources.NAME]``); a touch names the sources it needs (``needs = ["usage"]``), and an absence
touch that names none needs every source that declares a ``max_staleness`` (silence in stale
data looks like absence). While a needed source is stale, never synced, or its last sync
failed, the touch's candidates are skipped with a ``freshness`` check; a time-driven trigger
proposes them again at the next tick, once the source is fresh.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol

__all__ = ["SyncOutcome", "needed_sources", "parse_staleness", "stale_reason"]

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class Reporter(Protocol):
    def error(self, key: str, reason: str) -> None: ...


class SyncOutcome(Protocol):
    """What the guard reads of a source's last sync."""

    @property
    def succeeded_at(self) -> datetime | None: ...

    @property
    def failed_at(self) -> datetime | None: ...

    @property
    def error(self) -> str | None: ...


def parse_staleness(value: Any, path: str, reporter: Reporter) -> timedelta | None:
    """``"6h"``, ``"30m"``, ``"2d"``, ``"90s"`` as a positive duration; a problem otherwise."""
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None or int(match.group(1)) == 0:
        reporter.error(
            path, f'expected a positive duration such as "6h", "30m" or "2d", got {value!r}'
        )
        return None
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def stale_reason(
    name: str, limit: timedelta, outcome: SyncOutcome | None, *, now: datetime
) -> str | None:
    """Why source ``name`` is too stale to act on at ``now`` (None: it is fresh enough)."""
    if outcome is None or outcome.succeeded_at is None:
        return f"source {name!r} has never synced successfully"
    if outcome.error is not None:
        return (
            f"source {name!r} failed its last sync ({outcome.error}); last success "
            f"{outcome.succeeded_at:%Y-%m-%d %H:%M} UTC"
        )
    age = now - outcome.succeeded_at
    if age > limit:
        hours = age.total_seconds() / 3600
        return (
            f"source {name!r} last synced at {outcome.succeeded_at:%Y-%m-%d %H:%M} UTC, "
            f"{hours:.1f} h ago (max_staleness {limit})"
        )
    return None


def needed_sources(
    needs: tuple[str, ...], *, absence: bool, freshness: Mapping[str, timedelta]
) -> list[str]:
    """The sources a touch waits to be fresh: those it names, else for an absence touch every
    source that declares a ``max_staleness``."""
    if needs:
        return [n for n in needs if n in freshness]
    return sorted(freshness) if absence else []
