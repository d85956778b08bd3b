"""Funnels per touch: how many messages were queued, sent, delivered, opened, clicked, ...

A funnel counts outbox rows (one per idempotency key) by the furthest each got: its status,
and the events that carry its key (:mod:`onetomany.metrics.events`); the decisions recorded
in the range add the touches deferred or suppressed by a policy. Counts come from
set-based SQL (:mod:`onetomany.store.queries.metrics`); rates are worked out here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs

from onetomany.errors import InputError
from onetomany.metrics.events import FUNNEL
from onetomany.metrics.holdouts import HoldoutResult, holdout_results
from onetomany.store.queries.metrics import DIMENSIONS, STAGES, funnel_counts

if TYPE_CHECKING:
    from onetomany.program import Program
    from onetomany.rules.segments import SegmentSet
    from onetomany.store import Store

#: Every dimension :func:`measure` groups by, ``segment`` included.
ALL_DIMENSIONS = (*DIMENSIONS, "segment")


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@attrs.frozen(kw_only=True)
class Funnel:
    """The counts of one group of messages (``dimension`` = ``value``), stage by stage.

    ``sent`` counts rows the channel accepted and ``failed`` rows that were dead-lettered;
    ``opened`` counts people's opens only (``machine_opened`` the privacy proxies'). Every
    count after ``failed`` counts messages (keys), not events: two opens of one email are
    one opened message.
    """

    dimension: str
    value: str
    queued: int = 0
    deferred: int = 0
    suppressed: int = 0
    sent: int = 0
    failed: int = 0
    delivered: int = 0
    opened: int = 0
    machine_opened: int = 0
    clicked: int = 0
    bounced: int = 0
    complained: int = 0
    unsubscribed: int = 0
    answered: int = 0

    @classmethod
    def of(cls, dimension: str, value: str, counts: Mapping[str, int]) -> Funnel:
        return cls(dimension=dimension, value=value, **{s: counts.get(s, 0) for s in STAGES})

    # Rates are of the messages sent: every later stage can only happen to one.
    @property
    def delivery_rate(self) -> float | None:
        return _rate(self.delivered, self.sent)

    @property
    def open_rate(self) -> float | None:
        return _rate(self.opened, self.sent)

    @property
    def click_rate(self) -> float | None:
        return _rate(self.clicked, self.sent)

    @property
    def click_to_open_rate(self) -> float | None:
        return _rate(self.clicked, self.opened)

    @property
    def bounce_rate(self) -> float | None:
        return _rate(self.bounced, self.sent)

    @property
    def complaint_rate(self) -> float | None:
        return _rate(self.complained, self.sent)

    @property
    def unsubscribe_rate(self) -> float | None:
        return _rate(self.unsubscribed, self.sent)

    @property
    def answer_rate(self) -> float | None:
        return _rate(self.answered, self.sent)

    def counts(self) -> dict[str, int]:
        return {stage: getattr(self, stage) for stage in STAGES}

    def rates(self) -> dict[str, float | None]:
        return {name: getattr(self, name) for name in RATES}

    def as_dict(self) -> dict[str, Any]:
        return {"dimension": self.dimension, "value": self.value, **self.counts(), **self.rates()}


#: The rates a funnel reports, in order.
RATES = (
    "delivery_rate",
    "open_rate",
    "click_rate",
    "click_to_open_rate",
    "bounce_rate",
    "complaint_rate",
    "unsubscribe_rate",
    "answer_rate",
)


@attrs.frozen(kw_only=True)
class Metrics:
    """The funnel of every message queued in ``[since, until)``, in all and by dimension."""

    since: datetime | None
    until: datetime | None
    total: Funnel
    #: Each dimension asked for, with one funnel per value, in value order.
    by: Mapping[str, tuple[Funnel, ...]]
    #: Each touch with a goal and a holdout: its goal in treatment and control, the uplift.
    holdouts: tuple[HoldoutResult, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "total": self.total.as_dict(),
            "by": {dim: [f.as_dict() for f in funnels] for dim, funnels in self.by.items()},
            "holdouts": [h.as_dict() for h in self.holdouts],
        }


def measure(
    program: Program,
    store: Store,
    *,
    now: datetime,
    by: Iterable[str] = ALL_DIMENSIONS,
    since: datetime | None = None,
    until: datetime | None = None,
    segments: SegmentSet | None = None,
) -> Metrics:
    """The funnels of ``program``'s messages in ``store`` (see :class:`Metrics`).

    ``segment`` groups by each of the program's named segments (its members at ``now``; a
    contact in two segments counts in both). An unknown dimension is an InputError naming it.
    """
    dims = list(dict.fromkeys(by))
    unknown = [d for d in dims if d not in ALL_DIMENSIONS]
    if unknown:
        raise InputError(
            f"cannot group a funnel by {', '.join(map(repr, unknown))}: "
            f"choose among {', '.join(ALL_DIMENSIONS)}"
        )
    if since is not None and until is not None and until <= since:
        raise InputError(f"the range ends ({until.isoformat()}) before it starts ({since})")
    channels = {t.name: t.channel for t in program.touches}
    named = segments or program.segment_set()

    def counts(dim: str, segment: str | None = None) -> dict[str, dict[str, int]]:
        return funnel_counts(
            store,
            by=dim,
            names=FUNNEL,
            channels=channels,
            since=since,
            until=until,
            segment=segment,
            segments=named,
            now=now,
        )

    grouped: dict[str, tuple[Funnel, ...]] = {}
    for dim in dims:
        if dim == "segment":
            # One statement per segment: a contact in two segments counts in both.
            in_segments = {name: counts("all", name).get("all") for name in sorted(named)}
            grouped[dim] = tuple(
                Funnel.of(dim, name, found) for name, found in in_segments.items() if found
            )
        else:
            found = counts(dim)
            grouped[dim] = tuple(Funnel.of(dim, v, found[v]) for v in sorted(found))
    everything = counts("all").get("all", {})
    return Metrics(
        since=since,
        until=until,
        total=Funnel.of("all", "all", everything),
        by=grouped,
        holdouts=holdout_results(program, store, since=since, until=until),
    )
