"""A program's operating facts, read from its store: what ``onetomany status`` prints and the
Prometheus exporter (:mod:`onetomany.ops.prometheus`) serves.

Every figure is read on demand with a few grouped queries, so any process that can open the
store (a worker, a sidecar, a cron job) reports the same numbers.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import attrs

from onetomany.model.values import OutboxStatus
from onetomany.program import Program
from onetomany.store import Store
from onetomany.store.queries.source_syncs import sync_states
from onetomany.store.queries.status import attempts_since, last_tick, oldest_due, outbox_counts

__all__ = ["DEFAULT_WINDOW", "ChannelStatus", "SourceStatus", "Status", "read_status"]

#: How far back the recent attempts (and the error rate) look.
DEFAULT_WINDOW = timedelta(hours=1)
#: Outbox statuses still waiting to be sent.
QUEUED = (OutboxStatus.PENDING, OutboxStatus.CLAIMED)
#: Attempt statuses that are failures, for the error rate.
FAILURES = ("retrying", "dead", "unknown")


@attrs.frozen(kw_only=True)
class ChannelStatus:
    name: str
    #: Outbox rows by status (pending, claimed, sent, dead, skipped, unknown).
    rows: dict[str, int]
    #: Seconds the oldest row due now has waited (0: nothing due).
    oldest_due_seconds: float
    #: Delivery attempts in the window by status (sent, retrying, dead, unknown).
    attempts: dict[str, int]

    @property
    def queued(self) -> int:
        return sum(self.rows.get(s, 0) for s in QUEUED)

    @property
    def dead(self) -> int:
        return self.rows.get(OutboxStatus.DEAD, 0)

    @property
    def error_rate(self) -> float:
        """Failed attempts over all attempts in the window (0 with no attempts)."""
        total = sum(self.attempts.values())
        failed = sum(self.attempts.get(s, 0) for s in FAILURES)
        return failed / total if total else 0.0


@attrs.frozen(kw_only=True)
class SourceStatus:
    name: str
    #: Seconds since its last successful sync (None: never succeeded).
    staleness_seconds: float | None
    failing: bool
    #: The program's ``max_staleness`` for it, in seconds, if it declares one.
    max_staleness_seconds: float | None


@attrs.frozen(kw_only=True)
class Status:
    program: str
    at: datetime
    window_seconds: float
    channels: tuple[ChannelStatus, ...]
    sources: tuple[SourceStatus, ...]
    #: The last tick: when it ended (ISO), how many seconds it took, what it queued.
    last_tick: dict[str, Any] | None

    @property
    def queued(self) -> int:
        return sum(c.queued for c in self.channels)

    @property
    def dead(self) -> int:
        return sum(c.dead for c in self.channels)

    @property
    def oldest_due_seconds(self) -> float:
        return max((c.oldest_due_seconds for c in self.channels), default=0.0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "program": self.program,
            "at": self.at.isoformat(),
            "window_seconds": self.window_seconds,
            "queued": self.queued,
            "dead": self.dead,
            "oldest_due_seconds": self.oldest_due_seconds,
            "channels": {
                c.name: {
                    "rows": c.rows,
                    "queued": c.queued,
                    "dead": c.dead,
                    "oldest_due_seconds": c.oldest_due_seconds,
                    "attempts": c.attempts,
                    "error_rate": c.error_rate,
                }
                for c in self.channels
            },
            "sources": {
                s.name: {
                    "staleness_seconds": s.staleness_seconds,
                    "failing": s.failing,
                    "max_staleness_seconds": s.max_staleness_seconds,
                }
                for s in self.sources
            },
            "last_tick": self.last_tick,
        }


def read_status(
    program: Program, store: Store, *, now: datetime, window: timedelta = DEFAULT_WINDOW
) -> Status:
    """The program's facts at ``now``; channels are the program's and any the outbox names."""
    rows = outbox_counts(store)
    due = oldest_due(store, now=now)
    attempts = attempts_since(store, now - window)
    names = sorted(set(program.channels) | {c for c, _ in rows} | {c for c, _ in attempts})
    channels = tuple(
        ChannelStatus(
            name=name,
            rows={s: n for (c, s), n in sorted(rows.items()) if c == name},
            oldest_due_seconds=max(0.0, (now - due[name]).total_seconds()) if name in due else 0.0,
            attempts={s: n for (c, s), n in sorted(attempts.items()) if c == name},
        )
        for name in names
    )
    synced = sync_states(store)
    sources = []
    for name in sorted(set(program.sources) | set(synced)):
        state = synced.get(name)
        ok = state.succeeded_at if state is not None else None
        limit = program.freshness.get(name)
        sources.append(
            SourceStatus(
                name=name,
                staleness_seconds=None if ok is None else (now - ok).total_seconds(),
                failing=state is not None and state.failed,
                max_staleness_seconds=None if limit is None else limit.total_seconds(),
            )
        )
    return Status(
        program=program.name,
        at=now,
        window_seconds=window.total_seconds(),
        channels=channels,
        sources=tuple(sources),
        last_tick=last_tick(store, program.name),
    )
