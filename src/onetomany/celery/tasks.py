"""The tasks, the beat schedule and the channel router (see :mod:`onetomany.celery`)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs

from onetomany.delivery.dispatcher import DispatchReport
from onetomany.engine import Engine
from onetomany.program import load_program

#: Builds the engine a worker process uses; called once per process, after a fork.
EngineFactory = Callable[[], Engine]

#: The queue the tick, sync and unrouted dispatch tasks go to.
DEFAULT_QUEUE = "onetomany"


def queue_for(channel: str, *, prefix: str = DEFAULT_QUEUE) -> str:
    """The queue a channel's dispatch tasks go to: ``"onetomany.email"`` for ``email``."""
    return f"{prefix}.{channel}"


class _PerProcess:
    """One engine per worker process, built on first use.

    Celery's prefork pool forks after the app is imported: an engine (its database pool, its
    channels' connections) built before the fork must not be shared, so the engine is keyed
    by the process id and a forked child builds its own.
    """

    def __init__(self, factory: EngineFactory) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._engines: dict[int, Engine] = {}

    def get(self) -> Engine:
        pid = os.getpid()
        with self._lock:
            engine = self._engines.get(pid)
            if engine is None:
                engine = self._engines[pid] = self._factory()
            return engine

    def close(self) -> None:
        with self._lock:
            engine = self._engines.pop(os.getpid(), None)
        if engine is not None:
            engine.close()


@attrs.frozen(kw_only=True)
class OnetomanyTasks:
    """The registered tasks (Celery task objects) and what routing needs to know."""

    sync: Any
    tick: Any
    dispatch: Any
    #: The program's channel names, each with a queue of its own (:func:`queue_for`).
    channels: tuple[str, ...]
    queue: str = DEFAULT_QUEUE
    engines: _PerProcess = attrs.field(repr=False)

    def queues(self) -> list[str]:
        """Every queue the tasks use: the main one and one per channel."""
        return [self.queue, *(queue_for(c, prefix=self.queue) for c in self.channels)]

    def route(
        self, name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any], *_: Any, **__: Any
    ) -> dict[str, str] | None:
        """A Celery router (``app.conf.task_routes = (tasks.route,)``): a dispatch for one
        channel goes to that channel's queue; the other tasks to the main queue."""
        if name == self.dispatch.name:
            channels = kwargs.get("channels") or (args[1] if len(args) > 1 else None)
            if channels is not None and len(channels) == 1:
                return {"queue": queue_for(channels[0], prefix=self.queue)}
            return {"queue": self.queue}
        if name in (self.sync.name, self.tick.name):
            return {"queue": self.queue}
        return None

    def dispatch_channel(self, channel: str, limit: int | None = None) -> Any:
        """Send a dispatch for ``channel`` to its own queue; returns Celery's AsyncResult."""
        if channel not in self.channels:
            known = ", ".join(self.channels) or "none"
            raise ValueError(f"unknown channel {channel!r} (the program has: {known})")
        return self.dispatch.apply_async(
            kwargs={"channels": [channel], "limit": limit},
            queue=queue_for(channel, prefix=self.queue),
        )


def _factory(program: str | Path | EngineFactory) -> tuple[EngineFactory, tuple[str, ...]]:
    if callable(program):
        return program, ()
    path = Path(program)
    channels = tuple(load_program(path).channels)  # loading now fails fast on a bad program

    def build() -> Engine:
        return Engine(load_program(path))

    return build, channels


def register(
    app: Any,
    program: str | Path | EngineFactory,
    *,
    channels: Iterable[str] | None = None,
    prefix: str = "onetomany",
    queue: str = DEFAULT_QUEUE,
) -> OnetomanyTasks:
    """Register the tasks ``sync``, ``tick`` and ``dispatch`` (named ``"<prefix>.tick"``, ...)
    on ``app``.

    :param program: a program folder (or its ``program.toml``), or a callable that builds the
        :class:`~onetomany.engine.Engine` (to give it a store URL, a clock, channels...). It is
        called once per worker process, on the first task.
    :param channels: the channels that get a queue each; by default the program's (a
        factory gives none unless they are named here).

    The tasks return plain JSON values (counts), so any result backend can keep them. They
    are declared ``acks_late``: a worker killed mid-task has its message delivered again, and
    the rerun is safe (the module docstring says why).
    """
    factory, found = _factory(program)
    engines = _PerProcess(factory)
    names = tuple(channels) if channels is not None else found

    def sync(names: list[str] | None = None, full: bool = False) -> dict[str, dict[str, int]]:
        """Pull the sources (all, or those named); returns what each stored."""
        reports = engines.get().sync(names, full=full)
        return {
            r.source: {"accounts": r.accounts, "contacts": r.contacts, "events": r.new_events}
            for r in reports
        }

    def tick() -> int:
        """Update tiers, segments and journeys, then queue the touches now due."""
        engine = engines.get()
        engine.update_tiers()
        engine.update_segments()
        engine.update_journeys()
        return engine.tick()

    def dispatch(limit: int | None = None, channels: list[str] | None = None) -> dict[str, Any]:
        """Send what is due (only rows of ``channels`` when given); returns the counts."""
        report = engines.get().dispatch(limit, channels=channels)
        return report_dict(report)

    options = {"acks_late": True}
    return OnetomanyTasks(
        sync=app.task(name=f"{prefix}.sync", **options)(sync),
        tick=app.task(name=f"{prefix}.tick", **options)(tick),
        dispatch=app.task(name=f"{prefix}.dispatch", **options)(dispatch),
        channels=names,
        queue=queue,
        engines=engines,
    )


def report_dict(report: DispatchReport) -> dict[str, Any]:
    """A dispatch's report as plain JSON values (the per-touch breakdown left out)."""
    return {
        "claimed": report.claimed,
        "sent": report.sent,
        "retrying": report.retrying,
        "dead": report.dead,
        "unknown": report.unknown,
        "stale": report.stale,
        "unrecorded": report.unrecorded,
        "held": report.held,
        "stopped": report.stopped,
        "skipped": dict(report.skipped),
        "deferred": dict(report.deferred),
    }


def beat_schedule(
    tasks: OnetomanyTasks,
    *,
    tick: timedelta = timedelta(minutes=1),
    dispatch: timedelta = timedelta(seconds=15),
    sync: timedelta | None = timedelta(minutes=15),
) -> dict[str, dict[str, Any]]:
    """A ``beat_schedule`` for ``app.conf``: a tick, a sync (``None``: no sync entry), and
    one dispatch per channel on that channel's queue (one for everything when the tasks
    know no channels).

    Each entry expires after its own interval, so a backlog of beats while the workers are
    down does not pile up: the next beat does the same work.
    """
    entries: dict[str, dict[str, Any]] = {
        "onetomany-tick": _entry(tasks.tick, tick, tasks.queue),
    }
    if sync is not None:
        entries["onetomany-sync"] = _entry(tasks.sync, sync, tasks.queue)
    if tasks.channels:
        for channel in tasks.channels:
            entries[f"onetomany-dispatch-{channel}"] = _entry(
                tasks.dispatch,
                dispatch,
                queue_for(channel, prefix=tasks.queue),
                kwargs={"channels": [channel]},
            )
    else:
        entries["onetomany-dispatch"] = _entry(tasks.dispatch, dispatch, tasks.queue)
    return entries


def _entry(
    task: Any, every: timedelta, queue: str, kwargs: dict[str, Any] | None = None
) -> dict[str, Any]:
    if every <= timedelta(0):
        raise ValueError(f"a beat interval must be positive, not {every}")
    return {
        "task": task.name,
        "schedule": every,
        "kwargs": kwargs or {},
        "options": {"queue": queue, "expires": every.total_seconds()},
    }
