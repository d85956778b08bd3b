"""track() from many threads while another process writes: SQLite's one write lock is taken
in turns (threads of one process queue in the store, other processes are polled for every
millisecond), and nothing is lost or refused while the waits stay within busy_timeout."""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from onetomany import Engine, FrozenClock, Program
from onetomany.errors import StoreError
from onetomany.store import Store

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _hold_write_lock(path: Path, stop: threading.Event, hold: float, pause: float) -> None:
    """Another writer: takes the file's write lock for ``hold`` seconds, again and again."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=10)
    try:
        while not stop.is_set():
            conn.execute("BEGIN IMMEDIATE")
            time.sleep(hold)
            conn.execute("COMMIT")
            time.sleep(pause)
    finally:
        conn.close()


def test_threads_tracking_beside_another_writer_store_every_event(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    engine = Engine(Program(name="p"), store=Store(path), clock=FrozenClock(NOW))
    stop = threading.Event()
    other = threading.Thread(target=_hold_write_lock, args=(path, stop, 0.005, 0.002))
    other.start()
    errors: list[BaseException] = []

    def track(k: int) -> None:
        try:
            for i in range(40):
                engine.track("page_viewed", contact_id=f"c{k}", id=f"e{k}-{i}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=track, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    other.join()
    assert errors == []
    assert engine.store.count("events") == 8 * 40
    engine.close()


def test_a_thread_waiting_past_busy_timeout_for_its_turn_is_refused_by_name(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "store.db", busy_timeout=0.2)
    entered, release = threading.Event(), threading.Event()

    def hold() -> None:
        with store.write():
            entered.set()
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    entered.wait(5)
    try:
        with pytest.raises(StoreError, match=r"store\.db.*more than 0\.2 s"), store.write():
            pass
    finally:
        release.set()
        holder.join()
    with store.write():  # the turn is free again
        pass
