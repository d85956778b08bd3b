"""The store's guarantees, on SQLite and on PostgreSQL (``store`` runs each test on both)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import attrs
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from onetomany import Account, Contact, Event
from onetomany.errors import StoreError
from onetomany.model import Delivery, OutboxStatus
from onetomany.store import NewTouch, Outcome, Store
from onetomany.store.migrate import head
from onetomany.store.queries.inbox import inbox_counts, inbox_items, mark_read
from onetomany.store.schema import metadata

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)


def touch(key: str, at: datetime = NOW) -> NewTouch:
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


def delivery(row_id: int, key: str, status: str, *, attempt: int = 1, **extra: object) -> Delivery:
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


def test_migrations_apply_on_first_use_and_match_the_schema(store):
    with store.engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == head()
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []
    assert store.upgrade() == []
    reopened = Store(store.url)
    assert reopened.upgrade() == []
    reopened.close()


# -- SQLite only ------------------------------------------------------------------------------


def test_sqlite_creates_missing_folders(tmp_path):
    Store(tmp_path / "nested" / "deeper" / "store.db").close()
    assert (tmp_path / "nested" / "deeper" / "store.db").exists()


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


# -- every database -------------------------------------------------------------------------


def test_profiles_are_upserted_and_events_deduplicated(store):
    contact = Contact(id="c1", account_id="a1", email="ana@acme.test", role="admin")
    store.save_profiles(
        accounts=[Account(id="a1", name="Acme", traits={"plan": "pro"})],
        contacts=[contact],
        now=NOW,
    )
    store.save_profiles(accounts=[Account(id="a1", name="Acme Inc", traits={})], now=NOW)
    assert store.get_account("a1") == Account(id="a1", name="Acme Inc", traits={"plan": "pro"})
    assert store.get_contact("c1") == contact
    assert store.contacts_of("a1") == [contact]
    assert store.count("accounts") == 1
    event = Event(id="e1", name="login", occurred_at=NOW, contact_id="c1")
    assert store.add_events([event, event], now=NOW) == 1
    assert store.add_events([event], now=NOW) == 0
    assert [e for _, e in store.events_after(0)] == [event]


def test_contacts_are_upserted_and_json_round_trips(store):
    traits = {"plan": "pro", "seats": 12, "tags": ["a", "ü"], "nested": {"x": None}}
    first = Contact(id="c1", account_id="a1", email="ana@acme.test", traits=traits)
    store.save_profiles(contacts=[first], now=NOW, cursor=("crm", "page-1"))
    second = Contact(
        id="c1", account_id="a1", name="Ana", locale="pt-BR", timezone="America/Sao_Paulo",
        consent={"email": True}, traits={"plan": "team"},
    )  # fmt: skip
    store.save_profiles(contacts=[second], now=NOW, cursor=("crm", "page-2"))
    # Traits merge key by key; the email the second did not give stays.
    assert store.get_contact("c1") == attrs.evolve(
        second, email="ana@acme.test", traits={**traits, "plan": "team"}
    )
    assert store.get_cursor("crm") == "page-2"
    store.save_profiles(contacts=[first], now=NOW)
    assert store.get_contact("c1").traits == traits


def test_a_profile_changes_only_the_fields_it_gives(store):
    full = Contact(
        id="c1", account_id="a1", name="Ana Souza", email="ana@acme.test", phone="+5511912345678",
        role="admin", locale="pt-BR", timezone="America/Sao_Paulo",
        consent={"email": True, "sms": False}, traits={"plan": "pro", "seats": 3},
    )  # fmt: skip
    store.save_profiles(
        accounts=[Account(id="a1", name="Acme", traits={"plan": "pro", "mrr": 99})],
        contacts=[full],
        now=NOW,
    )
    store.save_profiles(
        accounts=[Account(id="a1", name="Acme Inc")],
        contacts=[Contact(id="c1", traits={"seats": 9}, consent={"sms": True})],
        now=NOW,
    )
    assert store.get_account("a1") == Account(
        id="a1", name="Acme Inc", traits={"plan": "pro", "mrr": 99}
    )
    assert store.get_contact("c1") == attrs.evolve(
        full, traits={"plan": "pro", "seats": 9}, consent={"email": True, "sms": True}
    )


def test_none_clears_a_field_and_removes_a_trait(store):
    store.save_profiles(
        accounts=[Account(id="a1", traits={"plan": "pro", "trial": True})],
        contacts=[
            Contact(id="c1", account_id="a1", email="ana@acme.test", phone="+5511912345678",
                    role="admin", traits={"plan": "pro", "beta": True})
        ],
        now=NOW,
    )  # fmt: skip
    store.save_profiles(
        accounts=[Account(id="a1", traits={"trial": None})],
        contacts=[Contact(id="c1", email=None, role=None, account_id=None, traits={"beta": None})],
        now=NOW,
    )
    assert store.get_account("a1").traits == {"plan": "pro"}
    contact = store.get_contact("c1")
    assert (contact.email, contact.role, contact.account_id) == (None, None, None)
    assert contact.phone == "+5511912345678"
    assert contact.traits == {"plan": "pro"}


def test_a_new_profile_gets_the_defaults_and_no_removed_traits(store):
    store.save_profiles(
        accounts=[Account(id="a1")],
        contacts=[Contact(id="c1", traits={"seats": 2, "gone": None})],
        now=NOW,
    )
    assert store.get_account("a1") == Account(id="a1", name="", traits={})
    assert store.get_contact("c1") == Contact(
        id="c1", account_id=None, name="", locale="en", timezone="UTC", traits={"seats": 2}
    )


def test_one_batch_applies_the_same_profile_in_order(store):
    store.save_profiles(contacts=[Contact(id="c1", locale="de", traits={"a": 1})], now=NOW)
    store.save_profiles(
        contacts=[
            Contact(id="c1", traits={"b": 2}),
            Contact(id="c2", role="admin"),
            Contact(id="c1", role="sponsor", traits={"a": None}),
            Contact(id="c2", traits={"x": 1}),
        ],
        now=NOW,
    )
    one, two = store.get_contact("c1"), store.get_contact("c2")
    assert (one.locale, one.role, one.traits) == ("de", "sponsor", {"b": 2})
    assert (two.role, two.traits) == ("admin", {"x": 1})


def test_a_large_batch_merges_with_what_is_stored(store):
    ids = [f"c{i:04}" for i in range(1200)]  # more than one chunk of ids
    store.save_profiles(
        contacts=[Contact(id=i, locale="fr", traits={"n": 0}) for i in ids[::2]], now=NOW
    )
    store.save_profiles(contacts=[Contact(id=i, traits={"m": 1}) for i in ids], now=NOW)
    contacts = store.get_contacts(ids)
    assert contacts[ids[0]].locale == "fr" and contacts[ids[0]].traits == {"n": 0, "m": 1}
    assert contacts[ids[1]].locale == "en" and contacts[ids[1]].traits == {"m": 1}
    assert len(contacts) == 1200


def test_events_after_pages_in_order(store):
    events = [
        Event(id=f"e{i}", name="login", occurred_at=NOW + timedelta(seconds=i), account_id="a1")
        for i in range(5)
    ]
    assert store.add_events(events, now=NOW) == 5
    first = store.events_after(0, limit=3)
    assert [e for _, e in first] == events[:3]
    rest = store.events_after(first[-1][0])
    assert [e for _, e in rest] == events[3:]


def test_outbox_keys_are_unique_and_claims_are_leased(store):
    assert store.enqueue([touch("k1"), touch("k2"), touch("k1")], now=NOW) == 2
    assert store.enqueue([touch("k2")], now=NOW) == 0
    assert store.enqueue([touch("k3")], now=NOW, cursor=("tick", "1")) == 1
    assert store.get_cursor("tick") == "1"
    first = store.claim(worker="w1", now=NOW, lease=LEASE, limit=10)
    assert [r.idempotency_key for r in first] == ["k1", "k2", "k3"]
    assert {r.status for r in first} == {OutboxStatus.CLAIMED}
    assert store.claim(worker="w2", now=NOW, lease=LEASE, limit=10) == []
    assert store.next_due() == NOW + LEASE
    later = NOW + timedelta(minutes=6)
    again = store.claim(worker="w2", now=later, lease=LEASE, limit=10)
    assert [r.idempotency_key for r in again] == ["k1", "k2", "k3"]
    with store.engine.connect() as conn:
        owners = conn.execute(sa.text("SELECT DISTINCT claimed_by FROM outbox")).scalars().all()
    assert owners == ["w2"]


def test_claims_take_the_oldest_due_rows_up_to_the_limit(store):
    store.enqueue(
        [touch(f"k{i}", NOW - timedelta(minutes=i)) for i in range(5)]
        + [touch("soon", NOW + timedelta(hours=1))],
        now=NOW,
    )
    first = store.claim(worker="w", now=NOW, lease=LEASE, limit=2)
    assert [r.idempotency_key for r in first] == ["k4", "k3"]
    rest = store.claim(worker="w", now=NOW, lease=LEASE, limit=10)
    assert [r.idempotency_key for r in rest] == ["k2", "k1", "k0"]
    assert store.claim(worker="w", now=NOW, lease=LEASE, limit=10) == []


def test_rows_are_not_claimed_before_they_are_due(store):
    store.enqueue([touch("soon", NOW + timedelta(hours=1))], now=NOW)
    assert store.claim(worker="w", now=NOW, lease=timedelta(minutes=1), limit=5) == []
    assert store.next_due() == NOW + timedelta(hours=1)


def test_record_moves_rows_on_and_writes_deliveries(store):
    store.enqueue([touch("ok"), touch("bad"), touch("flaky")], now=NOW)
    rows = {r.idempotency_key: r for r in store.claim(worker="w", now=NOW, lease=LEASE, limit=9)}
    retry_at = NOW + timedelta(minutes=30)

    def token(key: str) -> str:
        return rows[key].claim_token or ""

    sent = delivery(rows["ok"].id, "ok", "sent", provider_message_id="<m1@test>")
    assert store.record(sent, claim_token=token("ok"))
    dead = delivery(rows["bad"].id, "bad", "dead", error="550 no such user")
    assert store.record(dead, claim_token=token("bad"))
    retrying = delivery(rows["flaky"].id, "flaky", "retrying", error="timeout")
    with pytest.raises(ValueError, match="retry_at"):
        store.record(retrying, claim_token=token("flaky"))
    assert store.record(retrying, claim_token=token("flaky"), retry_at=retry_at)

    by_key = {r.idempotency_key: r for r in store.outbox_rows()}
    assert by_key["ok"].status == OutboxStatus.SENT
    assert by_key["bad"].status == OutboxStatus.DEAD
    assert by_key["bad"].last_error == "550 no such user"
    assert by_key["flaky"].status == OutboxStatus.PENDING
    assert by_key["flaky"].available_at == retry_at
    assert {r.attempts for r in by_key.values()} == {1}
    with store.engine.connect() as conn:
        leases = conn.execute(
            sa.text("SELECT lease_until, claimed_by, claim_token FROM outbox")
        ).all()
    assert set(leases) == {(None, None, None)}

    assert store.deliveries() == [sent, dead, retrying]
    assert store.deliveries(outbox_id=rows["bad"].id) == [dead]
    assert [e.name for _, e in store.events_after(0)] == [
        "message_sent",
        "message_dead",
        "message_failed",
    ]
    summary = {(s["status"], s["rows"]) for s in store.outbox_summary()}
    assert summary == {("sent", 1), ("dead", 1), ("pending", 1)}

    assert store.next_due() == retry_at
    assert store.claim(worker="w", now=NOW + timedelta(minutes=10), lease=LEASE, limit=9) == []
    again = store.claim(worker="w", now=retry_at, lease=LEASE, limit=9)
    assert [(r.idempotency_key, r.attempts) for r in again] == [("flaky", 1)]


def test_record_many_moves_several_rows_in_one_transaction(store):
    store.enqueue([touch("ok"), touch("bad"), touch("flaky")], now=NOW)
    rows = {r.idempotency_key: r for r in store.claim(worker="w", now=NOW, lease=LEASE, limit=9)}
    retry_at = NOW + timedelta(minutes=30)
    outcomes = [
        Outcome(
            delivery=delivery(rows[key].id, key, status, **extra), claim_token=token, retry_at=at
        )
        for key, status, extra, at in (
            ("ok", "sent", {}, None),
            ("bad", "dead", {"error": "550"}, None),
            ("flaky", "retrying", {"error": "timeout"}, retry_at),
        )
        for token in [rows[key].claim_token or ""]
    ]
    assert store.record_many(outcomes) == []
    by_key = {r.idempotency_key: r for r in store.outbox_rows()}
    assert {k: r.status for k, r in by_key.items()} == {
        "ok": OutboxStatus.SENT,
        "bad": OutboxStatus.DEAD,
        "flaky": OutboxStatus.PENDING,
    }
    assert by_key["ok"].available_at == NOW
    assert by_key["flaky"].available_at == retry_at
    assert store.deliveries() == [o.delivery for o in outcomes]
    assert store.count("events") == 3


def test_claims_carry_a_token_and_a_stale_writer_changes_nothing(store):
    store.enqueue([touch("k1"), touch("k2")], now=NOW)
    old = {r.idempotency_key: r for r in store.claim(worker="w1", now=NOW, lease=LEASE, limit=9)}
    assert len({r.claim_token for r in old.values()} - {None}) == 1
    # w1 stalls past its lease; w2 takes both rows, sends k1 and records it.
    later = NOW + LEASE + timedelta(seconds=1)
    new = {r.idempotency_key: r for r in store.claim(worker="w2", now=later, lease=LEASE, limit=9)}
    assert new["k1"].claim_token != old["k1"].claim_token
    assert store.record(
        delivery(new["k1"].id, "k1", "sent"), claim_token=new["k1"].claim_token or ""
    )

    # w1's late writes change nothing: k1 stays sent, k2 stays w2's.
    late = [
        Outcome(
            delivery=delivery(old["k1"].id, "k1", "retrying", error="timeout"),
            claim_token=old["k1"].claim_token or "",
            retry_at=later,
        ),
        Outcome(
            delivery=delivery(old["k2"].id, "k2", "sent"), claim_token=old["k2"].claim_token or ""
        ),
    ]
    assert store.record_many(late) == late
    assert store.renew({old["k2"].id: old["k2"].claim_token or ""}, now=later, lease=LEASE) == set()
    by_key = {r.idempotency_key: r for r in store.outbox_rows()}
    assert by_key["k1"].status == OutboxStatus.SENT
    assert (by_key["k2"].status, by_key["k2"].claim_token) == ("claimed", new["k2"].claim_token)
    assert [d.status for d in store.deliveries()] == ["sent"]
    assert store.count("events") == 1

    # w2 renews k2 (k1 is finished and is not renewed).
    claims = {r.id: r.claim_token or "" for r in new.values()}
    assert store.renew(claims, now=later, lease=LEASE) == {new["k2"].id}
    assert store.next_due() == later + LEASE
    # A row sent is never claimed again, however late.
    assert [
        r.idempotency_key
        for r in store.claim(worker="w3", now=later + 2 * LEASE, lease=LEASE, limit=9)
    ] == ["k2"]


def test_an_outcome_with_a_nul_or_a_long_provider_id_is_written(store):
    # PostgreSQL refuses NUL in text and a provider id over the column's 512 characters: a
    # provider's odd reply must not make the whole batch's write fail.
    store.enqueue([touch("k1"), touch("k2")], now=NOW)
    rows = store.claim(worker="w", now=NOW, lease=LEASE, limit=9)
    outcomes = [
        Outcome(
            delivery=delivery(rows[0].id, "k1", "sent", provider_message_id="<" + "x" * 600 + ">"),
            claim_token=rows[0].claim_token or "",
        ),
        Outcome(
            delivery=delivery(rows[1].id, "k2", "dead", error="550 bad\x00reply \udcff"),
            claim_token=rows[1].claim_token or "",
        ),
    ]
    assert store.record_many(outcomes) == []
    first, second = store.deliveries()
    assert len(first.provider_message_id or "") == 512
    assert second.error == "550 bad\\x00reply \\udcff"
    assert {r.status for r in store.outbox_rows()} == {"sent", "dead"}


def test_inbox_add_list_unread_and_mark_read(store):
    def add(key: str, minutes: int = 0) -> int:
        return store.inbox_add(
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
    assert store.count("inbox") == 3
    items = inbox_items(store, "c1", now=NOW)
    assert [i.id for i in items] == [third, second, first]
    assert items[-1].url == "https://acme.test/x"
    assert items[-1].created_at == NOW
    assert inbox_items(store, "other", now=NOW) == []
    assert inbox_counts(store, "c1", now=NOW).unread == 3

    assert mark_read(store, "c1", [first], now=NOW) == 1
    assert mark_read(store, "c1", [first], now=NOW) == 0
    assert mark_read(store, "other", [second], now=NOW) == 0
    assert inbox_counts(store, "c1", now=NOW).unread == 2
    assert [i.id for i in inbox_items(store, "c1", now=NOW, unread_only=True)] == [third, second]
    assert mark_read(store, "c1", [], now=NOW) == 0
    assert mark_read(store, "c1", None, now=NOW + timedelta(hours=1)) == 2
    assert inbox_counts(store, "c1", now=NOW).unread == 0
    read = {i.id: i.read_at for i in inbox_items(store, "c1", now=NOW)}
    assert read == {first: NOW, second: NOW + timedelta(hours=1), third: NOW + timedelta(hours=1)}
