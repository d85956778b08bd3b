"""Retention: old rows archived to gzip'd JSON lines, then removed, never what a trigger
still needs.

**The rule.** With ``[retention]`` (:mod:`onetomany.rules.retention`) ages set:

* An **event** goes when it is older than its name's retention, the tick has read it (it is
  at or before the event cursor), it is neither the first nor the last event of its name for
  its contact nor for its account (an absence and ``last()`` / ``days_since()`` read the last;
  a cadence starts at the first), and no cadence schedule is anchored on it. An event name a
  segment or journey counts with ``count(name)`` and no window is kept for ever; one counted
  with ``count(name, days=N)`` is kept at least N days, and a conversion goal's event at
  least its ``within_days`` (the measurement counts it against sends that old). Every event is
  kept at least as long as the longest engagement trigger waits (opens and clicks answer a
  sent message).
* A **finished outbox row** (sent, dead or skipped) older than ``deliveries`` has its
  payload and attempts (``deliveries`` rows) archived and removed. The row stays, emptied
  and marked ``archived_at``: it is the record that its idempotency key was queued, so an
  old event synced again (``sync --full``), or an absence whose last event is the same,
  never queues the touch a second time. Rows are kept at least as long as the longest
  engagement trigger waits.
* A **decision** older than ``decisions`` goes (30 days by default); without an archive
  folder each tick does this too, as it always has.
* A **cap reservation** older than its cap's window goes (it counts for nothing any more),
  and so does every reservation of a cap the program no longer declares. They are derived
  data and are not archived.

Archives are written and flushed to disk before the rows they hold are removed; a crash
between the two leaves rows archived twice (the next run writes them again), never lost.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import attrs

from onetomany.errors import ConfigError
from onetomany.program import Program
from onetomany.rules.segments import parse
from onetomany.rules.segments.ast import Count, walk
from onetomany.rules.triggers import AbsenceTrigger, EngagementTrigger
from onetomany.store import Store
from onetomany.store.queries import retention as q
from onetomany.store.store import EventPosition

__all__ = ["PruneReport", "counted_events", "prune"]

#: Rows read, archived and removed at a time.
BATCH = 1000


@attrs.frozen(kw_only=True)
class PruneReport:
    """What :func:`prune` removed (or, with ``dry_run``, would remove), per kind."""

    events: int = 0
    deliveries: int = 0
    decisions: int = 0
    cap_reservations: int = 0
    #: The archive files written.
    archives: tuple[Path, ...] = ()
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "deliveries": self.deliveries,
            "decisions": self.decisions,
            "cap_reservations": self.cap_reservations,
            "archives": [str(p) for p in self.archives],
            "dry_run": self.dry_run,
        }


def _expressions(program: Program) -> Iterator[str]:
    yield from program.segments.values()
    for journey in program.journeys.values():
        yield from journey.expressions().values()
    for touch in program.touches:
        if touch.segment is not None and touch.segment not in program.segments:
            yield touch.segment
    for _, trigger in program.touches_of(AbsenceTrigger):
        yield trigger.condition()


def counted_events(program: Program) -> dict[str, int | None]:
    """Event names that segments and journeys count, with the longest window each is counted
    over in days (None: ``count()`` with no window, over all time)."""
    windows: dict[str, int | None] = {}
    for text in _expressions(program):
        try:
            tree = parse(text)
        except ConfigError:
            continue  # the program's own checks report it; nothing here to keep for it
        for node in walk(tree):
            if not isinstance(node, Count):
                continue
            if node.event in windows and windows[node.event] is None:
                continue
            if node.days is None:
                windows[node.event] = None
            else:
                windows[node.event] = max(node.days, windows.get(node.event) or 0)
    return windows


def goal_events(program: Program) -> dict[str, int]:
    """The events of the touches' conversion goals (their own, else the program's), each with
    the longest window (days) a goal gives it: a conversion counts such an event up to that
    long after the send."""
    windows: dict[str, int] = {}
    for touch in program.touches:
        goal = program.goal_of(touch)
        if goal is not None:
            windows[goal.event] = max(goal.within_days, windows.get(goal.event, 0))
    return windows


def _engagement_floor(program: Program) -> timedelta:
    days = [trigger.days for _, trigger in program.touches_of(EngagementTrigger)]
    # A day's margin: the trigger fires on the tick after the wait, not on the dot.
    return timedelta(days=max(days) + 1) if days else timedelta(0)


class _Archive:
    """One gzip'd JSON-lines file per kind and run, in ``folder``; each batch is flushed to
    disk before the caller removes its rows."""

    def __init__(self, folder: Path, now: datetime) -> None:
        self.folder = folder
        self.stamp = now.strftime("%Y%m%dT%H%M%SZ")
        self.files: list[Path] = []

    def write(self, kind: str, rows: Sequence[Mapping[str, Any]]) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            path = self.folder / f"{kind}-{self.stamp}.jsonl.gz"
            # Append mode: each batch is a gzip member, and the members read as one stream.
            with path.open("ab") as raw:
                with gzip.GzipFile(fileobj=raw, mode="ab") as out:
                    for row in rows:
                        out.write(json.dumps(row, default=_plain, sort_keys=True).encode())
                        out.write(b"\n")
                raw.flush()
                os.fsync(raw.fileno())
        except OSError as exc:
            raise ConfigError(f"cannot write the archive {self.folder}: {exc}") from exc
        if path not in self.files:
            self.files.append(path)


def _plain(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def prune(
    program: Program,
    store: Store,
    *,
    now: datetime,
    through: EventPosition,
    archive: Path | None = None,
    dry_run: bool = False,
) -> PruneReport:
    """Archive (when ``archive`` is a folder) and remove what ``program.retention`` lets go,
    by the rule in this module's docstring. ``through`` is the tick's event cursor: no event
    after it is touched. ``dry_run`` counts and writes nothing."""
    retention = program.retention
    floor = _engagement_floor(program)
    archiver = _Archive(archive, now) if archive is not None and not dry_run else None

    def cutoff(age: timedelta | None) -> datetime | None:
        return None if age is None else now - max(age, floor)

    # Events: per name, then the rest; a counted name waits for its window, or forever, and a
    # goal's event for the goal's days.
    counted = counted_events(program)
    for name, days in goal_events(program).items():
        if counted.get(name, 0) is not None:
            counted[name] = max(days, counted.get(name) or 0)
    per_name: dict[str, datetime] = {}
    keep: set[str] = set()
    for name in set(retention.event) | set(counted):
        at = cutoff(retention.of_event(name))
        window = counted.get(name, 0)
        if at is None or (name in counted and window is None):
            keep.add(name)
        else:
            per_name[name] = min(at, now - timedelta(days=window or 0))
    events = _drain(
        lambda after: q.old_events(
            store,
            before=per_name,
            default=cutoff(retention.events),
            keep=keep,
            through=through,
            after=after,
            limit=BATCH,
        ),
        "events",
        lambda rows: q.delete_events(store, [r["seq"] for r in rows]),
        archiver,
        dry_run,
    )
    deliveries = 0
    before = cutoff(retention.deliveries)
    if before is not None:
        deliveries = _drain(
            lambda after: q.old_finished_rows(store, before=before, after=after, limit=BATCH),
            "deliveries",
            lambda rows: q.archive_outbox(store, [r["id"] for r in rows], now=now),
            archiver,
            dry_run,
        )
    decisions = _drain(
        lambda after: q.old_decisions(
            store, before=now - retention.decisions, after=after, limit=BATCH
        ),
        "decisions",
        lambda rows: q.delete_decisions(store, [r["id"] for r in rows]),
        archiver,
        dry_run,
    )
    windows = {name: now - cap.window for name, cap in program.caps.items()}
    reservations = q.prune_cap_reservations(store, windows, dry_run=dry_run)
    return PruneReport(
        events=events,
        deliveries=deliveries,
        decisions=decisions,
        cap_reservations=reservations,
        archives=tuple(archiver.files) if archiver else (),
        dry_run=dry_run,
    )


def _drain(
    select: Callable[[int], list[dict[str, Any]]],
    kind: str,
    remove: Callable[[list[dict[str, Any]]], int],
    archiver: _Archive | None,
    dry_run: bool,
) -> int:
    """Select a batch past the last one, archive it, remove it; until a batch comes back
    short. A dry run pages through the same selection and only counts."""
    total = 0
    after = 0
    while True:
        rows = select(after)
        if not rows:
            return total
        after = max(int(r.get("seq", r.get("id", 0))) for r in rows)
        if dry_run:
            total += len(rows)
        else:
            if archiver is not None:
                archiver.write(kind, rows)
            total += remove(rows)
        if len(rows) < BATCH:
            return total
