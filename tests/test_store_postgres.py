"""What only PostgreSQL does: concurrent workers claiming with SKIP LOCKED, session time zones.

The guarantees both databases share are tested in ``test_store.py``, on each of them. A
throwaway cluster is started once per session (``tests/postgres.py``); every test gets a
database of its own. Without PostgreSQL installed these tests skip, except in CI, where they
fail.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from alembic import command

from onetomany import Event
from onetomany.errors import StoreError
from onetomany.model import OutboxStatus
from onetomany.store import EventPosition, Store, migrate

from .test_store import LEASE, NOW, touch


@pytest.fixture
def pg_store(pg_url: str) -> Iterator[Store]:
    store = Store(pg_url)
    yield store
    store.close()


def test_a_database_that_does_not_exist_is_a_clear_error(postgres_url):
    url = sa.make_url(postgres_url).set(database=f"missing_{uuid.uuid4().hex}")
    with pytest.raises(StoreError, match="cannot open or migrate store"):
        Store(url.render_as_string(hide_password=False))


def test_a_read_fails_as_unavailable_only_when_the_database_is_out_of_reach(
    pg_store, postgres_admin
):
    # A statement that is wrong is raised as it is: waiting would not change it.
    with pytest.raises(sa.exc.DataError) as wrong, pg_store.read() as conn:
        conn.execute(sa.text("SELECT 1 / 0"))
    assert wrong.value.__cause__ is not wrong.value
    # A database that turns connections away is a StoreError, which callers may wait out.
    name = sa.make_url(pg_store.url).database
    with postgres_admin.connect() as admin:
        admin.execute(sa.text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false'))
        admin.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :name AND pid <> pg_backend_pid()"
            ),
            {"name": name},
        )
        try:
            with pytest.raises(StoreError, match="cannot read from store"):
                pg_store.get_contacts(["c1"])
        finally:
            admin.execute(sa.text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true'))
    assert pg_store.get_contacts(["c1"]) == {}


def test_a_claim_skips_rows_another_transaction_has_locked(pg_store):
    pg_store.enqueue([touch(f"k{i}") for i in range(4)], now=NOW)
    # lock_timeout: a claim that waited for the locks would fail rather than hang the test.
    other = Store(f"{pg_store.url}?options=-c%20lock_timeout%3D3000", migrate=False)
    with contextlib.closing(other), pg_store.engine.connect() as holder:
        # Another worker mid-claim: it holds row locks on k0 and k1 until it ends.
        held = holder.execute(
            sa.text(
                "SELECT idempotency_key FROM outbox WHERE idempotency_key IN ('k0', 'k1') "
                "FOR UPDATE"
            )
        ).scalars()
        assert sorted(held) == ["k0", "k1"]
        got = other.claim(worker="w2", now=NOW, lease=LEASE, limit=10)
        assert [r.idempotency_key for r in got] == ["k2", "k3"]
        holder.rollback()
        after = other.claim(worker="w2", now=NOW, lease=LEASE, limit=10)
        assert [r.idempotency_key for r in after] == ["k0", "k1"]


def test_concurrent_claims_take_every_row_exactly_once(pg_store):
    rows, workers, batch = 300, 6, 7
    assert pg_store.enqueue([touch(f"k{i:03}") for i in range(rows)], now=NOW) == rows
    start = threading.Barrier(workers)

    def work(worker: str) -> list[str]:
        store = Store(pg_store.url, migrate=False)
        taken: list[str] = []
        try:
            store.claim(worker=worker, now=NOW - timedelta(days=1), lease=LEASE, limit=1)  # warm
            start.wait(timeout=30)
            while claimed := store.claim(worker=worker, now=NOW, lease=LEASE, limit=batch):
                assert len(claimed) <= batch
                assert {r.status for r in claimed} == {OutboxStatus.CLAIMED}
                taken += [r.idempotency_key for r in claimed]
        finally:
            store.close()
        return taken

    names = [f"w{i}" for i in range(workers)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = dict(zip(names, pool.map(work, names), strict=True))

    claims = Counter(key for taken in results.values() for key in taken)
    assert [key for key, n in claims.items() if n > 1] == [], "rows claimed by two workers"
    assert sorted(claims) == [f"k{i:03}" for i in range(rows)], "rows lost"
    assert sum(1 for taken in results.values() if taken) >= 2, "the claims never overlapped"
    owner = {key: worker for worker, taken in results.items() for key in taken}
    stored = pg_store.outbox_rows()
    assert {r.status for r in stored} == {OutboxStatus.CLAIMED}
    with pg_store.engine.connect() as conn:
        claimed_by = dict(
            conn.execute(sa.text("SELECT idempotency_key, claimed_by FROM outbox")).all()
        )
    assert claimed_by == owner
    assert pg_store.claim(worker="late", now=NOW, lease=LEASE, limit=10) == []


def test_aware_datetimes_come_back_as_the_same_instant_in_utc(pg_url):
    # A session time zone other than UTC must not shift anything.
    store = Store(f"{pg_url}?options=-c%20TimeZone%3DAsia/Tokyo")
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SHOW TimeZone")).scalar() == "Asia/Tokyo"
    local = datetime(2026, 3, 29, 2, 30, tzinfo=timezone(timedelta(hours=-5)))
    store.enqueue([touch("k", local)], now=local)
    store.add_events([Event(id="e", name="login", occurred_at=local, contact_id="c1")], now=local)

    (row,) = store.outbox_rows()
    assert row.available_at == local
    assert row.available_at.tzinfo is UTC
    assert row.available_at.hour == 7
    (_, event) = store.events_after(0)[0]
    assert event.occurred_at == local
    assert event.occurred_at.tzinfo is UTC
    assert store.next_due() == local
    assert store.next_due().tzinfo is UTC
    with store.engine.connect() as conn:
        raw = conn.execute(sa.text("SELECT available_at FROM outbox")).scalar_one()
    assert raw == datetime(2026, 3, 29, 7, 30)  # stored as naive UTC

    with pytest.raises(sa.exc.StatementError, match="naive datetime"):
        store.enqueue([touch("naive", datetime(2026, 1, 1))], now=NOW)
    store.close()


def test_an_event_committed_late_with_a_lower_seq_is_not_stepped_over(pg_store):
    """Two writers: the first takes the lower seq and commits last. Read by seq alone, a
    reader between the two commits would move past the first writer's event for good."""
    early = Event(id="early", name="login", occurred_at=NOW, contact_id="c1")
    late = Event(id="late", name="login", occurred_at=NOW, contact_id="c2")
    with pg_store.engine.connect() as writer:
        pg_store._add_events(writer, [early], NOW)  # its seq taken, not committed yet
        pg_store.add_events([late], now=NOW)  # a higher seq, committed
        # The reader sees nothing yet: what commits later must sort after what it reads.
        assert pg_store.events_after(0) == []
        writer.commit()

    read = pg_store.events_after(0)
    assert [e.id for _, e in read] == ["early", "late"]
    (early_at, _), (late_at, _) = read
    assert early_at.seq < late_at.seq and early_at < late_at
    assert pg_store.events_after(read[-1][0]) == []
    assert EventPosition.parse(str(late_at)) == late_at


def test_positions_stored_before_the_transaction_was_recorded_still_hold(pg_url):
    """A store written by a version that ordered events by seq alone: its events get
    transaction 0, and its cursor (a plain seq) resumes where it stopped."""
    store = Store(pg_url)
    with store.engine.begin() as conn:
        command.downgrade(migrate._config(conn), "0003")
        for seq in (1, 2):
            conn.execute(
                sa.text(
                    "INSERT INTO events (seq, id, name, contact_id, occurred_at, received_at, "
                    "properties) VALUES (:seq, :id, 'login', 'c1', :at, :at, '{}')"
                ),
                {"seq": seq, "id": f"old{seq}", "at": NOW.replace(tzinfo=None)},
            )
        conn.execute(sa.text("SELECT setval('events_seq_seq', 2)"))
        migrate.upgrade(conn)
    store.add_events([Event(id="new", name="login", occurred_at=NOW, contact_id="c1")], now=NOW)

    after_old_cursor = store.events_after(EventPosition.parse("1"))
    assert [e.id for _, e in after_old_cursor] == ["old2", "new"]
    assert [position.txid == 0 for position, _ in after_old_cursor] == [True, False]
    store.close()


def test_workers_opening_a_fresh_database_together_migrate_it_once(pg_url):
    # Without the migrations' advisory lock, workers create the same tables at once and
    # fail with duplicate-table errors or wait on each other for good.
    barrier = threading.Barrier(6)
    revisions: list[str | None] = []

    def open_store() -> None:
        barrier.wait()
        store = Store(pg_url)
        try:
            with store.engine.connect() as conn:
                revisions.append(migrate.current(conn))
        finally:
            store.close()

    workers = [threading.Thread(target=open_store, daemon=True) for _ in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert revisions == [migrate.head()] * 6
