"""The store: every row onetomany keeps, behind one class.

SQLite (a file, in WAL mode) is the embedded default; any SQLAlchemy URL works, PostgreSQL
being the one to scale out on. All SQL lives in this package: here, in ``queries/`` (what
the trackers and the CLI's views ask) and in ``segments.py`` (the segment compiler). Writes
that belong together (a sync, a tick's queued touches and its cursor, a delivery and its
row's new status) share one transaction, so a crash at any point leaves either all of them
or none.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from itertools import repeat
from operator import attrgetter
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import attrs
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from onetomany.errors import StoreError
from onetomany.model import Account, Contact, Delivery, Event, OutboxStatus
from onetomany.rules.tiers import TierState
from onetomany.rules.triggers import DELIVERY_EVENTS
from onetomany.store import schema
from onetomany.store.checkpoints import (
    DEFAULT_CHECKPOINT_INTERVAL,
    SAFETY_NET_PAGES,
    Checkpoints,
)
from onetomany.store.driver import DriverStatement, ResultShape
from onetomany.store.migrate import upgrade

log = logging.getLogger(__name__)

DEFAULT_URL = "sqlite:///onetomany.db"
P = TypeVar("P", Account, Contact)
_CHUNK = 500
#: Seconds between two tries for SQLite's write lock.
_LOCK_POLL = 0.001


@attrs.frozen(kw_only=True)
class OutboxRow:
    """One queued touch for one recipient: what to render, where, and its delivery state."""

    id: int
    idempotency_key: str
    program: str
    touch: str
    channel: str
    template: str
    contact_id: str | None
    account_id: str | None
    event_id: str | None
    payload: Mapping[str, Any]
    status: str
    attempts: int
    available_at: datetime
    last_error: str | None = None
    #: The token of the claim that handed this row out; outcome writes must carry it.
    claim_token: str | None = None

    @classmethod
    def from_row(cls, row: sa.Row[Any]) -> OutboxRow:
        m = row._mapping
        return cls(**{field.name: m[field.name] for field in attrs.fields(cls)})


@attrs.frozen(kw_only=True)
class NewTouch:
    """A touch the engine decided to queue; becomes an :class:`OutboxRow`."""

    idempotency_key: str
    program: str
    touch: str
    channel: str
    template: str
    contact_id: str | None
    account_id: str | None
    event_id: str | None = None
    payload: Mapping[str, Any] = attrs.field(factory=dict)
    available_at: datetime


@attrs.frozen(kw_only=True)
class Outcome:
    """One attempt to record: the delivery, the claim it was made under, and for a retry
    when the row is due again."""

    delivery: Delivery
    claim_token: str
    retry_at: datetime | None = None


@attrs.frozen(kw_only=True)
class InboxItem:
    """One in-app message kept for a contact."""

    id: int
    contact_id: str
    touch: str
    title: str
    body: str
    url: str | None
    created_at: datetime
    read_at: datetime | None
    #: The outbox row's key: a read or a click of the item is an engagement event naming it.
    idempotency_key: str = ""
    topic: str | None = None
    #: When the bell's list showed it (``None``: it counts as unseen).
    seen_at: datetime | None = None
    archived_at: datetime | None = None
    #: Hidden until then, when it comes back unread.
    snoozed_until: datetime | None = None

    @property
    def shown_at(self) -> datetime:
        """Where the item sorts, newest first: when it arrived, or came back from a snooze."""
        return self.snoozed_until or self.created_at


class _Releasing(contextlib.AbstractContextManager[object]):
    """Releases an already acquired lock on exit."""

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock

    def __exit__(self, *_exc: object) -> None:
        self._lock.release()


def normalize_url(url: str | Path) -> str:
    """A SQLAlchemy URL; a bare path means a SQLite file at that path."""
    text = str(url)
    if "://" in text:
        return text
    return f"sqlite:///{Path(text).expanduser()}"


def _sqlite_pragmas(busy_timeout: float, autocheckpoint: int | None = None) -> Any:
    def apply(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        cursor = dbapi_connection.cursor()
        # WAL lets track() write while a dispatcher reads; NORMAL is durable in WAL mode
        # except for the last transactions on power loss, never corrupting the file.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        if autocheckpoint is not None:
            # Checkpoints run in a thread (onetomany.store.checkpoints), not in a commit.
            cursor.execute(f"PRAGMA wal_autocheckpoint={autocheckpoint}")
        cursor.close()

    return apply


#: The databases the store's migrations and queries are written and tested for.
BACKENDS = ("sqlite", "postgresql")


def _create_engine(
    url: str, busy_timeout: float = 10.0, autocheckpoint: int | None = None
) -> Engine:
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise StoreError(f"store URL {url!r} does not parse: {exc}") from exc
    shown = parsed.render_as_string(hide_password=True)
    backend = parsed.get_backend_name()
    if backend not in BACKENDS:
        raise StoreError(
            f"store {shown}: the store runs on SQLite (a file path or sqlite:///PATH) or "
            f"PostgreSQL (postgresql+psycopg://USER@HOST/DB), not {backend!r}"
        )
    if backend != "sqlite":
        try:
            return sa.create_engine(url, pool_pre_ping=True)
        except (ImportError, sa.exc.NoSuchModuleError) as exc:
            raise StoreError(
                f"store {shown}: the database driver is not installed ({exc}); "
                "install it, or use postgresql+psycopg:// with pip install 'psycopg[binary]'"
            ) from exc
    database = parsed.database
    if database and database != ":memory:" and not database.startswith("file:"):
        path = Path(database)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the folder for store {path}: {exc}") from exc
    engine = sa.create_engine(url)
    sa.event.listen(engine, "connect", _sqlite_pragmas(busy_timeout, autocheckpoint))
    return engine


def _is_sqlite_file(url: str) -> bool:
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        return False  # _create_engine names what is wrong with it
    database = parsed.database or ""
    return (
        parsed.get_backend_name() == "sqlite"
        and database not in ("", ":memory:")
        and ("mode=memory" not in database)
    )


#: The PostgreSQL advisory lock key migrations hold (any fixed 64-bit number; "otm-migr").
_MIGRATION_LOCK = 0x6F746D2D6D696772


def _due(found: tuple[int, datetime]) -> tuple[datetime, int]:
    """The claim order of a due row: the longest waiting first, then the oldest."""
    row_id, available_at = found
    return available_at, row_id


class Store:
    """Everything onetomany persists.

    :param url: a SQLAlchemy URL or a path to a SQLite file (created if missing).
    :param migrate: apply pending migrations on open (the default).
    :param busy_timeout: on SQLite, seconds a write waits for another connection's write
        lock before it fails with a :class:`~onetomany.errors.StoreError`.
    :param checkpoint_interval: on a SQLite file, seconds between the WAL checkpoints a
        thread of the store runs after writes, so that no commit on a request path pays for
        one (:mod:`onetomany.store.checkpoints`); ``None`` leaves them to SQLite's commits.
    """

    def __init__(
        self,
        url: str | Path = DEFAULT_URL,
        *,
        migrate: bool = True,
        busy_timeout: float = 10.0,
        checkpoint_interval: float | None = DEFAULT_CHECKPOINT_INTERVAL,
    ) -> None:
        self.url = normalize_url(url)
        in_file = _is_sqlite_file(self.url)
        background = checkpoint_interval is not None and in_file
        self.engine = _create_engine(
            self.url, busy_timeout, SAFETY_NET_PAGES if background else None
        )
        self.dialect = self.engine.dialect.name
        self._checkpoints = (
            Checkpoints(self.engine, checkpoint_interval)
            if background and checkpoint_interval is not None
            else None
        )
        self.busy_timeout = busy_timeout
        # SQLite has one writer. Threads of this process queue for it here, in turn, rather
        # than in SQLite's busy handler, which polls with growing sleeps (up to 100 ms) and
        # so makes a track() wait long after the lock is free.
        self._writer = threading.Lock() if self.dialect == "sqlite" else None
        self._insert_new_stmts: dict[tuple[str, str], Any] = {}
        self._plain_inserts: dict[str, _PlainInsert] = {}
        self._delivery_statements: _DeliveryPath | None = None
        if migrate:
            self.upgrade()
        else:
            self._check_usable()

    def __repr__(self) -> str:
        return f"Store({self.engine.url.render_as_string(hide_password=True)!r})"

    def upgrade(self) -> list[str]:
        """Apply pending migrations; returns the revisions applied."""
        try:
            with self.engine.begin() as conn:
                if self.dialect == "postgresql":
                    # Workers starting together on a fresh database: one migrates, the others
                    # wait for its commit and then find nothing left to apply.
                    conn.execute(
                        sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK}
                    )
                return upgrade(conn)
        except sa.exc.OperationalError as exc:
            raise StoreError(f"cannot open or migrate store {self!r}: {exc.orig}") from exc

    def _check_usable(self) -> None:
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.OperationalError as exc:
            raise StoreError(f"cannot open store {self!r}: {exc.orig}") from exc

    def close(self) -> None:
        if self._checkpoints is not None:
            self._checkpoints.close()
        self.engine.dispose()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection to read with (the query modules in ``store/queries`` use it).

        As for :meth:`write`, a lost connection or a database that cannot be reached (a
        PostgreSQL restart) is a :class:`~onetomany.errors.StoreError`, which callers may
        wait out.
        """
        try:
            with self.engine.connect() as conn:
                yield conn
        except sa.exc.DBAPIError as exc:
            self._raise_if_unavailable(exc, "read from")
            raise

    def _raise_if_unavailable(self, exc: sa.exc.DBAPIError, doing: str) -> None:
        """Raise a StoreError for ``exc`` when it says the store is out of reach (a lock held
        too long, a lost connection), which callers may wait out. Anything else is about the
        statement, and the caller raises it as it is."""
        if isinstance(exc, sa.exc.OperationalError) or exc.connection_invalidated:
            raise StoreError(f"cannot {doing} store {self!r}: {exc.orig}") from exc

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction, committed when the block ends (rolled back on an error).

        On SQLite it takes the write lock at once; a lock held too long or a lost connection
        is a :class:`~onetomany.errors.StoreError`, which callers may wait out.
        """
        with self._turn():
            yield from self._transaction()
        if self._checkpoints is not None:
            self._checkpoints.wrote()

    def _turn(self) -> contextlib.AbstractContextManager[object]:
        """This process's turn to write (SQLite), within ``busy_timeout``."""
        writer = self._writer
        if writer is None:
            return contextlib.nullcontext()
        if not writer.acquire(timeout=self.busy_timeout):
            raise StoreError(
                f"cannot write to store {self!r}: another thread of this process held the "
                f"write lock for more than {self.busy_timeout} s"
            )
        return _Releasing(writer)

    def _transaction(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                if self.dialect == "sqlite":
                    # Take the write lock now, not at the first write: a transaction that
                    # reads before it writes (save_profiles merges) must not interleave with
                    # another writer, and waiting here honours busy_timeout, where upgrading
                    # a read lock later fails at once with "database is locked".
                    self._begin_immediate(conn)
                yield conn
        except sa.exc.DBAPIError as exc:
            self._raise_if_unavailable(exc, "write to")
            raise

    def _begin_immediate(self, conn: Connection) -> None:
        """``BEGIN IMMEDIATE``, trying again every millisecond for ``busy_timeout`` seconds.

        SQLite's own busy handler sleeps longer and longer between tries (up to 100 ms), so
        a write waiting behind another process's transaction of a few milliseconds could wait
        tens of milliseconds more: too long for a track() on a request path.
        """
        deadline = time.monotonic() + self.busy_timeout
        conn.exec_driver_sql("PRAGMA busy_timeout = 0")
        try:
            while True:
                try:
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                    return
                except sa.exc.OperationalError as exc:
                    if "locked" not in str(exc.orig) or time.monotonic() >= deadline:
                        raise
                time.sleep(_LOCK_POLL)
        finally:
            conn.exec_driver_sql(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")

    def _insert(self, table: sa.Table) -> Any:
        if self.dialect == "postgresql":
            return postgresql.insert(table)
        if self.dialect == "sqlite":
            return sqlite.insert(table)
        raise StoreError(f"unsupported database dialect {self.dialect!r}; use SQLite or PostgreSQL")

    def _upsert(self, conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        # Built once per table and set of columns: building it (and its cache key) cost as
        # much as running it, at every page of a sync and every cursor set.
        key = (self.dialect, table, tuple(rows[0]))
        stmt = _UPSERTS.get(key)
        if stmt is None:
            insert = self._insert(table)
            keys = [c.name for c in table.primary_key.columns]
            update = {c: insert.excluded[c] for c in rows[0] if c not in keys}
            stmt = _UPSERTS[key] = insert.on_conflict_do_update(index_elements=keys, set_=update)
        conn.execute(stmt, rows)

    # -- profiles ---------------------------------------------------------------------------

    def save_profiles(
        self,
        *,
        accounts: Iterable[Account] = (),
        contacts: Iterable[Contact] = (),
        events: Iterable[Event] = (),
        now: datetime,
        cursor: tuple[str, str] | None = None,
    ) -> int:
        """Save accounts and contacts, add events and set a cursor, in one transaction.

        A profile changes only the fields it gives (:meth:`Contact.onto
        <onetomany.model.Contact.onto>`): the stored rows are read and locked in the same
        transaction, merged in Python and written back, so concurrent writers lose no field.
        Returns the number of events that were new.
        """
        with self.write() as conn:
            self._merge(conn, schema.accounts, list(accounts), _account, _account_row, now)
            self._merge(conn, schema.contacts, list(contacts), _contact, _contact_row, now)
            added = self._add_events(conn, events, now)
            if cursor is not None:
                self._set_cursor(conn, cursor[0], cursor[1], now)
        return added

    def _merge(
        self,
        conn: Connection,
        table: sa.Table,
        profiles: list[P],
        read: Callable[[sa.Row[Any]], P],
        row_of: Callable[[P, datetime], dict[str, Any]],
        now: datetime,
    ) -> None:
        """Apply ``profiles`` (in order) onto the stored rows of their ids and write them."""
        if not profiles:
            return
        ids = sorted({p.id for p in profiles})

        def merged(stored: Mapping[str, P]) -> dict[str, P]:
            result: dict[str, P] = {}
            for profile in profiles:
                if profile.id in stored:
                    result[profile.id] = profile.onto(result.get(profile.id) or stored[profile.id])
            return result

        stored = {row.id: read(row) for row in self._locked(conn, table, ids)}
        new_ids = [i for i in ids if i not in stored]
        if new_ids:
            fresh: dict[str, P] = {}
            for profile in profiles:
                if profile.id in stored:
                    continue
                earlier = fresh.get(profile.id)
                if earlier is None and None not in profile.traits.values():
                    # A profile built from its fields already holds the defaults of those it
                    # does not give: onto(None) would copy it field by field to the same row.
                    fresh[profile.id] = profile
                else:
                    fresh[profile.id] = profile.onto(earlier)
            # A concurrent writer may have created some of them since they were read: those
            # are not inserted here, but read (and locked) again and merged like the others.
            inserted = self._insert_new_ids(conn, table, [fresh[i] for i in new_ids], row_of, now)
            if raced := [i for i in new_ids if i not in inserted]:
                stored |= {row.id: read(row) for row in self._locked(conn, table, raced)}
        self._upsert(conn, table, [row_of(p, now) for p in merged(stored).values()])

    def _locked(self, conn: Connection, table: sa.Table, ids: list[str]) -> Iterator[sa.Row[Any]]:
        """The rows of ``ids`` (sorted), locked until the transaction ends on PostgreSQL (in
        id order, so writers of overlapping profiles cannot deadlock); SQLite's write
        transaction already excludes other writers."""
        if self.dialect == "sqlite":
            yield from conn.execute(_stored_rows(table), {"ids": ids})
            return
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            query = sa.select(table).where(table.c.id.in_(chunk)).order_by(table.c.id)
            yield from conn.execute(query.with_for_update())

    def _insert_new_ids(
        self,
        conn: Connection,
        table: sa.Table,
        profiles: list[P],
        row_of: Callable[[P, datetime], dict[str, Any]],
        now: datetime,
    ) -> set[str]:
        """Insert ``profiles`` whose id is not stored yet; returns the ids inserted."""
        if self.dialect == "sqlite":
            # The write transaction (BEGIN IMMEDIATE) excludes every other writer since the
            # ids were read: none can have been created since, and a plain executemany costs
            # less than one asking each row back.
            self._plain_insert(table).run(conn, profiles, now)
            return {p.id for p in profiles}
        rows = [row_of(p, now) for p in profiles]
        stmt = self._insert(table).on_conflict_do_nothing(index_elements=["id"])
        return {row.id for row in conn.execute(stmt.returning(table.c.id), rows)}

    def _plain_insert(self, table: sa.Table) -> _PlainInsert:
        plain = self._plain_inserts.get(table.name)
        if plain is None:
            plain = _PlainInsert.of(table, self.engine.dialect)
            self._plain_inserts[table.name] = plain
        return plain

    def get_account(self, account_id: str) -> Account | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(schema.accounts).where(schema.accounts.c.id == account_id)
            ).first()
        return _account(row) if row else None

    def _by_id(self, query: DriverStatement, ids: Iterable[str]) -> Iterator[Sequence[Any]]:
        """The rows of ``query`` (one of _DeliveryPath's profile reads) for ``ids``."""
        wanted = sorted(set(ids))
        listed = query.processor("ids")
        with self.read() as conn:
            # In pages, so a large read holds one page of raw rows at a time.
            for start in range(0, len(wanted), _CHUNK):
                yield from query.run(conn, [(listed(wanted[start : start + _CHUNK]),)]).all()

    def get_contacts(self, ids: Iterable[str]) -> dict[str, Contact]:
        """The contacts with these ids, by id (missing ids are simply absent)."""
        path = self._delivery_path()
        found = path.contact_shape.read(self._by_id(path.contacts, ids))
        return {fields["id"]: Contact.restored(**fields) for fields in found}

    def get_accounts(self, ids: Iterable[str]) -> dict[str, Account]:
        """The accounts with these ids, by id (missing ids are simply absent)."""
        path = self._delivery_path()
        found = path.account_shape.read(self._by_id(path.accounts, ids))
        return {fields["id"]: Account(**fields) for fields in found}

    def all_contacts(self) -> list[Contact]:
        """Every contact, in id order."""
        t = schema.contacts
        with self.engine.connect() as conn:
            return [_contact(row) for row in conn.execute(sa.select(t).order_by(t.c.id))]

    def accounts(self) -> Iterator[Account]:
        """Every account, in id order, read in pages."""
        t = schema.accounts
        last = ""
        while True:
            with self.engine.connect() as conn:
                page = list(
                    conn.execute(sa.select(t).where(t.c.id > last).order_by(t.c.id).limit(1000))
                )
            if not page:
                return
            yield from (_account(row) for row in page)
            last = page[-1].id

    def tier_states(self) -> dict[str, TierState]:
        """Every account's tier state, by account id."""
        with self.engine.connect() as conn:
            return {
                row.account_id: TierState(
                    tier=row.tier,
                    since=row.since,
                    candidate=row.candidate,
                    candidate_since=row.candidate_since,
                )
                for row in conn.execute(sa.select(schema.tier_states))
            }

    def save_tier_states(
        self, states: Mapping[str, TierState], *, events: Iterable[Event] = (), now: datetime
    ) -> None:
        """Store tier states and the events their changes emit, in one transaction."""
        rows = [
            {
                "account_id": account_id,
                "tier": str(state.tier),
                "since": state.since,
                "candidate": str(state.candidate) if state.candidate else None,
                "candidate_since": state.candidate_since,
            }
            for account_id, state in states.items()
        ]
        with self.write() as conn:
            self._upsert(conn, schema.tier_states, rows)
            self._add_events(conn, events, now)

    def get_contact(self, contact_id: str) -> Contact | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(schema.contacts).where(schema.contacts.c.id == contact_id)
            ).first()
        return _contact(row) if row else None

    def contacts_of(self, account_id: str) -> list[Contact]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(schema.contacts)
                .where(schema.contacts.c.account_id == account_id)
                .order_by(schema.contacts.c.id)
            )
            return [_contact(row) for row in rows]

    def count(self, table: str) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count()).select_from(schema.metadata.tables[table])
                ).scalar_one()
            )

    # -- events -----------------------------------------------------------------------------

    def add_events(self, events: Iterable[Event], *, now: datetime) -> int:
        """Store events, ignoring ids already stored; returns how many were new."""
        with self.write() as conn:
            return self._add_events(conn, events, now)

    def _add_events(self, conn: Connection, events: Iterable[Event], now: datetime) -> int:
        rows = [_event_row(e, now) for e in events]
        if not rows:
            return 0
        return self._insert_new(conn, schema.events, "id", rows)

    def _insert_new(
        self, conn: Connection, table: sa.Table, key: str, rows: list[dict[str, Any]]
    ) -> int:
        """Insert ``rows``, skipping those whose unique ``key`` exists; returns how many were new.

        Counted with RETURNING: drivers disagree on what ``rowcount`` means for an upsert.
        """
        if not rows:
            return 0
        stmt = self._insert_new_stmts.get((table.name, key))
        if stmt is None:
            # Built once per table: building it cost a track() about a tenth of its time.
            stmt = (
                self._insert(table)
                .on_conflict_do_nothing(index_elements=[key])
                .returning(table.c[key])
            )
            self._insert_new_stmts[(table.name, key)] = stmt
        return len(conn.execute(stmt, rows).all())

    def latest_events(
        self, name: str, *, by: str, ids: Iterable[str], until: datetime
    ) -> dict[str, Event]:
        """The latest event ``name`` at or before ``until`` for each account (``by="account"``)
        or contact (``by="contact"``) among ``ids``, by that id.

        One index seek per id (``ix_events_account_name_time`` or its contact twin): the
        cost is the ids asked about, not how many such events each one has."""
        t = schema.events
        wanted = sorted(set(ids))
        latest: dict[str, Event] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(wanted), _CHUNK):
                query = _latest_of_each(
                    name, by=by, ids=wanted[start : start + _CHUNK], until=until
                )
                for row in conn.execute(sa.select(t).where(t.c.seq.in_(query))):
                    subject = row.account_id if by == "account" else row.contact_id
                    latest[subject] = event_from_row(row)
        return latest

    def events_after(
        self, after: EventPosition | int = 0, *, limit: int = 1000
    ) -> list[tuple[EventPosition, Event]]:
        """Events stored after position ``after`` (an int is a ``seq``), oldest first, with
        their positions.

        On PostgreSQL a writer can commit after another that took a higher ``seq``, so the log
        is read in (transaction id, seq) order and only up to the oldest transaction still
        running: whatever commits later sorts after what is returned now, and a reader that
        keeps the last position it handled never steps past an event. A long transaction
        anywhere in the cluster holds the events written after it back until it ends.
        """
        if isinstance(after, int):
            after = EventPosition(0, after)
        t = schema.events
        query = sa.select(t).limit(limit)
        if self.dialect == "postgresql":
            oldest_running = sa.text("pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
            query = query.where(
                sa.tuple_(t.c.txid, t.c.seq)
                > sa.tuple_(sa.literal(after.txid), sa.literal(after.seq)),
                t.c.txid < oldest_running,
            ).order_by(t.c.txid, t.c.seq)
        else:
            query = query.where(t.c.seq > after.seq).order_by(t.c.seq)
        with self.engine.connect() as conn:
            return [(EventPosition.of(row), event_from_row(row)) for row in conn.execute(query)]

    # -- cursors ----------------------------------------------------------------------------

    def get_cursor(self, name: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(schema.cursors.c.value).where(schema.cursors.c.name == name)
            ).scalar_one_or_none()

    def _set_cursor(self, conn: Connection, name: str, value: str, now: datetime) -> None:
        self._upsert(conn, schema.cursors, [{"name": name, "value": value, "updated_at": now}])

    # -- outbox -----------------------------------------------------------------------------

    def enqueue(
        self,
        touches: Sequence[NewTouch],
        *,
        now: datetime,
        cursor: tuple[str, str] | None = None,
        cursors: Sequence[tuple[str, str]] = (),
    ) -> int:
        """Queue touches, skipping idempotency keys already queued; returns how many were new.

        ``cursor`` (and each of ``cursors``, as ``(name, value)``) is set in the same
        transaction, so a trigger's progress and the touches it produced are committed
        together.
        """
        with self.write() as conn:
            rows = [_outbox_row(touch, now) for touch in touches]
            added = self._insert_new(conn, schema.outbox, "idempotency_key", rows)
            for name, value in [*cursors, *([cursor] if cursor is not None else [])]:
                self._set_cursor(conn, name, value, now)
        return added

    def existing_keys(self, keys: Iterable[str]) -> set[str]:
        """Which of ``keys`` are already in the outbox."""
        wanted = sorted(set(keys))
        t = schema.outbox
        found: set[str] = set()
        with self.engine.connect() as conn:
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                found.update(
                    conn.scalars(
                        sa.select(t.c.idempotency_key).where(t.c.idempotency_key.in_(chunk))
                    )
                )
        return found

    def claim(
        self,
        *,
        worker: str,
        now: datetime,
        lease: timedelta,
        limit: int,
        due_by: datetime | None = None,
        channels: Collection[str] | None = None,
    ) -> list[OutboxRow]:
        """Take up to ``limit`` rows due by ``due_by`` (default ``now``) for ``worker`` until
        ``now + lease``.

        A row whose lease ran out (its worker died) is due again. Every claim writes a fresh
        ``claim_token`` on its rows: :meth:`record_many` and :meth:`renew` only change a row
        that still carries it, so a worker whose lease ran out changes nothing. On PostgreSQL
        concurrent workers skip each other's rows (``FOR UPDATE SKIP LOCKED``); SQLite has one
        writer. ``channels`` keeps the claim to rows of those channels (a worker per channel,
        so a slow provider does not hold up the others).
        """
        t = schema.outbox
        due_by = due_by or now
        # Two index-ordered reads, not one read of ``pending OR expired`` ordered after the
        # fact: that one sorted every due row on each claim (a temporary B-tree on SQLite),
        # inside the write transaction, so a long queue held up every other writer. The first
        # ``limit`` of the two answers together are the first ``limit`` due rows.
        ready = sa.and_(t.c.status == OutboxStatus.PENDING, t.c.available_at <= due_by)
        expired = sa.and_(t.c.status == OutboxStatus.CLAIMED, t.c.lease_until < due_by)
        reads = [
            sa.select(t.c.id, t.c.available_at)
            .where(due, *([t.c.channel.in_(sorted(channels))] if channels is not None else []))
            .order_by(t.c.available_at, t.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
            for due in (ready, expired)
        ]
        with self.write() as conn:
            found = sorted((tuple(row) for read in reads for row in conn.execute(read)), key=_due)
            ids = [row_id for row_id, _ in found[:limit]]
            if not ids:
                return []
            path = self._delivery_path()
            time_of = path.claim.processor("c_at")
            raw = path.claim.run(
                conn,
                [
                    (
                        time_of(now + lease),
                        worker,
                        uuid.uuid4().hex,
                        time_of(now),
                        path.claim.processor("ids")(ids),
                    )
                ],
            ).all()
        # After the commit: a short lock.
        rows = [OutboxRow(**fields) for fields in path.claimed.read(raw)]
        return sorted(rows, key=lambda r: (r.available_at, r.id))

    def renew(self, claims: Mapping[int, str], *, now: datetime, lease: timedelta) -> set[int]:
        """Extend the lease of rows still claimed under their token (``{row id: token}``) to
        ``now + lease``; returns the ids renewed. A row missing from the answer was finished
        or taken by another worker after its lease ran out: its claimant must not send it."""
        if not claims:
            return set()
        t = schema.outbox
        renewed: set[int] = set()
        with self.write() as conn:
            for row_id, token in sorted(claims.items()):
                stmt = (
                    sa.update(t)
                    .where(
                        t.c.id == row_id,
                        t.c.claim_token == token,
                        t.c.status == OutboxStatus.CLAIMED,
                    )
                    .values(lease_until=now + lease)
                    .returning(t.c.id)
                )
                renewed.update(conn.execute(stmt).scalars())
        return renewed

    def record(
        self, delivery: Delivery, *, claim_token: str, retry_at: datetime | None = None
    ) -> bool:
        """Record one attempt and move its outbox row on; see :meth:`record_many`.

        Returns False when the write was refused because the claim is stale.
        """
        outcome = Outcome(delivery=delivery, claim_token=claim_token, retry_at=retry_at)
        return not self.record_many([outcome])

    def record_many(self, outcomes: Sequence[Outcome]) -> list[Outcome]:
        """Record attempts and move their outbox rows on, all in one transaction.

        A ``sent`` or ``dead`` delivery is final; a ``retrying`` one puts its row back to
        pending until its ``retry_at``; an ``unknown`` one (sent, no answer) is final, or back
        to pending when it has a ``retry_at``. Each delivery also becomes an event
        (``message_sent``, ``message_failed``, ``message_dead``, ``message_unknown``) for
        triggers to react to.

        The write is fenced: a row moves only while it is still claimed under the outcome's
        ``claim_token``. Outcomes of rows another worker claimed since (or that are already
        finished) change nothing, not even the deliveries or events; they are returned, so
        the caller can say so.
        """
        if not outcomes:
            return []
        for outcome in outcomes:
            if outcome.delivery.status == "retrying" and outcome.retry_at is None:
                raise ValueError("a retrying delivery needs retry_at")
        # Everything but the writes is prepared before the transaction: on SQLite it holds
        # the one write lock, and a track() on a request path waits for it to end.
        path = self._delivery_path()
        prepared = [path.prepare(outcome) for outcome in outcomes]
        with self.write() as conn:
            # The fence: which rows are still claimed under their outcome's token. Locked on
            # PostgreSQL until the commit; SQLite's write lock is already held.
            listed = path.listed([p.claim[0] for p in prepared])
            fenced: Iterable[Sequence[Any]] = path.fence.run(conn, [(listed,)])
            current = {(row[0], row[1]) for row in fenced}
            moving = []
            for p in prepared:
                if p.claim in current:
                    current.discard(p.claim)  # a second outcome for one row finds it moved
                    moving.append(p)
            if moving:
                path.move.run(conn, [p.move for p in moving])
                path.deliveries.run(conn, [p.delivery for p in moving])
                path.events.run(conn, [p.event for p in moving])
        moved = {id(p.outcome) for p in moving}
        return [outcome for outcome in outcomes if id(outcome) not in moved]

    def _delivery_path(self) -> _DeliveryPath:
        path = self._delivery_statements
        if path is None:
            path = self._delivery_statements = _DeliveryPath(self.engine.dialect)
        return path

    def next_due(self) -> datetime | None:
        """When the earliest pending or claimed row becomes due, if any."""
        t = schema.outbox
        with self.engine.connect() as conn:
            pending = conn.execute(
                sa.select(sa.func.min(t.c.available_at)).where(t.c.status == OutboxStatus.PENDING)
            ).scalar_one_or_none()
            leased = conn.execute(
                sa.select(sa.func.min(t.c.lease_until)).where(t.c.status == OutboxStatus.CLAIMED)
            ).scalar_one_or_none()
        times = [
            schema.UTCDateTime().process_result_value(v, self.engine.dialect)
            for v in (pending, leased)
        ]
        present = [v for v in times if v is not None]
        return min(present) if present else None

    def outbox_rows(self, *, status: str | None = None) -> list[OutboxRow]:
        t = schema.outbox
        query = sa.select(t).order_by(t.c.id)
        if status is not None:
            query = query.where(t.c.status == status)
        with self.engine.connect() as conn:
            return [OutboxRow.from_row(row) for row in conn.execute(query)]

    def outbox_summary(self) -> list[dict[str, Any]]:
        """Rows per touch, channel and status: what the CLI's summary table shows."""
        t = schema.outbox
        query = (
            sa.select(t.c.touch, t.c.channel, t.c.status, sa.func.count().label("rows"))
            .group_by(t.c.touch, t.c.channel, t.c.status)
            .order_by(t.c.touch, t.c.channel, t.c.status)
        )
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def deliveries(self, *, outbox_id: int | None = None) -> list[Delivery]:
        t, o = schema.deliveries, schema.outbox
        query = (
            sa.select(
                *(c for c in t.c if c.name != "id"), o.c.touch, o.c.contact_id, o.c.account_id
            )
            .join(o, o.c.id == t.c.outbox_id)
            .order_by(t.c.id)
        )
        if outbox_id is not None:
            query = query.where(t.c.outbox_id == outbox_id)
        with self.engine.connect() as conn:
            return [Delivery(**row._mapping) for row in conn.execute(query)]

    # -- in-app inbox -----------------------------------------------------------------------

    def inbox_add(
        self,
        *,
        contact_id: str,
        idempotency_key: str,
        touch: str,
        title: str,
        body: str,
        url: str | None,
        now: datetime,
        topic: str | None = None,
    ) -> int:
        """Keep an in-app message; the same key twice keeps one. Returns the item's id.

        The inbox's reads and changes are in :mod:`onetomany.store.queries.inbox`."""
        t = schema.inbox
        stmt = self._insert(t).on_conflict_do_nothing(index_elements=["idempotency_key"])
        with self.write() as conn:
            conn.execute(
                stmt,
                {
                    "contact_id": contact_id,
                    "idempotency_key": idempotency_key,
                    "touch": touch,
                    "title": title,
                    "body": body,
                    "url": url,
                    "topic": topic,
                    "created_at": now,
                },
            )
            return int(
                conn.execute(
                    sa.select(t.c.id).where(t.c.idempotency_key == idempotency_key)
                ).scalar_one()
            )


@attrs.frozen
class _PlainInsert:
    """New profiles inserted as one DB-API ``executemany`` of tuples built column by column
    from the profiles' attributes (named as the columns), each column's bind processor (JSON
    text, UTC datetimes) applied as SQLAlchemy would: SQLAlchemy's own parameter handling,
    and a dict per row, cost more than the insert itself. ``updated_at``, the same for every
    row, is processed once, and so is an empty JSON object (most contacts' consent): its
    text is the same for every row."""

    sql: str
    columns: tuple[str, ...]
    processors: tuple[Callable[[Any], Any] | None, ...]
    #: What each JSON column's processor makes of an empty dict (``None`` for the others).
    empties: tuple[Any, ...]

    @classmethod
    def of(cls, table: sa.Table, dialect: sa.Dialect) -> _PlainInsert:
        columns = tuple(c.name for c in table.columns)
        stmt = sa.insert(table).values({c: sa.bindparam(c) for c in columns})
        compiled = stmt.compile(dialect=dialect)
        assert compiled.positiontup == list(columns), compiled.positiontup
        processors = tuple(
            table.c[c].type.dialect_impl(dialect).bind_processor(dialect) for c in columns
        )
        empties = tuple(
            (process({}) if process is not None else {})
            if isinstance(table.c[c].type, sa.JSON)
            else None
            for c, process in zip(columns, processors, strict=True)
        )
        return cls(sql=str(compiled), columns=columns, processors=processors, empties=empties)

    def run(self, conn: Connection, profiles: Sequence[Account | Contact], now: datetime) -> None:
        values: list[Iterable[Any]] = []
        for column, process, empty in zip(self.columns, self.processors, self.empties, strict=True):
            if column == "updated_at":
                values.append(repeat(process(now) if process else now, len(profiles)))
                continue
            given = list(map(attrgetter(column), profiles))
            if process is None:
                values.append(given)
            elif empty is not None:
                values.append([empty if type(v) is dict and not v else process(v) for v in given])
            else:
                values.append(list(map(process, given)))
        conn.exec_driver_sql(self.sql, list(zip(*values, strict=True)))


#: Each upsert statement, by dialect, table and the columns its rows give (see ``_upsert``).
_UPSERTS: dict[tuple[str, sa.Table, tuple[str, ...]], Any] = {}


@functools.cache
def _stored_rows(table: sa.Table) -> sa.Select[Any]:
    """The stored rows of a JSON array of ids (SQLite), in id order. One parameter for the
    whole page: an IN list of bound ids costs SQLAlchemy more per id, expanding it, than
    SQLite takes to find the rows. Built once: a page of 100 Stripe customers paid as much
    for building the statement as for running it."""
    each = sa.func.json_each(sa.bindparam("ids", type_=sa.JSON)).table_valued("value")
    listed = sa.select(each.c.value)
    query = sa.select(table).where(table.c.id.in_(listed.scalar_subquery()))
    return query.order_by(table.c.id)


# -- row <-> value ---------------------------------------------------------------------------


def _account_row(account: Account, now: datetime) -> dict[str, Any]:
    return {
        "id": account.id,
        "name": account.name,
        "traits": dict(account.traits),
        "updated_at": now,
    }


def _account(row: sa.Row[Any]) -> Account:
    return Account(id=row.id, name=row.name, traits=row.traits)


def _contact_row(contact: Contact, now: datetime) -> dict[str, Any]:
    return {
        "id": contact.id,
        "account_id": contact.account_id,
        "name": contact.name,
        "email": contact.email,
        "phone": contact.phone,
        "role": contact.role,
        "locale": contact.locale,
        "timezone": contact.timezone,
        "consent": dict(contact.consent),
        "traits": dict(contact.traits),
        "updated_at": now,
    }


#: The columns a Contact is read back from.
_CONTACT_FIELDS = (
    "id",
    "account_id",
    "name",
    "email",
    "phone",
    "role",
    "locale",
    "timezone",
    "consent",
    "traits",
)


def _contact(row: sa.Row[Any]) -> Contact:
    m = row._mapping
    return Contact.restored(**{k: m[k] for k in _CONTACT_FIELDS})


def _event_row(event: Event, now: datetime) -> dict[str, Any]:
    return {
        "id": event.id,
        "name": event.name,
        "account_id": event.account_id,
        "contact_id": event.contact_id,
        "occurred_at": event.occurred_at,
        "received_at": now,
        "properties": dict(event.properties),
    }


class EventPosition(NamedTuple):
    """A place in the event log: the writing transaction (0 on SQLite) and the ``seq``.

    Positions order the log the way :meth:`Store.events_after` reads it. ``str()`` of a
    position is what a cursor stores (``"seq"`` or ``"txid:seq"``); :meth:`parse` reads it
    back, including cursors stored as a plain ``seq`` before the transaction was recorded.
    """

    txid: int
    seq: int

    @classmethod
    def of(cls, row: sa.Row[Any]) -> EventPosition:
        """The position of an ``events`` row (any select with its txid and seq)."""
        return cls(row.txid, row.seq)

    @classmethod
    def parse(cls, value: str | None) -> EventPosition:
        if not value:
            return cls(0, 0)
        txid, _, seq = value.rpartition(":")
        return cls(int(txid or 0), int(seq))

    def __str__(self) -> str:
        return f"{self.txid}:{self.seq}" if self.txid else str(self.seq)


def event_from_row(row: sa.Row[Any]) -> Event:
    """An ``events`` row (any select with its id, name, owners, time and properties) as an Event."""
    return Event(
        id=row.id,
        name=row.name,
        account_id=row.account_id,
        contact_id=row.contact_id,
        occurred_at=row.occurred_at,
        properties=row.properties,
    )


def _outbox_row(touch: NewTouch, now: datetime) -> dict[str, Any]:
    return attrs.asdict(touch) | {
        "payload": dict(touch.payload),
        "status": OutboxStatus.PENDING,
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
    }


#: The longest provider message id the deliveries table keeps.
_MAX_PROVIDER_ID = 512


def _clean_text(text: str | None, limit: int | None = None) -> str | None:
    """Text any database stores: no NUL (PostgreSQL refuses it), at most ``limit`` characters.

    An outcome that cannot be written would stop the whole batch's write, so a provider's odd
    reply is cleaned here rather than refused.
    """
    if text is None:
        return None
    text = str(text).replace("\x00", "\\x00")
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "\u2026"


def _clean_delivery(delivery: Delivery) -> Delivery:
    error = _clean_text(delivery.error)
    provider_message_id = _clean_text(delivery.provider_message_id, _MAX_PROVIDER_ID)
    if error == delivery.error and provider_message_id == delivery.provider_message_id:
        return delivery  # the common case; evolve() would check every field again
    return attrs.evolve(delivery, error=error, provider_message_id=provider_message_id)


class _DeliveryPath:
    """The delivery path's statements for one store's dialect, each run as driver-level SQL
    with tuples (:mod:`onetomany.store.driver`): on this path SQLAlchemy's per-row handling of
    parameters and results cost more than the database's work.

    - ``claim``: hands a list of rows to a worker under a fresh token, returning the fields
      of :class:`OutboxRow`;
    - ``contacts`` and ``accounts``: the profiles of a list of ids (a claimed batch's);
    - ``fence``: which of a list of rows are still claimed, and under which token (locked
      until the commit on PostgreSQL);
    - ``move``: moves one row on from ``claimed``, only under its claim token;
    - ``deliveries`` and ``events``: the attempt's record and its event (an event id already
      stored is skipped).
    """

    def __init__(self, dialect: sa.Dialect) -> None:
        t = schema.outbox
        claimed: sa.ColumnElement[str] = sa.literal_column(f"'{OutboxStatus.CLAIMED.value}'")
        returned = [t.c[name] for name in _CLAIMED_FIELDS]
        self.claim = DriverStatement.of(
            sa.update(t)
            .where(t.c.id.in_(_listed_ids(dialect)))
            .values(
                status=claimed,
                claimed_by=sa.bindparam("c_worker", type_=sa.String),
                claim_token=sa.bindparam("c_token", type_=sa.String),
                lease_until=sa.bindparam("c_lease_until", type_=schema.UTCDateTime),
                updated_at=sa.bindparam("c_at", type_=schema.UTCDateTime),
            )
            .returning(*returned),
            dialect,
            ("c_lease_until", "c_worker", "c_token", "c_at", "ids"),
            processed={"c_lease_until", "c_at", "ids"},
        )
        self.claimed = ResultShape.of(returned, dialect)
        self.contacts = _profiles_by_id(schema.contacts, _CONTACT_FIELDS, dialect)
        self.contact_shape = ResultShape.of(
            [schema.contacts.c[name] for name in _CONTACT_FIELDS], dialect
        )
        self.accounts = _profiles_by_id(schema.accounts, _ACCOUNT_FIELDS, dialect)
        self.account_shape = ResultShape.of(
            [schema.accounts.c[name] for name in _ACCOUNT_FIELDS], dialect
        )
        self.fence = DriverStatement.of(
            sa.select(t.c.id, t.c.claim_token)
            .where(t.c.id.in_(_listed_ids(dialect)), t.c.status == claimed)
            .with_for_update(),
            dialect,
            ["ids"],
            processed={"ids"},
        )
        self.move = DriverStatement.of(
            sa.update(t)
            .where(
                t.c.id == sa.bindparam("m_id", type_=sa.Integer),
                t.c.claim_token == sa.bindparam("m_token", type_=sa.String),
                t.c.status == claimed,
            )
            .values(
                status=sa.bindparam("m_status", type_=sa.String),
                attempts=sa.bindparam("m_attempts", type_=sa.Integer),
                available_at=sa.func.coalesce(
                    sa.bindparam("m_retry_at", type_=schema.UTCDateTime), t.c.available_at
                ),
                updated_at=sa.bindparam("m_at", type_=schema.UTCDateTime),
                last_error=sa.bindparam("m_error", type_=sa.Text),
                lease_until=sa.null(),
                claimed_by=sa.null(),
                claim_token=sa.null(),
            ),
            dialect,
            _MOVE_PARAMS,
            processed={"m_retry_at", "m_at"},
        )
        self.deliveries = DriverStatement.of(
            _insert_of(schema.deliveries, _DELIVERY_PARAMS, dialect),
            dialect,
            _DELIVERY_PARAMS,
            processed={"at"},
        )
        self.events = DriverStatement.of(
            _insert_of(schema.events, _EVENT_PARAMS, dialect).on_conflict_do_nothing(
                index_elements=["id"]
            ),
            dialect,
            _EVENT_PARAMS,
            processed={"occurred_at", "received_at", "properties"},
        )
        self.listed = self.fence.processor("ids")
        # One processor for every time of an outcome: the columns share UTCDateTime.
        self.time = self.move.processor("m_at")
        self.properties = self.events.processor("properties")

    def prepare(self, outcome: Outcome) -> _PreparedOutcome:
        """The rows that record ``outcome`` (see :meth:`Store.record_many`)."""
        delivery = _clean_delivery(outcome.delivery)
        retry_at = outcome.retry_at
        status = OutboxStatus.PENDING if retry_at is not None else _ROW_STATUS[delivery.status]
        event = self._event(delivery)
        at = self.time(delivery.at)
        row_id, error = delivery.outbox_id, delivery.error
        return _PreparedOutcome(
            outcome,
            (row_id, outcome.claim_token),
            # In _MOVE_PARAMS order.
            (
                status.value,
                delivery.attempt,
                None if retry_at is None else self.time(retry_at),
                error,
                at,
                row_id,
                outcome.claim_token,
            ),
            # In _DELIVERY_PARAMS order.
            (
                row_id,
                delivery.idempotency_key,
                delivery.channel,
                delivery.attempt,
                delivery.status,
                delivery.provider_message_id,
                error,
                at,
                delivery.provider,
            ),
            # In _EVENT_PARAMS order: it occurred, and was received, when the attempt ended
            # (``at`` processed once: the columns share their type).
            (
                event["id"],
                event["name"],
                event["account_id"],
                event["contact_id"],
                at,
                at,
                self.properties(event["properties"]),
            ),
        )

    def _event(self, delivery: Delivery) -> dict[str, Any]:
        """The event row of ``delivery``: built directly when its fields are plain text the
        events table keeps as they are; otherwise through :class:`Event`, whose checks refuse
        what it must (no subject, a naive time) with the same error as always."""
        if _plain_delivery(delivery):
            return {
                "id": _delivery_event_id(delivery),
                "name": DELIVERY_EVENTS[delivery.status],
                "account_id": delivery.account_id,
                "contact_id": delivery.contact_id,
                "properties": _delivery_event_properties(delivery),
            }
        return _event_row(_delivery_event(delivery), delivery.at)


def _listed_ids(dialect: sa.Dialect, of: type[sa.types.TypeEngine[Any]] = sa.Integer) -> Any:
    """A list of ids as one parameter ``ids``: a JSON array on SQLite (an IN list of bound
    ids costs SQLAlchemy more per id than SQLite takes to find the rows), an array on
    PostgreSQL."""
    if dialect.name == "postgresql":
        return sa.select(sa.func.unnest(sa.bindparam("ids", type_=postgresql.ARRAY(of))))
    each = sa.func.json_each(sa.bindparam("ids", type_=sa.JSON)).table_valued("value")
    return sa.select(each.c.value).scalar_subquery()


def _profiles_by_id(table: sa.Table, fields: Sequence[str], dialect: sa.Dialect) -> DriverStatement:
    """The fields of the profiles whose ids are listed, in id order."""
    return DriverStatement.of(
        sa.select(*(table.c[name] for name in fields))
        .where(table.c.id.in_(_listed_ids(dialect, sa.String)))
        .order_by(table.c.id),
        dialect,
        ["ids"],
        processed={"ids"},
    )


def _insert_of(table: sa.Table, params: Sequence[str], dialect: sa.Dialect) -> Any:
    """An INSERT of ``params`` (columns named as the parameters, typed as the columns)."""
    insert = postgresql.insert if dialect.name == "postgresql" else sqlite.insert
    return insert(table).values({c: sa.bindparam(c, type_=table.c[c].type) for c in params})


#: The columns a claim hands back: the fields of an OutboxRow.
_CLAIMED_FIELDS = tuple(field.name for field in attrs.fields(OutboxRow))
_ACCOUNT_FIELDS = ("id", "name", "traits")
#: The parameters of _DeliveryPath's statements, in the order their compiled SQL takes them.
_MOVE_PARAMS = ("m_status", "m_attempts", "m_retry_at", "m_error", "m_at", "m_id", "m_token")
_DELIVERY_PARAMS = (
    "outbox_id",
    "idempotency_key",
    "channel",
    "attempt",
    "status",
    "provider_message_id",
    "error",
    "at",
    "provider",
)
_EVENT_PARAMS = (
    "id",
    "name",
    "account_id",
    "contact_id",
    "occurred_at",
    "received_at",
    "properties",
)


class _PreparedOutcome(NamedTuple):
    outcome: Outcome
    #: The claim it was made under: (row id, claim token).
    claim: tuple[int, str]
    move: tuple[Any, ...]
    delivery: tuple[Any, ...]
    event: tuple[Any, ...]


_ROW_STATUS = {
    "sent": OutboxStatus.SENT,
    "retrying": OutboxStatus.PENDING,
    "dead": OutboxStatus.DEAD,
    "unknown": OutboxStatus.UNKNOWN,
}

DELIVERY_EVENT_NAMES = frozenset(DELIVERY_EVENTS.values())


def _delivery_event(delivery: Delivery) -> Event:
    return Event(
        id=_delivery_event_id(delivery),
        name=DELIVERY_EVENTS[delivery.status],
        occurred_at=delivery.at,
        account_id=delivery.account_id,
        contact_id=delivery.contact_id,
        properties=_delivery_event_properties(delivery),
    )


def _delivery_event_id(delivery: Delivery) -> str:
    return hashlib.sha256(
        f"{delivery.idempotency_key}#{delivery.attempt}#{delivery.status}".encode()
    ).hexdigest()[:32]


def _delivery_event_properties(delivery: Delivery) -> dict[str, Any]:
    return {
        "idempotency_key": delivery.idempotency_key,
        "touch": delivery.touch,
        "channel": delivery.channel,
        "attempt": delivery.attempt,
        "error": delivery.error,
    }


def _plain_delivery(delivery: Delivery) -> bool:
    """Whether :class:`Event` would take ``delivery``'s event as it is: it names a subject,
    each of them short ASCII text, and its time is aware (a cleaned delivery's error and
    provider id are always storable text). Anything else goes through ``Event``'s checks."""
    at = delivery.at
    return (
        (delivery.account_id is not None or delivery.contact_id is not None)
        and _plain_id(delivery.account_id)
        and _plain_id(delivery.contact_id)
        and at.tzinfo is not None
        and at.utcoffset() is not None
        and _plain_text(delivery.idempotency_key)
        and _plain_text(delivery.touch)
        and _plain_text(delivery.channel)
    )


def _plain_id(value: str | None) -> bool:
    return value is None or (_plain_text(value) and 0 < len(value) <= 255 and not value.isspace())


def _plain_text(value: object) -> bool:
    return type(value) is str and value.isascii() and "\x00" not in value


def _latest_of_each(name: str, *, by: str, ids: Sequence[str], until: datetime) -> sa.Select[Any]:
    """The ``seq`` of the latest event ``name`` at or before ``until`` of each of ``ids``
    (accounts or contacts): a correlated ``LIMIT 1`` per id, which walks the (subject, name,
    time) index backwards from ``until`` instead of reading every such event of the id."""
    x = schema.events.alias("latest")
    column = x.c.account_id if by == "account" else x.c.contact_id
    # A CTE, which SQLite accepts with its column named (unlike VALUES in FROM).
    wanted = (
        sa.values(sa.column("subject", sa.String), name="wanted")
        .data([(i,) for i in ids])
        .cte("wanted")
    )
    latest = (
        sa.select(x.c.seq)
        .where(column == wanted.c.subject, x.c.name == name, x.c.occurred_at <= until)
        .order_by(x.c.occurred_at.desc(), x.c.seq.desc())
        .limit(1)
        .scalar_subquery()
    )
    return sa.select(latest).select_from(wanted)
