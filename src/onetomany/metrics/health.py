"""Health scores as the views show them: one account's history, and the book's distribution
and trend (:mod:`onetomany.rules.health` says how a score is made; the engine's
``update_health`` writes one per account per day)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs

from onetomany.store.queries.health import latest_scores, mean_per_day

if TYPE_CHECKING:
    from onetomany.store import Store

#: The distribution's bands: 0-9, 10-19, ..., 90-100.
BANDS = tuple(f"{low}-{low + 9 if low < 90 else 100}" for low in range(0, 100, 10))


@attrs.frozen(kw_only=True)
class HealthScore:
    """One account's score at one time, with each measure's value and points."""

    at: datetime
    score: float
    measures: Mapping[str, Any] = attrs.field(factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "score": self.score, "measures": dict(self.measures)}


@attrs.frozen(kw_only=True)
class HealthSummary:
    """The latest score of each account in bands, and the mean score per day."""

    bands: tuple[int, ...]
    accounts: int
    #: (UTC day, mean score, accounts scored), oldest first.
    trend: tuple[tuple[str, float, int], ...]


def band(score: float) -> int:
    """The index in :data:`BANDS` of ``score``."""
    return min(9, max(0, int(score // 10)))


def health_summary(
    store: Store, *, now: datetime, since: datetime | None = None, until: datetime | None = None
) -> HealthSummary:
    latest = latest_scores(store, at=until or now)
    counts = [0] * len(BANDS)
    for score in latest.values():
        counts[band(score)] += 1
    return HealthSummary(
        bands=tuple(counts),
        accounts=len(latest),
        trend=tuple(mean_per_day(store, since=since, until=until)),
    )
