"""Several workers syncing the same sources at once: one worker per source at a time (a lease
per source), the others skip it, and no cursor is moved by two workers."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from rich.console import Console

from onetomany import Event, hookimpl
from onetomany.cli.syncview import SyncView
from onetomany.engine import Engine
from onetomany.model.clock import FrozenClock
from onetomany.plugins.settings import PluginSettings
from onetomany.plugins.sources import Source, SyncPage
from onetomany.plugins.syncing import SyncLease, SyncLeaseLost, lease_name, run_sync
from onetomany.program import Program
from onetomany.store import Store
from onetomany.store.queries.leases import release_lease, take_lease
from onetomany.store.queries.source_syncs import sync_states
from onetomany.store.schema import events
from onetomany.testing import make_plugins

NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


class EventPages(Source):
    """Pages of two events each; the cursor is the number of pages read. ``between`` (an
    option) is called before each page after the first, with the page's number."""

    def sync(self, *, cursor: str | None = None) -> Iterator[SyncPage]:
        options = self.settings.options
        start = int(cursor or 0)
        options["log"].append(start)
        for number in range(start, options["pages"]):
            if number > start and options.get("between"):
                options["between"](number)
            yield SyncPage(
                events=[
                    Event(id=f"e{number}-{i}", name="login", account_id="a", occurred_at=NOW)
                    for i in range(2)
                ],
                cursor=str(number + 1),
            )


class _Plugin:
    @hookimpl
    def onetomany_register_sources(self, register):
        register("event_pages", EventPages)


def _engine(tmp_path: Path, store: Store, **options) -> Engine:
    options.setdefault("log", [])
    program = Program(
        name="p",
        sources={"usage": PluginSettings(name="usage", plugin="event_pages", options=options)},
        base_dir=tmp_path,
        templates_dir=tmp_path,
    )
    plugins = make_plugins(("event_pages", _Plugin()))
    return Engine(program, store=store, clock=FrozenClock(NOW), plugins=plugins)


def _stored_events(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(events)).scalar_one())


def test_a_source_another_worker_syncs_is_skipped_and_left_as_it_is(tmp_path, store):
    log: list[int] = []
    with _engine(tmp_path, store, pages=2, log=log) as engine:
        assert take_lease(store, lease_name("usage"), "another worker", ttl=MINUTE)
        [report] = engine.sync()
        assert report.busy and report.records == 0
        assert log == []  # the source was not even asked
        assert store.get_cursor("source:usage") is None
        assert "usage" not in sync_states(store)  # neither started nor failed here

        release_lease(store, lease_name("usage"), "another worker")
        [report] = engine.sync()
        assert not report.busy and (report.events, report.cursor) == (4, "2")
        # Given up at the end: the next worker may sync at once.
        assert take_lease(store, lease_name("usage"), "another worker", ttl=MINUTE)


def test_the_sync_view_says_which_source_was_skipped_as_busy(tmp_path, store):
    console = Console(file=io.StringIO(), width=200)
    with _engine(tmp_path, store, pages=1) as engine:
        take_lease(store, lease_name("usage"), "another worker", ttl=MINUTE)
        with SyncView(console) as view:
            view.start("usage")
            [report] = engine.sync(on_page=view.update)
            view.done(report)
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert "skipped usage: another worker is syncing it" in " ".join(out.split())


def test_workers_syncing_at_once_on_postgresql_read_each_page_once(tmp_path, pg_url):
    """Four threads, each with its own engine (its own lease holder) and store connection,
    start the same sync together: one reads the source, the others skip it; no page is read
    twice and the cursor ends where the one reader left it."""
    log: list[int] = []
    started, go = threading.Event(), threading.Event()

    def between(number: int) -> None:
        # The reader waits, mid-sync, until every other worker has tried and skipped.
        started.set()
        assert go.wait(timeout=60)

    stores = [Store(pg_url) for _ in range(4)]
    engines = [_engine(tmp_path, s, pages=3, log=log, between=between) for s in stores]
    reports: dict[int, object] = {}
    barrier = threading.Barrier(len(engines))

    def work(n: int) -> None:
        barrier.wait()
        [reports[n]] = engines[n].sync()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(len(engines))]
    for thread in threads:
        thread.start()
    assert started.wait(timeout=60)
    # Every worker but the reader returns while the reader is still mid-sync.
    for thread in threads:
        thread.join(timeout=0.2)
    deadline = datetime.now(UTC) + timedelta(seconds=60)
    while sum(t.is_alive() for t in threads) > 1 and datetime.now(UTC) < deadline:
        for thread in threads:
            thread.join(timeout=0.1)
    assert sum(t.is_alive() for t in threads) == 1
    go.set()
    for thread in threads:
        thread.join(timeout=60)
    busy = [r for r in reports.values() if r.busy]  # type: ignore[attr-defined]
    done = [r for r in reports.values() if not r.busy]  # type: ignore[attr-defined]
    assert (len(busy), len(done)) == (3, 1)
    assert log == [0]  # one reader, from the start
    assert stores[0].get_cursor("source:usage") == "3"
    assert _stored_events(stores[0]) == 6
    # The next round, by any worker, resumes after the cursor and reads nothing twice.
    [again] = engines[2].sync()
    assert log == [0, 3] and again.events == 0 and not again.busy
    for engine in engines:
        engine.close()


def test_a_worker_that_lost_its_lease_stops_before_the_next_page(tmp_path, store):
    """A sync stalled past its lease: another worker took the source over, so the stalled one
    stores no further page (it would move the cursor under the new holder)."""
    log: list[int] = []

    def taken_over(number: int) -> None:
        # The stalled worker's lease (a negative ttl: already run out) is taken over.
        assert take_lease(store, lease_name("usage"), "the next worker", ttl=MINUTE)

    with _engine(tmp_path, store, pages=3, log=log, between=taken_over) as engine:
        source = engine.source("usage")
        with pytest.raises(SyncLeaseLost, match="another worker took the sync over") as caught:
            run_sync(
                store,
                "usage",
                source,
                now=lambda: NOW,
                is_future=lambda _event, _now: False,
                lease=SyncLease("stalled worker", ttl=timedelta(seconds=-1)),
            )
    assert "after 1 page(s)" in str(caught.value)
    assert store.get_cursor("source:usage") == "1"  # the page stored before stays
    assert _stored_events(store) == 2
    assert sync_states(store)["usage"].failed
    # The new holder keeps its lease: the stalled worker gave up only its own.
    assert not take_lease(store, lease_name("usage"), "someone else", ttl=MINUTE)
