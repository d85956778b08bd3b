"""Running one source's sync into the store, a page at a time.

Each page is stored in its own transaction together with the cursor after it, so a sync that
fails halfway keeps what it stored and the next incremental sync resumes after the last page
stored. Only counts are kept across pages, so memory stays flat however many records a source
holds.

The cursor never passes a record that was not stored. Once a page skips a record (the source
could not read it, or it is an event dated ahead of the clock), the pages after it are still
stored but the cursor stays at the last page before the skip, so the next incremental sync
reads the skipped record again.

Every sync writes its start and outcome to ``source_syncs`` (see
:mod:`onetomany.store.queries.source_syncs`), which is what a freshness check reads.

Several workers may sync the same source at once (processes sharing a PostgreSQL store, a
Celery beat firing while a command runs). One source is synced by one worker at a time: a
sync takes the source's lease (:mod:`onetomany.store.queries.leases`) before it reads the
stored cursor and renews it before storing a page once a tenth of the lease has passed since
it last did (:data:`RENEW_AFTER`); a worker that finds the lease held
skips the source with a warning (its report says ``busy``), and one that loses its lease
mid-sync (it stalled past the lease) stops before storing another page, so two workers never
move the same cursor. A worker that dies holds the source only until its lease runs out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import attrs

from onetomany.errors import OnetomanyError
from onetomany.model import Event
from onetomany.plugins import identity as identities
from onetomany.plugins.sources import Skipped, Source, SyncPage, pages
from onetomany.store import Store
from onetomany.store.queries.leases import release_lease, take_lease
from onetomany.store.queries.source_syncs import sync_failed, sync_started, sync_succeeded

log = logging.getLogger(__name__)

#: How many skipped records a report names; the rest are counted.
NAMED_SKIPS = 20
#: How long a worker's sync holds its source without storing a page before another worker
#: may take the source over (renewed at every page).
DEFAULT_SYNC_LEASE = timedelta(minutes=10)
#: The share of its lease a sync lets pass before it renews it (at the next page). Until then
#: the lease has most of its time left, so no other worker can have taken it; a renewal at
#: every page (a write transaction of its own) cost as much as storing a page of 100 records.
RENEW_AFTER = 0.1


class SyncLeaseLost(OnetomanyError):
    """Another worker took the source over while this sync was running (it stalled for
    longer than the lease): this sync stopped; the pages it stored before stay stored."""


@attrs.frozen(kw_only=True)
class SyncReport:
    """What one source's sync stored."""

    source: str
    accounts: int
    contacts: int
    events: int
    new_events: int
    #: The cursor stored at the end (the one the sync started from when none moved it).
    cursor: str | None
    #: Events dated further ahead of the engine's clock than its tolerance: not stored.
    skipped_future: int = 0
    pages: int = 0
    #: Records the source could not read, all counted; the first :data:`NAMED_SKIPS` named.
    skipped: int = 0
    skips: tuple[Skipped, ...] = ()
    #: Whether the stored cursor stopped before the end because of a skip.
    cursor_held: bool = False
    #: Another worker was syncing this source: nothing was read here.
    busy: bool = False

    @property
    def records(self) -> int:
        return self.accounts + self.contacts + self.events


@attrs.frozen(kw_only=True)
class SyncProgress:
    """Where a running sync is, after each page: handed to ``on_page``."""

    source: str
    pages: int
    records: int
    skipped: int
    #: How many records the source expects to read in all, when it says.
    expected: int | None


OnPage = Callable[[SyncProgress], None]


def cursor_name(source: str) -> str:
    """The name under which the store keeps a source's cursor."""
    return f"source:{source}"


def lease_name(source: str) -> str:
    """The name of the lease a worker holds while it syncs ``source``."""
    return f"sync:{source}"


@attrs.frozen
class SyncLease:
    """Who syncs (``holder``, one per engine) and for how long without a page (``ttl``)."""

    holder: str
    ttl: timedelta = DEFAULT_SYNC_LEASE


def run_sync(
    store: Store,
    name: str,
    source: Source,
    *,
    now: Callable[[], datetime],
    is_future: Callable[[Event, datetime], bool],
    full: bool = False,
    on_page: OnPage | None = None,
    identity: Sequence[str] = (),
    lease: SyncLease | None = None,
) -> SyncReport:
    """Sync ``source`` (named ``name`` in the program) into ``store``, page by page.

    ``full`` reads everything, ignoring the stored cursor (the cursor the full read ends on
    is stored as usual). An error from the source or the store is recorded as the sync's
    failure and raised again; the pages stored before it stay stored. ``identity`` names the
    keys the source's contacts are matched by across sources (see
    :mod:`onetomany.plugins.identity`); empty, contacts are stored under the ids given.

    With a ``lease``, the sync runs only if no other worker is syncing the source (else the
    report says ``busy`` and nothing is read), and stops with :class:`SyncLeaseLost` if the
    lease is taken over mid-sync. The lease is given up at the end, whatever the outcome.
    """
    if lease is None:
        return _sync(store, name, source, now, is_future, full, on_page, identity, None)
    held = lease_name(name)
    if not take_lease(store, held, lease.holder, ttl=lease.ttl):
        log.warning("source %r: another worker is syncing it; skipped here", name)
        return SyncReport(
            source=name,
            accounts=0,
            contacts=0,
            events=0,
            new_events=0,
            cursor=store.get_cursor(cursor_name(name)),
            busy=True,
        )
    try:
        return _sync(store, name, source, now, is_future, full, on_page, identity, lease)
    finally:
        release_lease(store, held, lease.holder)


def _sync(
    store: Store,
    name: str,
    source: Source,
    now: Callable[[], datetime],
    is_future: Callable[[Event, datetime], bool],
    full: bool,
    on_page: OnPage | None,
    identity: Sequence[str],
    lease: SyncLease | None,
) -> SyncReport:
    key = cursor_name(name)
    # Read only once the lease is held: the previous holder's last cursor is the start.
    start = None if full else store.get_cursor(key)
    run = _Run(
        store=store,
        name=name,
        key=key,
        cursor=start,
        now=now,
        is_future=is_future,
        identity=tuple(identity),
    )
    sync_started(store, name, at=now())
    renewed = time.monotonic()  # run_sync took the lease just now
    try:
        for page in pages(source.sync(cursor=start)):
            if lease is not None and time.monotonic() - renewed >= _renew_after(lease):
                if not take_lease(store, lease_name(name), lease.holder, ttl=lease.ttl):
                    raise SyncLeaseLost(
                        f"source {name!r}: another worker took the sync over after this one "
                        f"held it for longer than its lease ({lease.ttl}) without storing a "
                        f"page; stopped after {run.pages} page(s), which stay stored"
                    )
                renewed = time.monotonic()
            run.store_page(page)
            if on_page is not None:
                on_page(run.progress())
    except Exception as exc:
        sync_failed(
            store, name, at=now(), error=_describe(exc), stored=run.stored, skipped=run.skipped
        )
        raise
    sync_succeeded(store, name, at=now(), stored=run.stored, skipped=run.skipped)
    return run.report()


class _Run:
    """The counts of one sync in progress, and whether its cursor may still move."""

    def __init__(
        self,
        *,
        store: Store,
        name: str,
        key: str,
        cursor: str | None,
        now: Callable[[], datetime],
        is_future: Callable[[Event, datetime], bool],
        identity: tuple[str, ...],
    ) -> None:
        self.store, self.name, self.key, self.cursor = store, name, key, cursor
        self.identity = identity
        self.now, self.is_future = now, is_future
        self.pages = self.accounts = self.contacts = self.events = self.new_events = 0
        self.future = self.skipped = 0
        self.skips: list[Skipped] = []
        self.held = False
        self.expected: int | None = None

    @property
    def stored(self) -> int:
        return self.accounts + self.contacts + self.events - self.future

    def store_page(self, page: SyncPage) -> None:
        at = self.now()
        resolved = None
        if self.identity:
            resolved = identities.resolve(self.store, self.name, self.identity, page)
            page = resolved.page
        events = [e for e in page.events if not self.is_future(e, at)]
        future = len(page.events) - len(events)
        if future:
            first = min((e for e in page.events if self.is_future(e, at)), key=_when)
            log.warning(
                "source %r: skipped %d event(s) dated ahead of the clock (%s), the earliest "
                "%r (%s) at %s; they are stored once the clock reaches them",
                self.name,
                future,
                at.isoformat(),
                first.name,
                first.id,
                first.occurred_at.isoformat(),
            )
        for skip in page.skipped:
            log.warning("source %r: skipped %s", self.name, skip)
        # Past a skip the cursor stays put: moving it would hide the skipped record for good.
        self.held = self.held or bool(future or page.skipped)
        moves = page.cursor is not None and not self.held
        self.new_events += self.store.save_profiles(
            accounts=page.accounts,
            contacts=page.contacts,
            events=events,
            now=at,
            cursor=(self.key, page.cursor) if moves and page.cursor is not None else None,
        )
        if resolved is not None:
            identities.claim(self.store, resolved, at=at)
        if moves:
            self.cursor = page.cursor
        self.pages += 1
        self.accounts += len(page.accounts)
        self.contacts += len(page.contacts)
        self.events += len(page.events)
        self.future += future
        self.skipped += len(page.skipped)
        self.skips += page.skipped[: max(0, NAMED_SKIPS - len(self.skips))]
        self.expected = page.expected if page.expected is not None else self.expected

    def progress(self) -> SyncProgress:
        return SyncProgress(
            source=self.name,
            pages=self.pages,
            records=self.stored,
            skipped=self.skipped + self.future,
            expected=self.expected,
        )

    def report(self) -> SyncReport:
        return SyncReport(
            source=self.name,
            accounts=self.accounts,
            contacts=self.contacts,
            events=self.events,
            new_events=self.new_events,
            cursor=self.cursor,
            skipped_future=self.future,
            pages=self.pages,
            skipped=self.skipped,
            skips=tuple(self.skips),
            cursor_held=self.held,
        )


def _renew_after(lease: SyncLease) -> float:
    """Seconds after a renewal before the next (none, for a lease of no time at all)."""
    return max(0.0, lease.ttl.total_seconds() * RENEW_AFTER)


def _when(event: Event) -> datetime:
    return event.occurred_at


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"
