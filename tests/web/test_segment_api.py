"""Segment-compatible ingestion: Segment's and RudderStack's HTTP calls, as they send them,
stored as contacts, accounts and events; bad calls refused by index with nothing lost."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from starlette.testclient import TestClient

from onetomany.engine import Engine
from onetomany.model import Event
from onetomany.store import schema
from onetomany.store.queries.events import event_from_row
from onetomany.web import create_app
from onetomany.web.segment_api import MAX_CALL_BYTES, event_id, occurred_at

from .conftest import KEYS

WRITE_KEY = "wk_" + "w" * 29
AUTH = (WRITE_KEY, "")


@pytest.fixture
def segment(sqlite_engine: Engine) -> Iterator[TestClient]:
    app = create_app(sqlite_engine, keys=KEYS, segment_write_keys=[WRITE_KEY])
    with TestClient(app) as c:
        yield c


def _events(engine: Engine, name: str) -> list[Event]:
    """Every stored event called ``name``, whoever it names."""
    t = schema.events
    with engine.store.read() as conn:
        rows = conn.execute(sa.select(t).where(t.c.name == name).order_by(t.c.seq))
        return [event_from_row(row) for row in rows]


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def test_identify_then_track_store_the_contact_and_the_event(segment, sqlite_engine):
    now = sqlite_engine.clock.now()
    answer = segment.post(
        "/v1/identify",
        auth=AUTH,
        json={
            "userId": "c9",
            "traits": {
                "email": "Ada@Example.TEST",
                "firstName": "Ada",
                "lastName": "L",
                "seats": 4,
            },
            "context": {"locale": "pt-BR", "timezone": "America/Sao_Paulo", "groupId": "a1"},
            "messageId": "m-1",
        },
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["success"] is True
    contact = sqlite_engine.store.get_contact("c9")
    assert contact is not None
    assert (contact.email, contact.name, contact.locale) == ("Ada@example.test", "Ada L", "pt")
    assert contact.timezone == "America/Sao_Paulo" and contact.traits["seats"] == 4
    answer = segment.post(
        "/v1/track",
        auth=AUTH,
        json={
            "userId": "c9",
            "event": "Report Exported",
            "properties": {"format": "csv"},
            "context": {"groupId": "a1"},
            "timestamp": _iso(now - timedelta(minutes=3)),
            "messageId": "m-2",
        },
    )
    assert answer.json()["events"] == 1
    [event] = _events(sqlite_engine, "Report Exported")
    assert (event.contact_id, event.account_id) == ("c9", "a1")
    assert event.properties == {"format": "csv"}
    assert event.occurred_at == now - timedelta(minutes=3)


def test_group_creates_the_account_and_joins_the_user(segment, sqlite_engine):
    answer = segment.post(
        "/v1/group",
        auth=AUTH,
        json={"userId": "c1", "groupId": "a7", "traits": {"name": "Initech", "plan": "pro"}},
    )
    assert answer.status_code == 200, answer.text
    account = sqlite_engine.store.get_account("a7")
    assert account is not None and account.name == "Initech" and account.traits == {"plan": "pro"}
    contact = sqlite_engine.store.get_contact("c1")
    assert contact is not None and contact.account_id == "a7"
    assert contact.email == "nancy@northwind.test"  # the rest of the contact is kept


def test_page_is_a_page_viewed_event(segment, sqlite_engine):
    segment.post(
        "/v1/page",
        auth=AUTH,
        json={"userId": "c1", "name": "Pricing", "properties": {"path": "/pricing"}},
    )
    [event] = _events(sqlite_engine, "page_viewed")
    assert event.properties == {"path": "/pricing", "name": "Pricing"}


def test_a_repeated_message_id_is_recorded_once(segment, sqlite_engine):
    call = {"userId": "c1", "event": "Login", "messageId": "dup-1"}
    first = segment.post("/v1/track", auth=AUTH, json=call).json()
    again = segment.post("/v1/batch", auth=AUTH, json={"batch": [{**call, "type": "track"}]})
    assert (first["events"], first["duplicates"]) == (1, 0)
    assert (again.json()["events"], again.json()["duplicates"]) == (0, 1)
    assert len(_events(sqlite_engine, "Login")) == 1


def test_clock_skew_is_corrected_from_sent_at(segment, sqlite_engine):
    # The device's clock is an hour fast: it stamped the event 10 s before it sent the batch.
    now = sqlite_engine.clock.now()
    device = now + timedelta(hours=1)
    answer = segment.post(
        "/v1/batch",
        auth=AUTH,
        json={
            "batch": [
                {
                    "type": "track",
                    "userId": "c1",
                    "event": "Login",
                    "timestamp": _iso(device - timedelta(seconds=10)),
                }
            ],
            "sentAt": _iso(device),
        },
    )
    assert answer.status_code == 200, answer.text
    [event] = _events(sqlite_engine, "Login")
    assert event.occurred_at == now - timedelta(seconds=10)


@given(
    skew=st.integers(min_value=-86_400 * 30, max_value=86_400 * 30),
    delay=st.integers(min_value=0, max_value=86_400),
)
def test_skew_correction_keeps_the_delay_the_device_measured(skew, delay):
    received = datetime(2026, 12, 7, 12, tzinfo=UTC)
    device_now = received + timedelta(seconds=skew)
    call = {
        "timestamp": _iso(device_now - timedelta(seconds=delay)),
        "sentAt": _iso(device_now),
    }
    assert occurred_at(call, received_at=received) == received - timedelta(seconds=delay)


def test_a_rudderstack_batch_is_stored_unchanged(segment, sqlite_engine):
    # The shape rudder-sdk-js / rudder-server send to /v1/batch (trimmed of nothing it needs).
    now = sqlite_engine.clock.now()
    sent = _iso(now)
    context = {
        "library": {"name": "RudderLabs JavaScript SDK", "version": "3.0.0"},
        "locale": "de-DE",
        "userAgent": "Mozilla/5.0",
        "traits": {"email": "hedy@initech.test"},
    }
    payload = {
        "batch": [
            {
                "type": "identify",
                "channel": "web",
                "userId": "r1",
                "anonymousId": "8d872292-709c-4f39-bba0-e2d4e1a5f6c1",
                "messageId": "6d7b4a4e-1a5c-4b8e-9d0b-7c2f5e0f0a11",
                "rudderId": "2f3b",
                "context": context,
                "traits": {"email": "hedy@initech.test", "name": "Hedy", "role": "admin"},
                "originalTimestamp": _iso(now - timedelta(seconds=5)),
                "sentAt": sent,
                "integrations": {"All": True},
            },
            {
                "type": "group",
                "channel": "web",
                "userId": "r1",
                "groupId": "g1",
                "messageId": "1d6f7b5a-0000-4000-8000-000000000002",
                "context": context,
                "traits": {"name": "Initech", "employees": 120},
                "originalTimestamp": _iso(now - timedelta(seconds=4)),
                "sentAt": sent,
            },
            {
                "type": "track",
                "channel": "web",
                "userId": "r1",
                "anonymousId": "8d872292-709c-4f39-bba0-e2d4e1a5f6c1",
                "event": "Dashboard Viewed",
                "messageId": "1d6f7b5a-0000-4000-8000-000000000003",
                "context": {**context, "groupId": "g1"},
                "properties": {"dashboard": "usage"},
                "originalTimestamp": _iso(now - timedelta(seconds=3)),
                "sentAt": sent,
            },
        ],
        "sentAt": sent,
        "writeKey": WRITE_KEY,
    }
    answer = segment.post("/v1/batch", content=json.dumps(payload), headers=_JSON)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"success": True, "events": 1, "duplicates": 0, "profiles": 3}
    contact = sqlite_engine.store.get_contact("r1")
    assert contact is not None
    assert (contact.account_id, contact.email, contact.locale) == ("g1", "hedy@initech.test", "de")
    assert contact.traits == {"role": "admin"}
    [event] = _events(sqlite_engine, "Dashboard Viewed")
    assert event.account_id == "g1" and event.occurred_at == now - timedelta(seconds=3)
    assert event.id == event_id("1d6f7b5a-0000-4000-8000-000000000003")


_JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize(
    "auth",
    [None, ("wrong-key-" + "x" * 20, ""), ("", WRITE_KEY)],
    ids=["none", "wrong", "as-password"],
)
def test_calls_without_the_write_key_are_refused_and_store_nothing(segment, sqlite_engine, auth):
    answer = segment.post("/v1/track", auth=auth, json={"userId": "c1", "event": "Login"})
    assert answer.status_code == 401
    assert "write key" in answer.json()["error"]
    assert _events(sqlite_engine, "Login") == []


def test_without_write_keys_the_v1_calls_are_off(client, sqlite_engine):
    answer = client.post("/v1/track", auth=AUTH, json={"userId": "c1", "event": "Login"})
    assert answer.status_code == 404
    assert _events(sqlite_engine, "Login") == []


def test_a_bad_call_in_a_batch_is_named_by_index_and_the_others_are_kept(segment, sqlite_engine):
    calls: list[Any] = [
        {"type": "track", "userId": "c1", "event": "Login", "messageId": "ok-0"},
        {"type": "track", "anonymousId": "anon", "event": "Login"},
        {"type": "identify", "userId": "c3", "traits": {"email": "not an address"}},
        {"type": "alias", "userId": "c1", "previousId": "x"},
        {
            "type": "track",
            "userId": "c1",
            "event": "Big",
            "properties": {"x": "y" * MAX_CALL_BYTES},
        },
        {"type": "track", "userId": "c1", "event": "Login", "messageId": "ok-5"},
        "not an object",
    ]
    answer = segment.post("/v1/batch", auth=AUTH, json={"batch": calls})
    assert answer.status_code == 400
    body = answer.json()
    assert body["error"].startswith("batch[1]: ")
    assert [e["index"] for e in body["errors"]] == [1, 2, 3, 4, 6]
    assert "userId" in body["errors"][0]["error"]
    assert "email" in body["errors"][1]["error"]
    assert "alias" in body["errors"][2]["error"]
    assert str(MAX_CALL_BYTES) in body["errors"][3]["error"]
    assert body["accepted"] == 2
    assert len(_events(sqlite_engine, "Login")) == 2  # the good calls are stored
    assert sqlite_engine.store.get_contact("c3") is None
    assert _events(sqlite_engine, "Big") == []
    # The sender retrying the whole batch records nothing twice.
    segment.post("/v1/batch", auth=AUTH, json={"batch": calls})
    assert len(_events(sqlite_engine, "Login")) == 2


def test_a_batch_over_500_kb_is_refused_unread(segment, sqlite_engine):
    call = {"type": "track", "userId": "c1", "event": "Login", "properties": {"x": "y" * 30_000}}
    answer = segment.post("/v1/batch", auth=AUTH, json={"batch": [call] * 18})
    assert answer.status_code == 413
    assert "512000" in answer.json()["error"]
    assert _events(sqlite_engine, "Login") == []


def test_a_single_call_over_32_kb_is_refused(segment):
    call = {"userId": "c1", "event": "Login", "properties": {"x": "y" * MAX_CALL_BYTES}}
    assert segment.post("/v1/track", auth=AUTH, json=call).status_code == 413


@pytest.mark.parametrize(
    ("path", "body", "names"),
    [
        ("/v1/track", {"userId": "c1"}, '"event" is required'),
        ("/v1/group", {"userId": "c1"}, '"groupId" is required'),
        ("/v1/track", {"userId": "c1", "event": "E", "timestamp": "yesterday"}, "timestamp"),
        ("/v1/track", {"userId": ["c1"], "event": "E"}, "userId"),
        ("/v1/track", {"userId": "c1", "event": "E", "properties": [1]}, "properties"),
        ("/v1/batch", {"batch": {"type": "track"}}, '"batch" is required'),
    ],
)
def test_malformed_calls_are_refused_with_the_field_named(
    segment, sqlite_engine, path, body, names
):
    answer = segment.post(path, auth=AUTH, json=body)
    assert answer.status_code == 400
    assert names in answer.json()["error"]
    assert _events(sqlite_engine, "E") == []


def test_malformed_json_is_refused(segment):
    answer = segment.post("/v1/track", auth=AUTH, content=b"{not json", headers=_JSON)
    assert answer.status_code == 400 and "not valid JSON" in answer.json()["error"]


def test_an_event_from_the_future_is_refused_after_correction(segment, sqlite_engine):
    later = sqlite_engine.clock.now() + timedelta(days=2)
    answer = segment.post(
        "/v1/track", auth=AUTH, json={"userId": "c1", "event": "E", "timestamp": _iso(later)}
    )
    assert answer.status_code == 400 and "ahead of the server's clock" in answer.json()["error"]


def test_a_wrong_key_in_the_header_is_refused_before_the_body_is_read(segment):
    huge = b'{"batch": [' + b" " * 600_000 + b"]}"
    answer = segment.post("/v1/batch", auth=("wrong-" + "k" * 20, ""), content=huge, headers=_JSON)
    assert answer.status_code == 401
