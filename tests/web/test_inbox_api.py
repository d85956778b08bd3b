"""The inbox API over HTTP (Starlette's test client): what the widget calls, and what it
refuses (no token, a bad one, another contact's items, oversized and malformed bodies)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from onetomany.engine import Engine
from onetomany.web import create_app

from .conftest import KEYS, auth, deliver_tips, token


def test_the_list_shows_a_page_with_counts_and_the_contacts_locale(client, sqlite_engine):
    deliver_tips(sqlite_engine, "c2", 3)
    answer = client.get("/inbox?limit=2", headers=auth(sqlite_engine, "c2"))
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert [i["title"] for i in body["items"]] == ["Tip 3 for Andrew", "Tip 2 for Andrew"]
    assert body["counts"] == {"unread": 3, "unseen": 3}
    assert body["contact"] == {"locale": "pt", "timezone": "America/Sao_Paulo"}
    rest = client.get(f"/inbox?limit=2&after={body['next']}", headers=auth(sqlite_engine, "c2"))
    assert [i["title"] for i in rest.json()["items"]] == ["Tip 1 for Andrew"]
    assert rest.json()["next"] is None


def test_seen_read_archive_snooze_and_click_over_http(client, sqlite_engine):
    deliver_tips(sqlite_engine, "c1", 3)
    headers = auth(sqlite_engine, "c1")
    ids = [i["id"] for i in client.get("/inbox", headers=headers).json()["items"]]
    assert client.post("/inbox/seen", headers=headers).json()["counts"] == {
        "unread": 3,
        "unseen": 0,
    }
    read = client.post(f"/inbox/{ids[0]}/read", headers=headers).json()
    assert read == {"changed": 1, "counts": {"unread": 2, "unseen": 0}}
    archived = client.post(f"/inbox/{ids[1]}/archive", headers=headers).json()
    assert archived["counts"]["unread"] == 1
    tab = client.get("/inbox?tab=archived", headers=headers).json()["items"]
    assert [i["id"] for i in tab] == [ids[1]]
    snoozed = client.post(
        f"/inbox/{ids[2]}/snooze", headers=headers, json={"until": "2026-01-06T09:00"}
    )
    assert snoozed.json()["until"] == "2026-01-06T09:00:00+00:00"
    assert client.get("/inbox/counts", headers=headers).json() == {"unread": 0, "unseen": 0}
    click = client.post(f"/inbox/{ids[0]}/click", headers=headers)
    assert click.json() == {"url": "/tips/3"}
    assert client.post("/inbox/read", headers=headers, json={"all": True}).json()["changed"] == 0


def test_every_route_wants_a_valid_token(client, sqlite_engine):
    deliver_tips(sqlite_engine, "c1", 1)
    expired = token(sqlite_engine, "c1", ttl=timedelta(seconds=1))
    sqlite_engine.clock.advance(seconds=2)  # type: ignore[attr-defined]
    for headers in (
        {},
        {"Authorization": "Basic YzE6eA=="},
        {"Authorization": "Bearer "},
        {"Authorization": f"Bearer {expired}"},
        {"Authorization": f"Bearer {token(sqlite_engine, 'c1')[:-2]}"},
    ):
        for method, path in (
            ("GET", "/inbox"),
            ("GET", "/inbox/counts"),
            ("POST", "/inbox/1/read"),
        ):
            answer = client.request(method, path, headers=headers)
            assert answer.status_code == 401, (headers, path)
            assert "error" in answer.json()
            assert answer.headers["www-authenticate"].startswith("Bearer")
    assert sqlite_engine.unread_count("c1") == 1


def test_a_contacts_token_never_reaches_anothers_items(client, sqlite_engine):
    deliver_tips(sqlite_engine, "c1", 2)
    theirs = [i.id for i in sqlite_engine.inbox("c1")]
    mine = auth(sqlite_engine, "c2")
    assert client.get("/inbox", headers=mine).json()["items"] == []
    assert client.get("/inbox?tab=archived", headers=mine).json()["items"] == []
    assert client.get("/inbox/counts", headers=mine).json() == {"unread": 0, "unseen": 0}
    for action in ("read", "click", "archive", "unarchive"):
        assert client.post(f"/inbox/{theirs[0]}/{action}", headers=mine).status_code == 404
    snooze = client.post(f"/inbox/{theirs[0]}/snooze", headers=mine, json={"until": "2030-01-01"})
    assert snooze.status_code == 404
    assert client.post("/inbox/read", headers=mine, json={"ids": theirs}).json()["changed"] == 0
    assert client.post("/inbox/read", headers=mine, json={"all": True}).json()["changed"] == 0
    assert client.post("/inbox/seen", headers=mine).json()["changed"] == 0
    after = sqlite_engine.inbox("c1")
    assert [(i.read_at, i.seen_at, i.archived_at, i.snoozed_until) for i in after] == [
        (None, None, None, None)
    ] * 2


@pytest.mark.parametrize(
    ("body", "kind", "status", "message"),
    [
        (b"{", "application/json", 400, "not valid JSON"),
        (b"[1, 2]", "application/json", 400, "must be a JSON object, not list"),
        (b'{"ids": "all"}', "application/json", 400, '"ids": [item ids]'),
        (b'{"ids": [1, "x"]}', "application/json", 400, "inbox item id 'x' is not a row id"),
        (b'{"ids": [true]}', "application/json", 400, "is not a row id"),
        (b"ids=1", "application/x-www-form-urlencoded", 415, "must be application/json"),
        (b"[" * 100_000, "application/json", 413, "at most 16384"),
        (b'{"a": "' + b"x" * 20_000 + b'"}', "application/json", 413, "at most 16384"),
        (b"[" * 5000 + b"]" * 5000, "application/json", 400, "JSON"),
    ],
)
def test_bad_bodies_are_refused_and_change_nothing(
    client, sqlite_engine, body, kind, status, message
):
    deliver_tips(sqlite_engine, "c1", 1)
    headers = auth(sqlite_engine, "c1") | {"Content-Type": kind}
    answer = client.post("/inbox/read", headers=headers, content=body)
    assert answer.status_code == status
    assert message in answer.json()["error"]
    assert sqlite_engine.unread_count("c1") == 1


def test_a_body_without_a_length_is_cut_off_at_the_limit(client, sqlite_engine):
    deliver_tips(sqlite_engine, "c1", 1)
    chunks = (b"[" * 4096 for _ in range(100))  # sent chunked: no Content-Length to trust
    headers = auth(sqlite_engine, "c1") | {"Content-Type": "application/json"}
    answer = client.post("/inbox/read", headers=headers, content=chunks)
    assert answer.status_code == 413
    assert "longer than 16384 bytes" in answer.json()["error"]
    assert sqlite_engine.unread_count("c1") == 1


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/inbox?tab=trash", "tab 'trash' is not one of inbox, unread, archived"),
        ("/inbox?limit=0", "page size 0 is not from 1 to 100"),
        ("/inbox?limit=-1", "limit '-1' is not a whole number"),
        ("/inbox?limit=1000", "page size 1000"),
        ("/inbox?after=yesterday", "page position 'yesterday' is not one this inbox wrote"),
    ],
)
def test_bad_queries_name_what_is_wrong(client, sqlite_engine, path, message):
    answer = client.get(path, headers=auth(sqlite_engine, "c1"))
    assert answer.status_code == 400
    assert message in answer.json()["error"]


@pytest.mark.parametrize(
    ("until", "message"),
    [
        (None, '"until" is required'),
        ("tomorrow", "is not an ISO 8601"),
        ("2020-01-01", "after now"),
    ],
)
def test_a_bad_snooze_is_refused(client, sqlite_engine, until, message):
    deliver_tips(sqlite_engine, "c1", 1)
    item = sqlite_engine.inbox("c1")[0]
    answer = client.post(
        f"/inbox/{item.id}/snooze", headers=auth(sqlite_engine, "c1"), json={"until": until}
    )
    assert answer.status_code == 400
    assert message in answer.json()["error"]
    assert sqlite_engine.inbox("c1") == [item]


def test_bodies_are_escaped_and_only_web_links_are_handed_out(client, sqlite_engine):
    store, now = sqlite_engine.store, sqlite_engine.clock.now()
    for key, url in (
        ("x1", "javascript:alert(1)"),
        ("x2", "https://acme.test/a?b=1"),
        ("x3", "/help"),
    ):
        store.inbox_add(
            contact_id="c1",
            idempotency_key=key,
            touch="t",
            title="<b>hi</b>",
            body='<script>alert("x")</script>\nline two',
            url=url,
            now=now,
        )
    items = client.get("/inbox", headers=auth(sqlite_engine, "c1")).json()["items"]
    assert {i["url"] for i in items} == {None, "https://acme.test/a?b=1", "/help"}
    assert items[0]["body_html"] == (
        "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;<br>line two"
    )
    assert items[0]["title"] == "<b>hi</b>"  # text: the widget sets it as text, never as HTML


def test_the_widget_is_served_with_a_validator(client):
    answer = client.get("/widget.js")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/javascript")
    again = client.get("/widget.js", headers={"If-None-Match": answer.headers["etag"]})
    assert again.status_code == 304


def test_cors_answers_only_the_origins_named(sqlite_engine):
    from starlette.testclient import TestClient

    app = create_app(sqlite_engine, keys=KEYS, allowed_origins=["https://app.acme.test"])
    with TestClient(app) as client:
        preflight = {
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        }
        good = client.options(
            "/inbox/read", headers={"Origin": "https://app.acme.test"} | preflight
        )
        assert good.headers["access-control-allow-origin"] == "https://app.acme.test"
        evil = client.options("/inbox/read", headers={"Origin": "https://evil.test"} | preflight)
        assert "access-control-allow-origin" not in evil.headers
    with pytest.raises(ValueError, match="'\\*' is refused"):
        create_app(sqlite_engine, keys=KEYS, allowed_origins=["*"])


def test_a_read_repeated_counts_as_one_open(client, sqlite_engine: Engine):
    deliver_tips(sqlite_engine, "c1", 2)
    headers = auth(sqlite_engine, "c1")
    first = sqlite_engine.inbox("c1")[-1].id
    changed = [
        client.post("/inbox/read", headers=headers, json={"ids": [first]}).json()["changed"]
        for _ in range(5)
    ]
    assert changed == [1, 0, 0, 0, 0]
    assert sqlite_engine.unread_count("c1") == 1
    events = [e.name for _, e in sqlite_engine.store.events_after(0)]
    assert events.count("message_opened") == 1


def test_the_list_costs_one_sql_statement(client, sqlite_engine):
    deliver_tips(sqlite_engine, "c2", 3)
    headers = auth(sqlite_engine, "c2")
    statements: list[str] = []

    def record(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        if not _checkpoint(statement):
            statements.append(statement)

    sa.event.listen(sqlite_engine.store.engine, "before_cursor_execute", record)
    try:
        answer = client.get("/inbox?topic=&limit=2", headers=headers)
    finally:
        sa.event.remove(sqlite_engine.store.engine, "before_cursor_execute", record)
    assert answer.json()["counts"] == {"unread": 3, "unseen": 3}
    assert len(statements) == 1, statements


@pytest.mark.parametrize(("inline", "on_loop"), [(None, True), (True, True), (False, False)])
def test_reads_run_on_the_event_loop_on_sqlite_unless_told_otherwise(
    sqlite_engine, inline, on_loop
):
    deliver_tips(sqlite_engine, "c2", 2)
    where: list[bool] = []

    def record(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        if _checkpoint(statement):
            return
        try:
            asyncio.get_running_loop()
            where.append(True)
        except RuntimeError:
            where.append(False)

    app = create_app(sqlite_engine, keys=KEYS, inline_reads=inline)
    sa.event.listen(sqlite_engine.store.engine, "before_cursor_execute", record)
    try:
        with TestClient(app) as client:
            headers = auth(sqlite_engine, "c2")
            listed = client.get("/inbox", headers=headers).json()
            counted = client.get("/inbox/counts", headers=headers).json()
    finally:
        sa.event.remove(sqlite_engine.store.engine, "before_cursor_execute", record)
    assert len(listed["items"]) == 2 and counted == {"unread": 2, "unseen": 2}
    assert where == [on_loop, on_loop]


def _checkpoint(statement: str) -> bool:
    # The store's WAL checkpoint thread runs every quarter second after a write, on the same
    # engine: on a slow machine one lands inside the counted requests.
    return "wal_checkpoint" in statement
