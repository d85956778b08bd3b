"""SQLite's WAL checkpoints run in a thread of the store, not inside a commit on a request
path (onetomany.store.checkpoints)."""

from __future__ import annotations

import gc
import shutil
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from onetomany.model import Event
from onetomany.store import Store
from onetomany.store.checkpoints import SAFETY_NET_PAGES

NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)


def _events(count: int, start: int = 0) -> list[Event]:
    return [
        Event(name="page_viewed", account_id="a1", contact_id="c1", occurred_at=NOW, id=f"e{n}")
        for n in range(start, start + count)
    ]


def _rows_in_database_file(db: Path, copy: Path, *, while_writing: bool = False) -> int:
    """The events the database file holds by itself: what a checkpoint moved out of the WAL
    (the file is copied without its -wal, so SQLite cannot read the log). ``while_writing``:
    a checkpoint may be writing the file as it is copied, and a copy torn that way counts as
    nothing there yet."""
    shutil.copyfile(db, copy)
    with sqlite3.connect(copy) as conn:
        try:
            if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'events'").fetchone():
                return 0  # the migrations are still in the log too
            return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
        except sqlite3.DatabaseError:
            if while_writing:
                return 0
            raise


def _autocheckpoint(store: Store) -> int:
    with store.read() as conn:
        return int(conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one())


def test_a_write_reaches_the_database_file_from_the_checkpoint_thread(tmp_path):
    db = tmp_path / "store.db"
    store = Store(db, checkpoint_interval=0.05)
    try:
        # A commit would checkpoint only after SAFETY_NET_PAGES pages: far away.
        assert _autocheckpoint(store) == SAFETY_NET_PAGES
        store.add_events(_events(300), now=NOW)
        deadline = time.monotonic() + 10
        while _rows_in_database_file(db, tmp_path / "copy.db", while_writing=True) < 300:
            assert time.monotonic() < deadline, "the checkpoint thread never ran"
            time.sleep(0.05)
        store.add_events(_events(5, start=300), now=NOW)
    finally:
        store.close()
    # close() checkpoints what was written since the last round.
    assert _rows_in_database_file(db, tmp_path / "copy.db") == 305


def test_without_an_interval_sqlite_checkpoints_in_commits_as_usual(tmp_path):
    store = Store(tmp_path / "store.db", checkpoint_interval=None)
    try:
        store.add_events(_events(3), now=NOW)
        assert _autocheckpoint(store) == 1000  # SQLite's default
        assert store._checkpoints is None
    finally:
        store.close()


def test_an_in_memory_store_runs_no_checkpoint_thread():
    store = Store("sqlite://")
    try:
        assert store._checkpoints is None
    finally:
        store.close()


def test_a_store_dropped_without_close_lets_its_thread_end(tmp_path):
    store = Store(tmp_path / "store.db", checkpoint_interval=0.02)
    store.add_events(_events(2), now=NOW)
    assert store._checkpoints is not None
    thread = store._checkpoints._thread
    assert thread is not None and thread.is_alive()
    del store
    gc.collect()
    thread.join(5)
    assert not thread.is_alive()


def test_a_checkpoint_refused_is_tried_again_at_the_next_round(tmp_path):
    db = tmp_path / "store.db"
    store = Store(db, checkpoint_interval=0.05)
    try:
        assert store._checkpoints is not None
        store._checkpoints.engine = sa.create_engine(f"sqlite:///{tmp_path}/no/such/dir/x.db")
        store.add_events(_events(1), now=NOW)
        assert store._checkpoints.checkpoint() is False
        assert store._checkpoints._written.is_set()
    finally:
        store._checkpoints.engine = store.engine
        store.close()
    assert _rows_in_database_file(db, tmp_path / "copy.db") == 1
