"""The store on a real PostgreSQL: the SQLite tests' guarantees, plus concurrent claims.

A throwaway cluster is started once per session (see ``tests/postgres.py``); every test gets
a database of its own. Without PostgreSQL installed these tests skip, except in CI (``$CI``
set), where they fail.
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
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from onetomany import Account, Contact, Event
from onetomany.errors import StoreError
from onetomany.model import Delivery, OutboxStatus
from onetomany.store import NewTouch, Store
from onetomany.store.migrate import head
from onetomany.store.schema import metadata

from .postgres import PostgresUnavailable, running_postgres, unavailable

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL cluster for the session, as the URL of its test database."""
    with contextlib.ExitStack() as stack:
        try:
            cluster = stack.enter_context(running_postgres())
        except PostgresUnavailable as exc:
            unavailable(str(exc))
        yield cluster.url()


@pytest.fixture(scope="session")
def postgres_admin(postgres_url: str) -> Iterator[sa.Engine]:
    """An AUTOCOMMIT engine on the cluster, for CREATE/DROP DATABASE."""
    engine = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_url(postgres_url: str, postgres_admin: sa.Engine) -> Iterator[str]:
    """The URL of a fresh, empty database, dropped after the test."""
    name = f"t_{uuid.uuid4().hex}"
    with postgres_admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield sa.make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    with postgres_admin.connect() as conn:
        # FORCE: a test that failed half-way may have left a connection open.
        conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))


@pytest.fixture
def pg_store(pg_url: str) -> Iterator[Store]:
    """A migrated store on a fresh PostgreSQL database."""
    store = Store(pg_url)
    yield store
    store.close()


# -- values (as in test_store.py) ------------------------------------------------------------


def _touch(key: str, at: datetime = NOW) -> NewTouch:
    return NewTouch(
        idempotency_key=key,
        program="p",
        touch="t",
        channel="email",
        template="welcome",
        contact_id="c1",
        account_id="a1",
        available_at=at,
    )


def _delivery(row_id: int, key: str, status: str, *, attempt: int = 1, **extra: object) -> Delivery:
    # As the dispatcher builds it: the touch, contact and account come from the outbox row.
    return Delivery(
        outbox_id=row_id,
        idempotency_key=key,
        channel="email",
        attempt=attempt,
        status=status,
        at=NOW + timedelta(minutes=1),
        touch="t",
        contact_id="c1",
        account_id="a1",
        **extra,  # type: ignore[arg-type]
    )


# -- migrations -----------------------------------------------------------------------------


def test_migrations_apply_on_first_use_and_match_the_schema(pg_url):
    store = Store(pg_url)
    assert store.dialect == "postgresql"
    with store.engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == head()
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []
    assert store.upgrade() == []
    store.close()
    reopened = Store(pg_url)
    assert reopened.upgrade() == []
    reopened.close()


def test_a_database_that_does_not_exist_is_a_clear_error(postgres_url):
    url = sa.make_url(postgres_url).set(database=f"missing_{uuid.uuid4().hex}")
    with pytest.raises(StoreError, match="cannot open or migrate store"):
        Store(url.render_as_string(hide_password=False))


# -- profiles and events --------------------------------------------------------------------


def test_profiles_are_upserted_and_events_deduplicated(pg_store):
    contact = Contact(id="c1", account_id="a1", email="ana@acme.test", role="admin")
    pg_store.save_profiles(
        accounts=[Account(id="a1", name="Acme", traits={"plan": "pro"})],
        contacts=[contact],
        now=NOW,
    )
    pg_store.save_profiles(accounts=[Account(id="a1", name="Acme Inc", traits={})], now=NOW)
    assert pg_store.get_account("a1") == Account(id="a1", name="Acme Inc", traits={})
    assert pg_store.get_contact("c1") == contact
    assert pg_store.contacts_of("a1") == [contact]
    assert pg_store.count("accounts") == 1
    event = Event(id="e1", name="login", occurred_at=NOW, contact_id="c1")
    assert pg_store.add_events([event, event], now=NOW) == 1
    assert pg_store.add_events([event], now=NOW) == 0
    assert [e for _, e in pg_store.events_after(0)] == [event]


def test_contacts_are_upserted_and_json_round_trips(pg_store):
    traits = {"plan": "pro", "seats": 12, "tags": ["a", "ü"], "nested": {"x": None}}
    first = Contact(id="c1", account_id="a1", email="ana@acme.test", traits=traits)
    pg_store.save_profiles(contacts=[first], now=NOW, cursor=("crm", "page-1"))
    second = Contact(
        id="c1", account_id="a1", name="Ana", locale="pt-BR", timezone="America/Sao_Paulo",
        consent={"email": True}, traits={"plan": "team"},
    )  # fmt: skip
    pg_store.save_profiles(contacts=[second], now=NOW, cursor=("crm", "page-2"))
    assert pg_store.get_contact("c1") == second
    assert pg_store.get_cursor("crm") == "page-2"
    pg_store.save_profiles(contacts=[first], now=NOW)
    assert pg_store.get_contact("c1").traits == traits


def test_events_after_pages_in_order(pg_store):
    events = [
        Event(id=f"e{i}", name="login", occurred_at=NOW + timedelta(seconds=i), account_id="a1")
        for i in range(5)
    ]
    assert pg_store.add_events(events, now=NOW) == 5
    first = pg_store.events_after(0, limit=3)
    assert [e for _, e in first] == events[:3]
    rest = pg_store.events_after(first[-1][0])
    assert [e for _, e in rest] == events[3:]


# -- outbox ---------------------------------------------------------------------------------


def test_outbox_keys_are_unique_and_claims_are_leased(pg_store):
    assert pg_store.enqueue([_touch("k1"), _touch("k2"), _touch("k1")], now=NOW) == 2
    assert pg_store.enqueue([_touch("k2")], now=NOW) == 0
    assert pg_store.enqueue([_touch("k3")], now=NOW, cursor=("tick", "1")) == 1
    assert pg_store.get_cursor("tick") == "1"
    first = pg_store.claim(worker="w1", now=NOW, lease=LEASE, limit=10)
    assert [r.idempotency_key for r in first] == ["k1", "k2", "k3"]
    assert {r.status for r in first} == {OutboxStatus.CLAIMED}
    assert pg_store.claim(worker="w2", now=NOW, lease=LEASE, limit=10) == []
    assert pg_store.next_due() == NOW + LEASE
    later = NOW + timedelta(minutes=6)
    again = pg_store.claim(worker="w2", now=later, lease=LEASE, limit=10)
    assert [r.idempotency_key for r in again] == ["k1", "k2", "k3"]
    with pg_store.engine.connect() as conn:
        owners = conn.execute(sa.text("SELECT DISTINCT claimed_by FROM outbox")).scalars().all()
    assert owners == ["w2"]


def test_claims_take_the_oldest_due_rows_up_to_the_limit(pg_store):
    pg_store.enqueue(
        [_touch(f"k{i}", NOW - timedelta(minutes=i)) for i in range(5)]
        + [_touch("soon", NOW + timedelta(hours=1))],
        now=NOW,
    )
    first = pg_store.claim(worker="w", now=NOW, lease=LEASE, limit=2)
    assert [r.idempotency_key for r in first] == ["k4", "k3"]
    rest = pg_store.claim(worker="w", now=NOW, lease=LEASE, limit=10)
    assert [r.idempotency_key for r in rest] == ["k2", "k1", "k0"]
    assert pg_store.claim(worker="w", now=NOW, lease=LEASE, limit=10) == []


def test_rows_are_not_claimed_before_they_are_due(pg_store):
    pg_store.enqueue([_touch("soon", NOW + timedelta(hours=1))], now=NOW)
    assert pg_store.claim(worker="w", now=NOW, lease=timedelta(minutes=1), limit=5) == []
    assert pg_store.next_due() == NOW + timedelta(hours=1)


def test_a_claim_skips_rows_another_transaction_has_locked(pg_store):
    pg_store.enqueue([_touch(f"k{i}") for i in range(4)], now=NOW)
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
    assert pg_store.enqueue([_touch(f"k{i:03}") for i in range(rows)], now=NOW) == rows
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


def test_record_moves_rows_on_and_writes_deliveries(pg_store):
    pg_store.enqueue([_touch("ok"), _touch("bad"), _touch("flaky")], now=NOW)
    rows = {r.idempotency_key: r for r in pg_store.claim(worker="w", now=NOW, lease=LEASE, limit=9)}
    retry_at = NOW + timedelta(minutes=30)

    sent = _delivery(rows["ok"].id, "ok", "sent", provider_message_id="<m1@test>")
    pg_store.record(sent)
    dead = _delivery(rows["bad"].id, "bad", "dead", error="550 no such user")
    pg_store.record(dead)
    retrying = _delivery(rows["flaky"].id, "flaky", "retrying", error="timeout")
    with pytest.raises(ValueError, match="retry_at"):
        pg_store.record(retrying)
    pg_store.record(retrying, retry_at=retry_at)

    by_key = {r.idempotency_key: r for r in pg_store.outbox_rows()}
    assert by_key["ok"].status == OutboxStatus.SENT
    assert by_key["bad"].status == OutboxStatus.DEAD
    assert by_key["bad"].last_error == "550 no such user"
    assert by_key["flaky"].status == OutboxStatus.PENDING
    assert by_key["flaky"].available_at == retry_at
    assert {r.attempts for r in by_key.values()} == {1}
    with pg_store.engine.connect() as conn:
        leases = conn.execute(sa.text("SELECT lease_until, claimed_by FROM outbox")).all()
    assert set(leases) == {(None, None)}

    assert pg_store.deliveries() == [sent, dead, retrying]
    assert pg_store.deliveries(outbox_id=rows["bad"].id) == [dead]
    assert [e.name for _, e in pg_store.events_after(0)] == [
        "message_sent",
        "message_dead",
        "message_failed",
    ]
    summary = {(s["status"], s["rows"]) for s in pg_store.outbox_summary()}
    assert summary == {("sent", 1), ("dead", 1), ("pending", 1)}

    assert pg_store.next_due() == retry_at
    assert pg_store.claim(worker="w", now=NOW + timedelta(minutes=10), lease=LEASE, limit=9) == []
    again = pg_store.claim(worker="w", now=retry_at, lease=LEASE, limit=9)
    assert [(r.idempotency_key, r.attempts) for r in again] == [("flaky", 1)]


def test_record_many_moves_several_rows_in_one_transaction(pg_store):
    pg_store.enqueue([_touch("ok"), _touch("bad"), _touch("flaky")], now=NOW)
    rows = {r.idempotency_key: r for r in pg_store.claim(worker="w", now=NOW, lease=LEASE, limit=9)}
    retry_at = NOW + timedelta(minutes=30)
    outcomes = [
        (_delivery(rows["ok"].id, "ok", "sent"), None),
        (_delivery(rows["bad"].id, "bad", "dead", error="550"), None),
        (_delivery(rows["flaky"].id, "flaky", "retrying", error="timeout"), retry_at),
    ]
    pg_store.record_many(outcomes)
    by_key = {r.idempotency_key: r for r in pg_store.outbox_rows()}
    assert {k: r.status for k, r in by_key.items()} == {
        "ok": OutboxStatus.SENT,
        "bad": OutboxStatus.DEAD,
        "flaky": OutboxStatus.PENDING,
    }
    assert by_key["ok"].available_at == NOW
    assert by_key["flaky"].available_at == retry_at
    assert pg_store.deliveries() == [d for d, _ in outcomes]
    assert pg_store.count("events") == 3


# -- in-app inbox ---------------------------------------------------------------------------


def test_inbox_add_list_unread_and_mark_read(pg_store):
    def add(key: str, minutes: int = 0) -> int:
        return pg_store.inbox_add(
            contact_id="c1",
            idempotency_key=key,
            touch="t",
            title=f"Title {key}",
            body="Body",
            url="https://acme.test/x" if key == "m1" else None,
            now=NOW + timedelta(minutes=minutes),
        )

    first = add("m1")
    assert add("m1") == first
    second = add("m2", 1)
    third = add("m3", 2)
    assert pg_store.count("inbox") == 3
    items = pg_store.inbox("c1")
    assert [i.id for i in items] == [third, second, first]
    assert items[-1].url == "https://acme.test/x"
    assert items[-1].created_at == NOW
    assert pg_store.inbox("other") == []
    assert pg_store.unread_count("c1") == 3

    assert pg_store.mark_read("c1", [first], now=NOW) == 1
    assert pg_store.mark_read("c1", [first], now=NOW) == 0
    assert pg_store.mark_read("other", [second], now=NOW) == 0
    assert pg_store.unread_count("c1") == 2
    assert [i.id for i in pg_store.inbox("c1", unread_only=True)] == [third, second]
    assert pg_store.mark_read("c1", [], now=NOW) == 0
    assert pg_store.mark_read("c1", None, now=NOW + timedelta(hours=1)) == 2
    assert pg_store.unread_count("c1") == 0
    read = {i.id: i.read_at for i in pg_store.inbox("c1")}
    assert read == {first: NOW, second: NOW + timedelta(hours=1), third: NOW + timedelta(hours=1)}


# -- datetimes ------------------------------------------------------------------------------


def test_aware_datetimes_come_back_as_the_same_instant_in_utc(pg_url):
    # A session time zone other than UTC must not shift anything.
    store = Store(f"{pg_url}?options=-c%20TimeZone%3DAsia/Tokyo")
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SHOW TimeZone")).scalar() == "Asia/Tokyo"
    local = datetime(2026, 3, 29, 2, 30, tzinfo=timezone(timedelta(hours=-5)))
    store.enqueue([_touch("k", local)], now=local)
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
        store.enqueue([_touch("naive", datetime(2026, 1, 1))], now=NOW)
    store.close()
