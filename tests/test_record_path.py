"""Outcomes are recorded with driver-level SQL (``store._RecordPath``): the rows it writes
must be, column for column, the rows SQLAlchemy's own statements wrote before it, on SQLite
and PostgreSQL, for any mix of outcomes (the fence included: a stale claim writes nothing).

The reference below is the SQLAlchemy path as it was: the fence as a SELECT ... FOR UPDATE,
then three executemany statements built from dicts, the event made through :class:`Event`.
Both stores get the same rows, claimed under the same tokens, and the same outcomes.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import attrs
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql, sqlite

from onetomany import Account, Contact, Delivery, Event
from onetomany.errors import InvalidEventError
from onetomany.model import OutboxStatus
from onetomany.rules.triggers import DELIVERY_EVENTS
from onetomany.store import NewTouch, Outcome, Store, schema
from onetomany.store.store import _clean_delivery

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LEASE = timedelta(hours=1)
_batches = itertools.count()

# -- the reference: the SQLAlchemy path this one replaced --------------------------------------

_MOVE = (
    sa.update(schema.outbox)
    .where(
        schema.outbox.c.id == sa.bindparam("m_id"),
        schema.outbox.c.claim_token == sa.bindparam("m_token"),
        schema.outbox.c.status == OutboxStatus.CLAIMED,
    )
    .values(
        status=sa.bindparam("m_status"),
        attempts=sa.bindparam("m_attempts"),
        available_at=sa.func.coalesce(
            sa.bindparam("m_retry_at", type_=schema.UTCDateTime), schema.outbox.c.available_at
        ),
        updated_at=sa.bindparam("m_at", type_=schema.UTCDateTime),
        last_error=sa.bindparam("m_error"),
        lease_until=None,
        claimed_by=None,
        claim_token=None,
    )
)
_STATUS = {
    "sent": OutboxStatus.SENT,
    "retrying": OutboxStatus.PENDING,
    "dead": OutboxStatus.DEAD,
    "unknown": OutboxStatus.UNKNOWN,
}
#: What the deliveries table keeps of a Delivery: all but what its outbox row holds.
_DELIVERY_COLUMNS = [
    f.name for f in attrs.fields(Delivery) if f.name not in ("touch", "contact_id", "account_id")
]


def _reference_record(store: Store, outcomes: Sequence[Outcome]) -> list[Outcome]:
    prepared = []
    for outcome in outcomes:
        d = _clean_delivery(outcome.delivery)
        status = OutboxStatus.PENDING if outcome.retry_at is not None else _STATUS[d.status]
        digest = hashlib.sha256(f"{d.idempotency_key}#{d.attempt}#{d.status}".encode())
        event = Event(
            id=digest.hexdigest()[:32],
            name=DELIVERY_EVENTS[d.status],
            occurred_at=d.at,
            account_id=d.account_id,
            contact_id=d.contact_id,
            properties={
                "idempotency_key": d.idempotency_key,
                "touch": d.touch,
                "channel": d.channel,
                "attempt": d.attempt,
                "error": d.error,
            },
        )
        values = {
            "m_id": d.outbox_id,
            "m_token": outcome.claim_token,
            "m_status": status,
            "m_attempts": d.attempt,
            "m_retry_at": outcome.retry_at,
            "m_at": d.at,
            "m_error": d.error,
        }
        event_row = {
            "id": event.id,
            "name": event.name,
            "account_id": event.account_id,
            "contact_id": event.contact_id,
            "occurred_at": event.occurred_at,
            "received_at": d.at,
            "properties": dict(event.properties),
        }
        delivery_row = {c: getattr(d, c) for c in _DELIVERY_COLUMNS}
        prepared.append((outcome, values, delivery_row, event_row))
    t = schema.outbox
    insert = postgresql.insert if store.dialect == "postgresql" else sqlite.insert
    with store.write() as conn:
        current = {
            (row.id, row.claim_token)
            for row in conn.execute(
                sa.select(t.c.id, t.c.claim_token)
                .where(t.c.id.in_([v["m_id"] for _, v, _, _ in prepared]))
                .where(t.c.status == OutboxStatus.CLAIMED)
                .with_for_update()
            )
        }
        moving = []
        for p in prepared:
            claim = (p[1]["m_id"], p[1]["m_token"])
            if claim in current:
                current.discard(claim)
                moving.append(p)
        if moving:
            conn.execute(_MOVE, [p[1] for p in moving])
            conn.execute(sa.insert(schema.deliveries), [p[2] for p in moving])
            events = insert(schema.events).on_conflict_do_nothing(index_elements=["id"])
            conn.execute(events, [p[3] for p in moving])
    moved = {id(p[0]) for p in moving}
    return [o for o in outcomes if id(o) not in moved]


# -- two stores with the same rows ---------------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stores(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Store, Store]]:
    """(the store under test, the reference), on one database kind."""
    if request.param == "sqlite":
        folder = tmp_path_factory.mktemp("record-path")
        urls = [str(folder / "ours.db"), str(folder / "reference.db")]
    else:
        base: str = request.getfixturevalue("postgres_url")
        admin: sa.Engine = request.getfixturevalue("postgres_admin")
        names = [f"record_ours_{id(request)}", f"record_reference_{id(request)}"]
        with admin.connect() as conn:
            for name in names:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        urls = [
            sa.make_url(base).set(database=n).render_as_string(hide_password=False) for n in names
        ]
    ours, reference = Store(urls[0]), Store(urls[1])
    yield ours, reference
    ours.close()
    reference.close()
    if request.param == "postgresql":
        with admin.connect() as conn:
            for name in names:
                conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))


def _claimed(stores: tuple[Store, Store], count: int) -> list[tuple[int, str, str]]:
    """``count`` new rows claimed in both stores under the same tokens: (id, key, token)."""
    batch = next(_batches)
    touches = [
        NewTouch(
            idempotency_key=f"k{batch}-{i}",
            program="p",
            touch="welcome",
            channel=f"email{batch}",
            template="welcome",
            contact_id=f"c{i}",
            account_id=f"a{i}",
            available_at=NOW,
        )
        for i in range(count)
    ]
    claimed = []
    for store in stores:
        store.enqueue(touches, now=NOW)
        rows = store.claim(
            worker="w", now=NOW, lease=LEASE, limit=count, channels=[f"email{batch}"]
        )
        assert len(rows) == count
        with store.write() as conn:
            # Claim tokens are random: both stores get the same ones, so rows compare.
            conn.execute(
                sa.update(schema.outbox)
                .where(schema.outbox.c.channel == f"email{batch}")
                .values(claim_token=sa.literal("t") + sa.cast(schema.outbox.c.id, sa.String))
            )
        claimed.append([(r.id, r.idempotency_key, f"t{r.id}") for r in rows])
    assert claimed[0] == claimed[1]
    return claimed[0]


def _dump(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every row the record path writes, as the database keeps it (JSON as its text)."""
    json_text = "::text" if store.dialect == "postgresql" else ""
    queries = {
        "outbox": "SELECT id, idempotency_key, status, attempts, available_at, lease_until, "
        "claimed_by, claim_token, last_error, updated_at FROM outbox ORDER BY id",
        "deliveries": "SELECT * FROM deliveries ORDER BY id",
        # txid is the writing transaction's (PostgreSQL): different in two databases.
        "events": "SELECT seq, id, name, account_id, contact_id, occurred_at, received_at, "
        f"properties{json_text} FROM events ORDER BY seq",
    }
    with store.engine.connect() as conn:
        return {
            table: [tuple(row) for row in conn.exec_driver_sql(sql)]
            for table, sql in queries.items()
        }


def _record_both(stores: tuple[Store, Store], outcomes: list[Outcome]) -> None:
    ours, reference = stores
    stale = ours.record_many(outcomes)
    assert [id(o) for o in stale] == [id(o) for o in _reference_record(reference, outcomes)]
    assert _dump(ours) == _dump(reference)


def _outcome(
    row: tuple[int, str, str],
    status: str,
    *,
    token: str | None = None,
    retry_at: datetime | None = None,
    at: datetime = NOW,
    attempt: int = 1,
    **extra: Any,
) -> Outcome:
    row_id, key, row_token = row
    fields: dict[str, Any] = {
        "touch": "welcome",
        "contact_id": f"c{row_id}",
        "account_id": f"a{row_id}",
    } | extra
    delivery = Delivery(
        outbox_id=row_id,
        idempotency_key=key,
        channel="email",
        attempt=attempt,
        status=status,
        at=at,
        **fields,
    )
    return Outcome(delivery=delivery, claim_token=token or row_token, retry_at=retry_at)


# -- the cases -------------------------------------------------------------------------------


def test_each_kind_of_outcome_writes_what_sqlalchemy_wrote(stores):
    rows = _claimed(stores, 9)
    later = NOW + timedelta(minutes=7)
    sao_paulo = timezone(timedelta(hours=-3))
    outcomes = [
        _outcome(rows[0], "sent", provider_message_id="<m1@acme.test>", provider="smtp"),
        _outcome(rows[1], "dead", error="550 adresse refusée: ünknown mailbox", attempt=3),
        _outcome(rows[2], "retrying", error="421 busy\x00now \udcff", retry_at=later),
        _outcome(rows[3], "unknown", error="read timeout"),
        _outcome(rows[4], "unknown", error="read timeout", retry_at=later),
        # A stale claim: another worker's token; nothing is written for it.
        _outcome(rows[5], "sent", token="not-the-token"),
        # Two outcomes for one row: the first moves it, the second finds it moved.
        _outcome(rows[6], "sent", at=datetime(2026, 3, 2, 6, 0, tzinfo=sao_paulo)),
        _outcome(rows[6], "dead", error="late"),
        # Only an account; and a contact id in other scripts (through Event's checks).
        _outcome(rows[7], "sent", contact_id=None, provider_message_id="<" + "x" * 600 + ">"),
        _outcome(rows[8], "retrying", contact_id="contato-joão", retry_at=later, error=None),
    ]
    _record_both(stores, outcomes)
    dump = _dump(stores[0])
    assert len(dump["deliveries"]) >= 8  # the stale claim and the second outcome wrote none


def test_a_stale_batch_writes_nothing_and_is_returned(stores):
    rows = _claimed(stores, 3)
    before = _dump(stores[0])
    outcomes = [_outcome(row, "sent", token=f"old{row[0]}") for row in rows]
    assert stores[0].record_many(outcomes) == outcomes
    assert _dump(stores[0]) == before


def test_one_outcome_alone_is_recorded_as_in_a_batch(stores):
    (row,) = _claimed(stores, 1)
    _record_both(stores, [_outcome(row, "sent", provider="postmark")])
    (row,) = _claimed(stores, 1)
    ours, reference = stores
    dead = _outcome(row, "dead")
    assert ours.record(dead.delivery, claim_token=row[2])
    assert not ours.record(dead.delivery, claim_token=row[2])
    assert _reference_record(reference, [dead]) == []
    assert _reference_record(reference, [dead]) == [dead]
    assert _dump(ours) == _dump(reference)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"contact_id": None, "account_id": None}, "names neither an account nor a contact"),
        ({"contact_id": "  "}, "is empty or not text"),
        ({"at": datetime(2026, 3, 2, 9, 0)}, "has no timezone"),
    ],
)
def test_an_event_the_model_refuses_stops_the_batch_before_any_write(stores, change, message):
    rows = _claimed(stores, 2)
    before = _dump(stores[0])
    outcomes = [_outcome(rows[0], "sent"), _outcome(rows[1], "sent", **change)]
    with pytest.raises(InvalidEventError, match=message):
        stores[0].record_many(outcomes)
    assert _dump(stores[0]) == before


texts = st.text(max_size=12)
zones = st.sampled_from(
    [UTC, timezone(timedelta(hours=-3)), timezone(timedelta(hours=5, minutes=30))]
)
outcome_specs = st.tuples(
    st.integers(0, 5),  # which row
    st.sampled_from(["sent", "dead", "retrying", "unknown"]),
    st.booleans(),  # a retry time (always for retrying)
    st.booleans(),  # stale token
    st.one_of(st.none(), texts),  # error
    st.one_of(st.none(), texts),  # provider message id
    st.sampled_from([None, "c", "contato-joão"]),  # contact id
    st.integers(1, 4),  # attempt
    st.integers(0, 10**6),  # microseconds after NOW
    zones,
)


@settings(max_examples=40, deadline=None)
@given(st.lists(outcome_specs, min_size=1, max_size=10))
def test_any_mix_of_outcomes_writes_what_sqlalchemy_wrote(stores, specs):
    rows = _claimed(stores, 6)
    outcomes = []
    for which, status, retry, stale, error, provider_id, contact, attempt, micros, zone in specs:
        at = (NOW + timedelta(microseconds=micros)).astimezone(zone)
        retry_at = at + timedelta(minutes=5) if retry or status == "retrying" else None
        outcomes.append(
            _outcome(
                rows[which],
                status,
                token="stale" if stale else None,
                retry_at=retry_at,
                at=at,
                attempt=attempt,
                error=error,
                provider_message_id=provider_id,
                contact_id=None if contact is None else f"{contact}{rows[which][0]}",
            )
        )
    _record_both(stores, outcomes)


# -- the claim and the batch's profile read --------------------------------------------------


def test_a_claim_hands_back_the_rows_as_sqlalchemy_reads_them(stores):
    ours, _ = stores
    batch = next(_batches)
    payloads = [{}, {"plan": "pro", "seats": 12}, {"nested": {"ünïcode": ["a", 1.5, None]}}]
    ours.enqueue(
        [
            NewTouch(
                idempotency_key=f"c{batch}-{i}",
                program="p",
                touch="welcome",
                channel=f"claim{batch}",
                template="welcome",
                contact_id=None if i == 1 else f"contato-{i}-joão",
                account_id=f"a{i}",
                event_id="e1" if i == 2 else None,
                payload=payload,
                available_at=NOW - timedelta(minutes=i),
            )
            for i, payload in enumerate(payloads)
        ],
        now=NOW,
    )
    later = NOW + timedelta(seconds=30)
    claimed = ours.claim(worker="w9", now=later, lease=LEASE, limit=9, channels=[f"claim{batch}"])
    # Oldest due first; what SQLAlchemy's own read of the same rows gives, field for field.
    assert [r.idempotency_key for r in claimed] == [f"c{batch}-{i}" for i in (2, 1, 0)]
    as_read = {r.id: r for r in ours.outbox_rows(status="claimed")}
    assert claimed == [as_read[r.id] for r in claimed]
    assert {r.claim_token for r in claimed} != {None} and len({r.claim_token for r in claimed}) == 1
    with ours.engine.connect() as conn:
        leases = conn.execute(
            sa.select(schema.outbox.c.lease_until, schema.outbox.c.claimed_by).where(
                schema.outbox.c.id.in_([r.id for r in claimed])
            )
        ).all()
    assert set(leases) == {(later + LEASE, "w9")}


def test_the_profile_read_gives_what_sqlalchemy_reads(stores):
    ours, _ = stores
    batch = next(_batches)
    accounts = [
        Account(id=f"firma-{batch}-ç", name="Firma Ç", traits={"plan": "pro", "tags": ["a"]}),
        Account(id=f"firm-{batch}", traits={}),
    ]
    contacts = [
        Contact(
            id=f"contato-{batch}-joão",
            account_id=accounts[0].id,
            name="João",
            email="joao@firma.test",
            phone="+5511987654321",
            role="sponsor",
            locale="pt-BR",
            timezone="America/Sao_Paulo",
            consent={"sms": True},
            traits={"score": 9.5, "nested": {"x": [1, None]}},
        ),
        Contact(id=f"c-{batch}", account_id=accounts[1].id),
    ]
    ours.save_profiles(accounts=accounts, contacts=contacts, now=NOW)
    ids = [c.id for c in contacts]
    everyone = {c.id: c for c in ours.all_contacts()}
    found = ours.get_contacts([*ids, ids[0], "missing"])
    assert found == {i: everyone[i] for i in sorted(ids)}
    firms = {a.id: a for a in ours.accounts()}
    assert ours.get_accounts([a.id for a in accounts] + ["missing"]) == {
        a.id: firms[a.id] for a in accounts
    }
    assert ours.get_contacts([]) == {} and ours.get_accounts(iter([])) == {}


def test_the_profile_read_pages_through_many_ids(stores):
    # More ids than one page (500) holds, given in any order: each is read once.
    ours, _ = stores
    batch = next(_batches)
    contacts = [Contact(id=f"p{batch}-{i:04d}", account_id="a") for i in range(1203)]
    ours.save_profiles(contacts=contacts, now=NOW)
    found = ours.get_contacts(c.id for c in reversed(contacts))
    assert list(found) == [c.id for c in contacts]
