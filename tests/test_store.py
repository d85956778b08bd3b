from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from onetomany import Account, Contact, Event
from onetomany.errors import StoreError
from onetomany.store import NewTouch, Store
from onetomany.store.migrate import head
from onetomany.store.schema import metadata

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def test_migrations_apply_on_first_use_and_match_the_schema(tmp_path):
    store = Store(tmp_path / "nested" / "store.db")
    with store.engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == head()
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []
    assert store.upgrade() == []


def test_sqlite_store_runs_in_wal_mode(temp_store):
    with temp_store.engine.connect() as conn:
        assert conn.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"


def test_a_store_path_that_cannot_be_written_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError, match="cannot create the folder"):
        Store(blocker / "store.db")


def test_a_read_only_database_file_keeps_its_data(tmp_path):
    path = tmp_path / "store.db"
    store = Store(path)
    store.save_profiles(accounts=[Account(id="a1", name="Acme")], now=NOW)
    store.close()
    readonly = Store(f"sqlite:///file:{path}?mode=ro&uri=true", migrate=False)
    with pytest.raises(StoreError, match="cannot write to store"):
        readonly.save_profiles(accounts=[Account(id="a2")], now=NOW)
    assert readonly.get_account("a1") == Account(id="a1", name="Acme")


def test_profiles_are_upserted_and_events_deduplicated(temp_store):
    temp_store.save_profiles(
        accounts=[Account(id="a1", name="Acme", traits={"plan": "pro"})],
        contacts=[Contact(id="c1", account_id="a1", email="ana@acme.test", role="admin")],
        now=NOW,
    )
    temp_store.save_profiles(accounts=[Account(id="a1", name="Acme Inc", traits={})], now=NOW)
    assert temp_store.get_account("a1").name == "Acme Inc"
    event = Event(id="e1", name="login", occurred_at=NOW, contact_id="c1")
    assert temp_store.add_events([event, event], now=NOW) == 1
    assert temp_store.add_events([event], now=NOW) == 0
    assert [e for _, e in temp_store.events_after(0)] == [event]


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


def test_outbox_keys_are_unique_and_claims_are_leased(temp_store):
    assert temp_store.enqueue([_touch("k1"), _touch("k2"), _touch("k1")], now=NOW) == 2
    assert temp_store.enqueue([_touch("k2")], now=NOW) == 0
    first = temp_store.claim(worker="w1", now=NOW, lease=timedelta(minutes=5), limit=10)
    assert [r.idempotency_key for r in first] == ["k1", "k2"]
    assert temp_store.claim(worker="w2", now=NOW, lease=timedelta(minutes=5), limit=10) == []
    later = NOW + timedelta(minutes=6)
    again = temp_store.claim(worker="w2", now=later, lease=timedelta(minutes=5), limit=10)
    assert [r.idempotency_key for r in again] == ["k1", "k2"]


def test_rows_are_not_claimed_before_they_are_due(temp_store):
    temp_store.enqueue([_touch("soon", NOW + timedelta(hours=1))], now=NOW)
    assert temp_store.claim(worker="w", now=NOW, lease=timedelta(minutes=1), limit=5) == []
    assert temp_store.next_due() == NOW + timedelta(hours=1)
