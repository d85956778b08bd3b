"""NPS results: the score, the response rate and the distribution, by segment, tier, plan
and period.

NPS is the share of promoters (9-10) minus the share of detractors (0-6) among those who
answered, from -100 to 100; passives (7-8) count in the denominator only. Each contact's
latest answer in the range counts. The response rate is the contacts who answered over the
contacts a survey (a touch some answer names) was sent to in the range. Counting is done by
:mod:`onetomany.store.queries.nps`; this module works out the figures.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs

from onetomany.errors import InputError
from onetomany.metrics.events import NPS_ANSWERED
from onetomany.store.queries.nps import (
    NPS_DIMENSIONS,
    score_counts,
    survey_touches,
    surveyed_counts,
)

if TYPE_CHECKING:
    from onetomany.rules.segments import SegmentSet
    from onetomany.store import Store

#: Every grouping :func:`nps_results` accepts, ``segment`` included.
NPS_BY = (*NPS_DIMENSIONS, "segment")


@attrs.frozen(kw_only=True)
class NpsGroup:
    """The answers of one group (``dimension`` = ``value``)."""

    dimension: str
    value: str
    #: How many contacts gave each score, 0 to 10.
    distribution: tuple[int, ...]
    #: Contacts sent a survey in the range (0 when the group's surveys are unknown).
    surveyed: int = 0

    @property
    def answered(self) -> int:
        return sum(self.distribution)

    @property
    def promoters(self) -> int:
        return sum(self.distribution[9:])

    @property
    def passives(self) -> int:
        return sum(self.distribution[7:9])

    @property
    def detractors(self) -> int:
        return sum(self.distribution[:7])

    @property
    def score(self) -> float | None:
        """Promoters minus detractors, in points of the answers (-100 to 100)."""
        if not self.answered:
            return None
        return (self.promoters - self.detractors) * 100 / self.answered

    @property
    def response_rate(self) -> float | None:
        return self.answered / self.surveyed if self.surveyed else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "dimension": self.dimension,
            "value": self.value,
            "score": self.score,
            "answered": self.answered,
            "surveyed": self.surveyed,
            "response_rate": self.response_rate,
            "promoters": self.promoters,
            "passives": self.passives,
            "detractors": self.detractors,
            "distribution": list(self.distribution),
        }


@attrs.frozen(kw_only=True)
class NpsResults:
    """The answers in ``[since, until)``, in all and per grouping asked for."""

    since: datetime | None
    until: datetime | None
    total: NpsGroup
    by: Mapping[str, tuple[NpsGroup, ...]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "total": self.total.as_dict(),
            "by": {dim: [g.as_dict() for g in groups] for dim, groups in self.by.items()},
        }


def _group(dimension: str, value: str, scores: Mapping[int, int], surveyed: int) -> NpsGroup:
    return NpsGroup(
        dimension=dimension,
        value=value,
        distribution=tuple(scores.get(score, 0) for score in range(11)),
        surveyed=surveyed,
    )


def nps_results(
    store: Store,
    *,
    now: datetime,
    segments: SegmentSet,
    by: Iterable[str] = ("segment", "tier", "plan", "month"),
    since: datetime | None = None,
    until: datetime | None = None,
    event: str = NPS_ANSWERED,
) -> NpsResults:
    """NPS in all and by each of ``by`` (:data:`NPS_BY`); ``segment`` groups by each named
    segment of ``segments`` (its members at ``now``; a contact in two counts in both). An
    unknown grouping is an InputError naming it."""
    dims = list(dict.fromkeys(by))
    unknown = [d for d in dims if d not in NPS_BY]
    if unknown:
        raise InputError(
            f"cannot group NPS by {', '.join(map(repr, unknown))}: choose among {', '.join(NPS_BY)}"
        )
    if since is not None and until is not None and until <= since:
        raise InputError(f"the range ends ({until.isoformat()}) before it starts ({since})")
    touches = survey_touches(store, event=event, since=since, until=until)
    span: dict[str, Any] = {"since": since, "until": until}

    def groups(dim: str, segment: str | None = None) -> dict[str, NpsGroup]:
        asked = "all" if segment is not None else dim
        where: dict[str, Any] = {"segment": segment, "segments": segments, "now": now, **span}
        scores = score_counts(store, event=event, by=asked, **where)
        sent = surveyed_counts(store, touches=touches, by=asked, **where)
        return {
            value: _group(dim, segment or value, scores.get(value, {}), sent.get(value, 0))
            for value in sorted(set(scores) | set(sent))
        }

    grouped: dict[str, tuple[NpsGroup, ...]] = {}
    for dim in dims:
        if dim == "segment":
            found = [groups(dim, name).get("all") for name in sorted(segments)]
            grouped[dim] = tuple(g for g in found if g is not None)
        else:
            grouped[dim] = tuple(groups(dim).values())
    total = groups("all").get("all") or _group("all", "all", {}, 0)
    return NpsResults(since=since, until=until, total=total, by=grouped)
