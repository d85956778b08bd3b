"""A store that refuses writes loses no message, on SQLite and on PostgreSQL.

Another process holds the write lock while the dispatcher sends to a real SMTP server: on
SQLite ``BEGIN IMMEDIATE`` for longer than the store's ``busy_timeout``, on PostgreSQL ``LOCK
TABLE outbox IN EXCLUSIVE MODE`` for longer than the session's ``lock_timeout``. Either way
the store raises :class:`~onetomany.errors.StoreError` on the dispatcher's outcome write."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from collections import Counter

import pytest
import sqlalchemy as sa

from onetomany import Account, Contact
from onetomany.delivery.dispatcher import DEFAULT_RECORD_EVERY
from onetomany.engine import Engine
from onetomany.model import Delivery
from onetomany.plugins.hookspecs import hookimpl
from onetomany.plugins.manager import Plugins
from onetomany.program import load_program
from onetomany.store import Store

from .smtp_sink import SmtpSink

ROWS = 3 * DEFAULT_RECORD_EVERY

LOCKERS = {
    "sqlite": """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("ROLLBACK")
""",
    "postgresql": """
import psycopg, sys, time
conn = psycopg.connect(sys.argv[1])
conn.execute("LOCK TABLE outbox IN EXCLUSIVE MODE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.rollback()
""",
}


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    """(store URL, what the locker process connects to, the dialect) of an empty database
    whose writes give up after 0.2 s behind another's lock."""
    if request.param == "sqlite":
        path = str(tmp_path / "store.db")
        return path, path, "sqlite"
    url = sa.make_url(request.getfixturevalue("pg_url"))
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with_timeout = url.update_query_dict({"options": "-c lock_timeout=200"})
    return with_timeout.render_as_string(hide_password=False), conninfo, "postgresql"


class LockAfterFirstWrite:
    """Once the first outcomes are recorded, another process takes the write lock for
    ``hold`` seconds (the hook returns when it holds it)."""

    def __init__(self, database, hold: float) -> None:
        _, self.target, self.dialect = database
        self.hold = hold
        self.locker: subprocess.Popen[str] | None = None

    @hookimpl
    def onetomany_delivery_recorded(self, delivery: Delivery) -> None:
        if self.locker is None:
            self.locker = subprocess.Popen(
                [sys.executable, "-c", LOCKERS[self.dialect], self.target, str(self.hold)],
                stdout=subprocess.PIPE,
                text=True,
            )
            assert self.locker.stdout is not None
            assert self.locker.stdout.readline().strip() == "locked"

    def wait(self) -> None:
        assert self.locker is not None
        assert self.locker.wait(timeout=30) == 0


@pytest.fixture
def sink():
    with SmtpSink() as sink:
        yield sink


def _engine(tmp_path, database, port, lock, frozen_clock, patience):
    (tmp_path / "templates").mkdir(exist_ok=True)
    (tmp_path / "templates" / "hello.mjml").write_text(
        '+++\nsubject = "Hello {{ contact.name }}"\n+++\n'
        "<mjml><mj-body><mj-section><mj-column><mj-text>Hi {{ contact.name }}</mj-text>"
        "</mj-column></mj-section></mj-body></mjml>\n"
    )
    (tmp_path / "program.toml").write_text(
        textwrap.dedent(
            f"""
            [program]
            name = "lock"
            sender = "cs@acme.test"

            [channels.email]
            plugin = "smtp"
            host = "127.0.0.1"
            port = {port}

            [touches.hello]
            trigger = {{ event = "go" }}
            channel = "email"
            template = "hello"
            audience = {{ every = true }}
            """
        )
    )
    plugins = Plugins()  # the SMTP channel comes from its entry point
    plugins.register(lock, name="locker")
    return Engine(
        load_program(tmp_path),
        store=Store(database[0], busy_timeout=0.2),
        clock=frozen_clock,
        plugins=plugins,
        store_patience=patience,
    )


def _queue(engine):
    engine.identify(Account(id="a1", name="Acme"))
    engine.identify(
        *(
            Contact(id=f"c{i:03}", account_id="a1", name=f"P{i}", email=f"p{i}@acme.test")
            for i in range(ROWS)
        )
    )
    engine.track("go", account_id="a1", id="go-1")
    assert engine.tick() == ROWS


def _recipients(sink):
    return Counter(rcpt for _, rcpts in sink.envelopes for rcpt in rcpts)


def test_a_lock_held_past_busy_timeout_is_waited_out_and_nothing_is_lost(
    tmp_path, database, sink, frozen_clock
):
    lock = LockAfterFirstWrite(database, hold=1.5)
    with _engine(tmp_path, database, sink.port, lock, frozen_clock, patience=20) as engine:
        _queue(engine)
        report = engine.dispatch()
        lock.wait()
        rows = engine.store.outbox_rows()

    assert _recipients(sink) == Counter({f"p{i}@acme.test": 1 for i in range(ROWS)})
    assert (report.sent, report.dead, report.retrying) == (ROWS, 0, 0)
    assert (report.unrecorded, report.stopped) == (0, None)
    assert {row.status for row in rows} == {"sent"}


def test_a_lock_held_past_the_patience_stops_the_batch_and_keeps_its_outcomes(
    tmp_path, database, sink, frozen_clock
):
    lock = LockAfterFirstWrite(database, hold=2.0)
    with _engine(tmp_path, database, sink.port, lock, frozen_clock, patience=0.3) as engine:
        _queue(engine)
        first = engine.dispatch()

        # The batch stopped at its second write: the first outcomes are recorded, the next
        # ones are kept, the rest of the rows are untouched (still claimed) and none is dead.
        assert first.stopped is not None
        assert ("database is locked" if database[2] == "sqlite" else "lock") in first.stopped
        assert first.sent == len(sink.messages) == 2 * DEFAULT_RECORD_EVERY
        assert first.unrecorded == DEFAULT_RECORD_EVERY
        assert (first.dead, first.retrying) == (0, 0)
        statuses = Counter(row.status for row in engine.store.outbox_rows())
        assert statuses == {"sent": DEFAULT_RECORD_EVERY, "claimed": ROWS - DEFAULT_RECORD_EVERY}

        # The store is back: the next call writes the kept outcomes first; the untouched rows
        # come back when their lease runs out.
        lock.wait()
        second = engine.dispatch()
        assert (second.claimed, second.unrecorded, second.stopped) == (0, 0, None)
        statuses = Counter(row.status for row in engine.store.outbox_rows())
        assert statuses == {"sent": 2 * DEFAULT_RECORD_EVERY, "claimed": DEFAULT_RECORD_EVERY}
        frozen_clock.advance(seconds=engine.dispatcher.lease.total_seconds() + 1)
        third = engine.dispatch()
        rows = engine.store.outbox_rows()

    assert _recipients(sink) == Counter({f"p{i}@acme.test": 1 for i in range(ROWS)})
    assert first.sent + second.sent + third.sent == len(sink.messages) == ROWS
    assert {row.status for row in rows} == {"sent"}


def test_closing_the_engine_writes_the_outcomes_it_kept(tmp_path, database, sink, frozen_clock):
    lock = LockAfterFirstWrite(database, hold=1.0)
    with _engine(tmp_path, database, sink.port, lock, frozen_clock, patience=0.1) as engine:
        _queue(engine)
        assert engine.dispatch().unrecorded == DEFAULT_RECORD_EVERY
        lock.wait()
    store = Store(database[0])
    statuses = Counter(row.status for row in store.outbox_rows())
    store.close()
    assert statuses == {
        "sent": 2 * DEFAULT_RECORD_EVERY,
        "claimed": ROWS - 2 * DEFAULT_RECORD_EVERY,
    }


# -- a database out of reach while a batch is read -----------------------------------------------


class OutageAfterClaim:
    """Right after the dispatcher's first claim, the database refuses every connection (its
    sessions are ended and new ones turned away, as during a restart) for ``seconds``."""

    def __init__(self, engine: Engine, admin: sa.Engine, seconds: float) -> None:
        self.admin, self.seconds = admin, seconds
        self.database = sa.make_url(engine.store.url).database
        self.over = threading.Event()
        self.started = False
        claim = engine.store.claim

        def claim_then_fail(**kwargs):  # type: ignore[no-untyped-def]
            rows = claim(**kwargs)
            if rows and not self.started:
                self.started = True
                self._set(allow=False)
                threading.Timer(seconds, self._end).start()
            return rows

        engine.store.claim = claim_then_fail  # type: ignore[method-assign]

    def _set(self, *, allow: bool) -> None:
        with self.admin.connect() as conn:
            conn.execute(
                sa.text(f'ALTER DATABASE "{self.database}" WITH ALLOW_CONNECTIONS {allow}')
            )
            if not allow:
                conn.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": self.database},
                )

    def _end(self) -> None:
        self._set(allow=True)
        self.over.set()


@pytest.fixture
def pg_database(pg_url):
    """(store URL, what the locker connects to, the dialect) of a fresh PostgreSQL database."""
    url = sa.make_url(pg_url)
    return (
        pg_url,
        url.set(drivername="postgresql").render_as_string(hide_password=False),
        "postgresql",
    )


def test_a_database_out_of_reach_while_a_batch_is_read_is_waited_out(
    tmp_path, pg_database, postgres_admin, sink, frozen_clock
):
    with _engine(tmp_path, pg_database, sink.port, object(), frozen_clock, patience=20) as engine:
        _queue(engine)
        outage = OutageAfterClaim(engine, postgres_admin, seconds=1.0)
        report = engine.dispatch()
        rows = engine.store.outbox_rows()

    assert outage.started and outage.over.wait(10)
    assert _recipients(sink) == Counter({f"p{i}@acme.test": 1 for i in range(ROWS)})
    assert (report.sent, report.dead, report.retrying, report.held) == (ROWS, 0, 0, 0)
    assert (report.unrecorded, report.stopped) == (0, None)
    assert {row.status for row in rows} == {"sent"}


def test_a_database_out_of_reach_past_the_patience_stops_the_pass_without_raising(
    tmp_path, pg_database, postgres_admin, sink, frozen_clock
):
    with _engine(tmp_path, pg_database, sink.port, object(), frozen_clock, patience=0.3) as engine:
        _queue(engine)
        outage = OutageAfterClaim(engine, postgres_admin, seconds=2.0)
        first = engine.dispatch()

        assert first.stopped is not None
        assert "cannot read from store" in first.stopped
        assert (first.sent, first.dead, first.retrying) == (0, 0, 0)
        assert not sink.messages

        # Back: the claimed rows return when their lease runs out, and each is sent once.
        assert outage.over.wait(10)
        frozen_clock.advance(seconds=engine.dispatcher.lease.total_seconds() + 1)
        second = engine.dispatch()
        rows = engine.store.outbox_rows()

    assert second.sent == ROWS
    assert _recipients(sink) == Counter({f"p{i}@acme.test": 1 for i in range(ROWS)})
    assert {row.status for row in rows} == {"sent"}
