"""The SQL source on SQLite and PostgreSQL: mapping, paging, incremental reads, bad rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from onetomany.engine import Engine
from onetomany.errors import ConfigError, InputError
from onetomany.model.clock import FrozenClock
from onetomany.plugins.manager import Plugins
from onetomany.plugins.settings import PluginSettings
from onetomany.plugins.sources import pages, read_all
from onetomany.program import Program
from onetomany.store import Store
from onetomany_sql.source import SourceUnavailableError

T0 = datetime(2026, 11, 1, 9, 0)
NOW = datetime(2026, 12, 1, tzinfo=UTC)

ACCOUNTS = {
    "query": "SELECT id, company, plan, seats, mrr, changed_at FROM companies",
    "cursor": "changed_at",
    "columns": {"name": "company"},
}
CONTACTS = {
    "query": "SELECT id, company_id, full_name, email, job FROM users",
    "columns": {"account_id": "company_id", "name": "full_name", "role": "job"},
}
EVENTS = {
    "query": "SELECT seq, kind, at, user_id, feature FROM app_events",
    "cursor": "seq",
    "columns": {"name": "kind", "occurred_at": "at", "contact_id": "user_id"},
}


def insert(db: sa.Engine, table: str, rows: list[dict]) -> None:
    with db.begin() as conn:
        conn.execute(sa.table(table, *(sa.column(c) for c in rows[0])).insert(), rows)


def _companies(db, start, count, at=T0):
    insert(
        db,
        "companies",
        [
            {
                "id": f"c{i:04d}",
                "company": f"Company {i}",
                "plan": "pro",
                "seats": i,
                "mrr": 99.5,
                "changed_at": at + timedelta(minutes=i),
            }
            for i in range(start, start + count)
        ],
    )


def test_mapped_columns_fill_fields_and_the_rest_are_traits(host_db, make_source):
    _companies(host_db, 0, 2)
    insert(
        host_db,
        "users",
        [
            {
                "id": "u1",
                "company_id": "c0000",
                "full_name": "Ana",
                "email": "ana@example.test",
                "job": "sponsor",
                "changed_at": T0,
            }
        ],
    )
    insert(
        host_db,
        "app_events",
        [{"seq": 1, "kind": "login", "at": T0, "user_id": "u1", "feature": "reports"}],
    )
    result = read_all(make_source(accounts=ACCOUNTS, contacts=CONTACTS, events=EVENTS))
    first = result.accounts[0]
    assert (first.id, first.name) == ("c0000", "Company 0")
    # Numeric comes back as a number, and the cursor column is not a trait.
    assert dict(first.traits) == {"plan": "pro", "seats": 0, "mrr": 99.5}
    [ana] = result.contacts
    assert (ana.account_id, ana.name, ana.role, ana.email) == (
        "c0000",
        "Ana",
        "sponsor",
        "ana@example.test",
    )
    [login] = result.events
    assert (login.name, login.contact_id, dict(login.properties)) == (
        "login",
        "u1",
        {"feature": "reports"},
    )
    assert login.occurred_at == T0.replace(tzinfo=UTC)  # no offset: read in `timezone` (UTC)
    assert login.id  # no id column: a stable id from the row
    assert read_all(make_source(events=EVENTS)).events[0].id == login.id


def test_rows_stream_in_pages_of_page_size_with_a_cursor_after_each(host_db, make_source):
    _companies(host_db, 0, 25)
    synced = list(pages(make_source(accounts=ACCOUNTS, page_size=10).sync()))
    assert [len(p.accounts) for p in synced] == [10, 10, 5]
    last = json.loads(synced[-1].cursor)["accounts"]
    assert last["type"] in ("datetime", "str")  # SQLite hands timestamps back as text
    assert last["value"].startswith("2026-11-01")


def test_an_incremental_sync_reads_from_the_last_value_on(host_db, make_source):
    _companies(host_db, 0, 5)
    source = make_source(accounts=ACCOUNTS, events=EVENTS)
    insert(host_db, "app_events", [{"seq": 1, "kind": "login", "at": T0, "user_id": "u1"}])
    first = read_all(source)
    _companies(host_db, 5, 2)
    insert(host_db, "app_events", [{"seq": 2, "kind": "login", "at": T0, "user_id": "u1"}])
    again = read_all(source, cursor=first.cursor)
    # >=: the last row read is read again (harmless: upserted), then only the new ones.
    assert [a.id for a in again.accounts] == ["c0004", "c0005", "c0006"]
    assert len(again.events) == 2
    assert json.loads(again.cursor)["events"] == {"type": "int", "value": "2"}


def test_a_bad_row_is_skipped_by_name_and_the_rest_read(host_db, make_source):
    insert(
        host_db,
        "users",
        [
            {"id": "u1", "email": "ana@example.test", "changed_at": T0},
            {"id": "u2", "email": "not an email", "changed_at": T0},
            {"id": None, "email": "x@example.test", "changed_at": T0},
        ],
    )
    result = read_all(make_source(contacts={"query": "SELECT id, email FROM users"}))
    assert [c.id for c in result.contacts] == ["u1"]
    reasons = [str(s) for s in result.skipped]
    assert reasons[0].startswith("contacts row id='u2': ")
    assert "email" in reasons[0]
    assert reasons[1].startswith('contacts row {"id": null, "email": "x@example.test"}')
    assert "id column is empty" in reasons[1]


def test_a_number_json_cannot_hold_is_a_skip_naming_the_row(host_db, make_source):
    insert(
        host_db,
        "users",
        [
            {"id": "u1", "email": "ana@example.test", "changed_at": T0},
            {"id": "u2", "email": "budi@example.test", "changed_at": T0},
        ],
    )
    # PostgreSQL's numeric holds Infinity (a Decimal); SQLite hands back a float.
    infinity = "'Infinity'::numeric" if host_db.dialect.name == "postgresql" else "9e999"
    query = f"SELECT id, email, CASE WHEN id = 'u2' THEN {infinity} ELSE 1 END AS score FROM users"

    result = read_all(make_source(contacts={"query": query}))

    assert [c.id for c in result.contacts] == ["u1"]
    [skipped] = [str(s) for s in result.skipped]
    assert skipped.startswith("contacts row id='u2': ")
    assert "score" in skipped and "JSON number" in skipped


def test_a_query_without_a_required_column_names_the_option(host_db, make_source):
    source = make_source(events={"query": "SELECT seq, kind FROM app_events", "cursor": "seq"})
    with pytest.raises(ConfigError) as caught:
        read_all(source)
    assert caught.value.key == "usage.events.query"
    assert "no column 'name'" in str(caught.value)


def test_a_failing_query_names_the_source_and_hides_the_password(tmp_path):
    url = f"sqlite:///{tmp_path / 'h.db'}"
    source = _source(tmp_path, url=url, accounts={"query": "SELECT id FROM nowhere"})
    with pytest.raises(SourceUnavailableError, match="the accounts query failed: no such table"):
        read_all(source)
    pg = _source(
        tmp_path,
        url="postgresql+psycopg://app:hunter2@127.0.0.1:1/app",
        accounts={"query": "SELECT id FROM companies"},
    )
    with pytest.raises(SourceUnavailableError) as caught:
        read_all(pg)
    assert "hunter2" not in str(caught.value)
    assert "app:***@127.0.0.1" in str(caught.value)
    assert "hunter2" not in repr(pg.options)


def test_a_cursor_it_did_not_write_is_refused(tmp_path):
    source = _source(tmp_path, url="sqlite://", accounts=ACCOUNTS)
    with pytest.raises(InputError, match="not one this source wrote; run onetomany sync --full"):
        read_all(source, cursor="2026-01-01")


@pytest.mark.parametrize(
    ("options", "key", "reason"),
    [
        ({"accounts": ACCOUNTS}, "usage.url", "either url"),
        ({"url": "sqlite://", "url_env": "X", "accounts": ACCOUNTS}, "usage.url", "either url"),
        ({"url": "nonsense", "accounts": ACCOUNTS}, "usage.url", "not a SQLAlchemy URL"),
        ({"url_env": "ONETOMANY_TEST_UNSET", "accounts": ACCOUNTS}, "usage.url_env", "is unset"),
        ({"url": "sqlite://"}, "usage.accounts", "at least one of"),
        ({"url": "sqlite://", "acounts": {}}, "usage.acounts", "unknown option"),
        ({"url": "sqlite://", "accounts": {}}, "usage.accounts.query", "expected the SELECT"),
        (
            {"url": "sqlite://", "accounts": {"query": "SELECT 1", "cursor": "a; DROP"}},
            "usage.accounts.cursor",
            "expected a column name",
        ),
        (
            {"url": "sqlite://", "accounts": {"query": "SELECT 1", "columns": {"mail": "x"}}},
            "usage.accounts.columns.mail",
            "not a field of accounts",
        ),
        ({"url": "sqlite://", "accounts": ACCOUNTS, "page_size": 0}, "usage.page_size", "positive"),
        ({"url": "sqlite://", "accounts": ACCOUNTS, "timezone": "Mars/Base"}, "usage.timezone", ""),
    ],
)
def test_bad_options_name_their_key(tmp_path, options, key, reason):
    with pytest.raises(ConfigError) as caught:
        _source(tmp_path, **options)
    assert caught.value.key == key
    assert reason in str(caught.value)


def test_url_env_reads_the_url_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("APP_DB", f"sqlite:///{tmp_path / 'h.db'}")
    assert _source(tmp_path, url_env="APP_DB", accounts=ACCOUNTS).options.url.database == str(
        tmp_path / "h.db"
    )


def test_a_relative_sqlite_file_is_the_programs(tmp_path):
    source = _source(tmp_path, url="sqlite:///var/app.db", accounts=ACCOUNTS)
    assert source.options.url.database == str(tmp_path / "var" / "app.db")


def test_engine_sync_through_the_entry_point_resumes_and_holds_the_cursor_on_a_skip(
    tmp_path, host_db
):
    """Through the installed plugin: pages stored, a bad row reported, the cursor held."""
    _companies(host_db, 0, 30)
    url = host_db.url.render_as_string(hide_password=False)
    program = Program(
        name="p",
        sources={
            "usage": PluginSettings(
                name="usage",
                plugin="sql",
                options={"url": url, "accounts": ACCOUNTS, "events": EVENTS, "page_size": 10},
            )
        },
        base_dir=tmp_path,
        templates_dir=tmp_path,
    )
    insert(
        host_db,
        "app_events",
        [
            {"seq": 1, "kind": "login", "at": T0, "user_id": "u1"},
            {"seq": 2, "kind": None, "at": T0, "user_id": "u1"},
            {"seq": 3, "kind": "login", "at": T0 + timedelta(hours=1), "user_id": "u1"},
        ],
    )
    store = Store(tmp_path / "store.db")
    with Engine(program, store=store, clock=FrozenClock(NOW), plugins=Plugins()) as engine:
        [report] = engine.sync()
        assert (report.pages, report.accounts, report.events, report.new_events) == (4, 30, 2, 2)
        assert [str(s) for s in report.skips] == [
            "events row seq=2: the event name column is empty"
        ]
        # The accounts' pages moved the cursor; the events' page with the skip did not.
        stored = json.loads(store.get_cursor("source:usage"))
        assert set(stored) == {"accounts"}

        with host_db.begin() as conn:
            conn.execute(sa.text("UPDATE app_events SET kind = 'logout' WHERE seq = 2"))
        [report] = engine.sync()
        assert (report.accounts, report.events, report.new_events) == (1, 3, 1)
        assert json.loads(store.get_cursor("source:usage"))["events"]["value"] == "3"


def _source(tmp_path, **options):
    from onetomany_sql import SqlSource

    return SqlSource(PluginSettings(name="usage", plugin="sql", options=options, base_dir=tmp_path))
