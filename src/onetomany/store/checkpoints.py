"""SQLite's WAL moved into the database file by a thread of its own, not by a commit.

In WAL mode SQLite copies the log back into the database file (a *checkpoint*) when the log
passes ``wal_autocheckpoint`` pages, inside the commit that crossed the mark: that commit
then waits for the copy and its fsyncs, 10 to 25 ms on a busy disk, and on a request path
every other thread of the process queued for its turn to write waits behind it. A worker
dispatching writes the log fast enough for that to land on ``track()`` every few seconds,
which set its p99 (docs/benchmarks.md, "track() latency").

So a store whose writes go through :meth:`Store.write` raises SQLite's mark far out of the
way (it stays as a safety net) and checkpoints every ``interval`` seconds after a write from
this thread, holding no lock a writer waits for: a ``PASSIVE`` checkpoint copies what no
reader still needs and never blocks a writer or a reader. Another process checkpointing at
the same time makes this one skip a round (SQLite answers busy), which is harmless.
"""

from __future__ import annotations

import logging
import threading
import weakref

import sqlalchemy as sa
from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)

#: Seconds between checkpoints while the store is being written.
DEFAULT_CHECKPOINT_INTERVAL = 0.25
#: ``PRAGMA wal_autocheckpoint`` on the store's connections while the thread checkpoints:
#: a commit checkpoints only if the log grew this far (pages of 4 KiB; about 160 MB).
SAFETY_NET_PAGES = 40_000


class Checkpoints:
    """Checkpoints ``engine``'s SQLite database every ``interval`` seconds after a write."""

    def __init__(self, engine: Engine, interval: float = DEFAULT_CHECKPOINT_INTERVAL) -> None:
        self.engine = engine
        self.interval = interval
        self._written = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._starting = threading.Lock()

    def wrote(self) -> None:
        """A write committed: checkpoint at the next round (the thread starts on the first)."""
        self._written.set()
        if self._thread is None:
            with self._starting:
                if self._thread is None and not self._stop.is_set():
                    # The thread holds this object weakly, so a store dropped without close()
                    # does not keep a thread (and its connections) alive.
                    self._thread = threading.Thread(
                        target=_run,
                        args=(weakref.ref(self), self._stop, self.interval),
                        name="onetomany-wal-checkpoint",
                        daemon=True,
                    )
                    self._thread.start()

    def checkpoint(self) -> bool:
        """One ``PASSIVE`` checkpoint now; ``False`` if SQLite could not take it (another
        checkpoint running, the file gone), which the next round tries again."""
        self._written.clear()
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        except sa.exc.DBAPIError as exc:
            log.debug("WAL checkpoint skipped: %s", exc.orig)
            self._written.set()
            return False
        return True

    def close(self) -> None:
        """Stop the thread, after a last checkpoint if anything was written since one."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(10)
        if self._written.is_set():
            self.checkpoint()


def _run(ref: weakref.ref[Checkpoints], stop: threading.Event, interval: float) -> None:
    while not stop.wait(interval):
        checkpoints = ref()
        if checkpoints is None:
            return
        if checkpoints._written.is_set():
            checkpoints.checkpoint()
        del checkpoints
