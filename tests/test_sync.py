"""Streaming sync: a source yields pages; each is stored with its cursor; a skip or a failure
never lets the cursor pass a record that was not stored; every sync's outcome is recorded."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import textwrap
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onetomany import Account, Contact, Event, hookimpl
from onetomany.engine import Engine
from onetomany.errors import SourceDataError, SourceRow
from onetomany.model.clock import FrozenClock
from onetomany.plugins.settings import PluginSettings
from onetomany.plugins.sources import Skipped, Source, SyncPage, SyncResult, read_all
from onetomany.program import Program
from onetomany.store import Store
from onetomany.store.queries.source_syncs import sync_states
from onetomany.testing import make_plugins

NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)
CLI = Path(sys.executable).with_name("onetomany")


class PagedSource(Source):
    """Pages of accounts ``{page}-{i}``; options say how many, where to skip and to fail.

    The cursor is the number of pages read; a sync from cursor N starts at page N.
    """

    def sync(self, *, cursor: str | None = None) -> Iterator[SyncPage]:
        options = self.settings.options
        per_page: int = options.get("per_page", 2)
        skip_on: set[int] = set(options.get("skip_on", ()))
        fail_on: int | None = options.get("fail_on")
        self.read_from = int(cursor or 0)
        options["log"].append(self.read_from)
        for number in range(self.read_from, options["pages"]):
            if number == fail_on:
                raise SourceDataError(self.settings.name, [SourceRow("page", number, None, "bad")])
            yield SyncPage(
                accounts=[Account(id=f"{number}-{i}") for i in range(per_page)],
                skipped=[Skipped(record=f"row {number}-x", reason="no id")]
                if number in skip_on
                else (),
                cursor=str(number + 1),
                expected=options["pages"] * per_page,
            )


class _Plugin:
    @hookimpl
    def onetomany_register_sources(self, register):
        register("paged", PagedSource)


def _engine(tmp_path: Path, store: Store, **options) -> Engine:
    options.setdefault("log", [])
    program = Program(
        name="p",
        sources={"billing": PluginSettings(name="billing", plugin="paged", options=options)},
        base_dir=tmp_path,
        templates_dir=tmp_path,
    )
    return Engine(
        program, store=store, clock=FrozenClock(NOW), plugins=make_plugins(("paged", _Plugin()))
    )


def test_pages_are_stored_one_by_one_with_their_cursor_and_progress(tmp_path, temp_store):
    seen = []
    with _engine(tmp_path, temp_store, pages=3) as engine:
        [report] = engine.sync(on_page=seen.append)
    assert (report.pages, report.accounts, report.cursor) == (3, 6, "3")
    assert [(p.pages, p.records, p.expected) for p in seen] == [(1, 2, 6), (2, 4, 6), (3, 6, 6)]
    assert temp_store.get_cursor("source:billing") == "3"
    assert temp_store.get_account("2-1") is not None
    state = sync_states(temp_store)["billing"]
    assert (state.succeeded_at, state.failed, state.stored) == (NOW, False, 6)


def test_a_failure_keeps_the_pages_stored_and_the_next_sync_resumes_after_them(
    tmp_path, temp_store
):
    log: list[int] = []
    with _engine(tmp_path, temp_store, pages=4, fail_on=2, log=log) as engine:
        with pytest.raises(SourceDataError, match="bad"):
            engine.sync()
        assert temp_store.get_account("1-1") is not None  # page 1 stayed
        assert temp_store.get_cursor("source:billing") == "2"
        state = sync_states(temp_store)["billing"]
        assert state.failed
        assert state.error is not None and "SourceDataError" in state.error
        assert state.stored == 4

        engine.program.sources["billing"].options["fail_on"] = None
        [report] = engine.sync()
        assert log == [0, 2]  # resumed at page 2, not from the start
        assert (report.accounts, report.cursor) == (4, "4")
        assert not sync_states(temp_store)["billing"].failed


def test_a_skipped_record_is_reported_and_the_cursor_stops_before_it(tmp_path, temp_store):
    log: list[int] = []
    with _engine(tmp_path, temp_store, pages=4, skip_on=[1], log=log) as engine:
        [report] = engine.sync()
        # Every page is stored, the skip is named, and the cursor stays after page 0.
        assert temp_store.get_account("3-1") is not None
        assert (report.skipped, report.cursor_held, report.cursor) == (1, True, "1")
        assert [str(s) for s in report.skips] == ["row 1-x: no id"]
        assert temp_store.get_cursor("source:billing") == "1"
        assert sync_states(temp_store)["billing"].skipped == 1

        engine.sync()
        assert log == [0, 1]  # the skipped record is read again


def test_full_ignores_the_stored_cursor(tmp_path, temp_store):
    log: list[int] = []
    with _engine(tmp_path, temp_store, pages=2, log=log) as engine:
        engine.sync()
        engine.sync()
        engine.sync(full=True)
    assert log == [0, 2, 0]


def test_a_simple_source_returning_one_result_still_works(tmp_path, temp_store):
    class OneShot(Source):
        def sync(self, *, cursor=None):
            return SyncResult(accounts=[Account(id="a")], contacts=[Contact(id="c")], cursor="x")

    source = OneShot(PluginSettings(name="one", plugin="one"))
    assert read_all(source).cursor == "x"
    assert [a.id for a in read_all(source).accounts] == ["a"]


def test_read_all_gathers_the_pages(tmp_path):
    settings = PluginSettings(name="b", plugin="paged", options={"pages": 3, "log": []})
    result = read_all(PagedSource(settings))
    assert (len(result.accounts), result.cursor) == (6, "3")


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    pages=st.integers(1, 6),
    skip_on=st.sets(st.integers(0, 5)),
    fail_on=st.one_of(st.none(), st.integers(0, 5)),
)
def test_the_cursor_never_passes_a_record_not_stored(tmp_path_factory, pages, skip_on, fail_on):
    """For any run of pages with skips and a failure anywhere: the stored cursor is the end of
    the last page before the first skip or failure, and every page before the failure is
    stored."""
    folder = tmp_path_factory.mktemp("sync")
    store = Store(folder / "s.db")
    try:
        engine = _engine(folder, store, pages=pages, skip_on=sorted(skip_on), fail_on=fail_on)
        with engine, contextlib.suppress(SourceDataError):
            engine.sync()
        stop = min([p for p in (*skip_on, fail_on) if p is not None and p < pages], default=pages)
        cursor = store.get_cursor("source:billing")
        assert cursor == (str(stop) if stop else None)
        read = fail_on if fail_on is not None and fail_on < pages else pages
        for number in range(pages):
            assert (store.get_account(f"{number}-0") is not None) == (number < read)
    finally:
        store.close()


class _ManyPages(Source):
    def sync(self, *, cursor=None):
        count = self.settings.options["pages"]
        for number in range(count):
            yield SyncPage(
                contacts=[
                    Contact(id=f"{number}-{i}", email=f"p{number}.{i}@example.test")
                    for i in range(200)
                ],
                events=[
                    Event(
                        id=f"e{number}-{i}",
                        name="login",
                        contact_id=f"{number}-{i}",
                        occurred_at=NOW - timedelta(days=1),
                    )
                    for i in range(200)
                ],
                cursor=str(number),
            )


def _peak(tmp_path: Path, pages: int) -> int:
    class Plugin:
        @hookimpl
        def onetomany_register_sources(self, register):
            register("many", _ManyPages)

    program = Program(
        name="p",
        sources={"m": PluginSettings(name="m", plugin="many", options={"pages": pages})},
        base_dir=tmp_path,
        templates_dir=tmp_path,
    )
    store = Store(tmp_path / f"{pages}.db")
    engine = Engine(
        program, store=store, clock=FrozenClock(NOW), plugins=make_plugins(("m", Plugin()))
    )
    tracemalloc.start()
    try:
        engine.sync()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        engine.close()


@pytest.mark.slow
def test_memory_stays_flat_in_the_number_of_records(tmp_path):
    # Ten times the pages, about the same peak: nothing is kept across pages.
    small, large = _peak(tmp_path, 3), _peak(tmp_path, 30)
    assert large < small * 1.5


def test_cli_sync_shows_each_source_and_fails_on_a_broken_one(tmp_path):
    (tmp_path / "accounts.csv").write_text("id,name\na1,Acme\na2,Globex\n")
    (tmp_path / "broken.csv").write_text("id,name\n,NoId\n")
    (tmp_path / "program.toml").write_text(
        textwrap.dedent(
            """
            [program]
            name = "p"
            store = "var/p.db"

            [sources.crm]
            plugin = "csv"
            accounts = "accounts.csv"

            [sources.broken]
            plugin = "csv"
            accounts = "broken.csv"
            """
        )
    )
    run = subprocess.run(
        [str(CLI), "sync", str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 1, run.stderr
    assert "synced crm: 2 accounts, 0 contacts, 0 events (0 new) in 1 page(s)" in run.stderr
    assert "failed broken" in run.stderr
    assert "broken.csv:2" in run.stderr
    store = Store(tmp_path / "var" / "p.db")
    try:
        states = sync_states(store)
        assert not states["crm"].failed and states["broken"].failed
    finally:
        store.close()

    only = subprocess.run(
        [str(CLI), "sync", str(tmp_path), "--source", "crm", "--full"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert only.returncode == 0, only.stderr
    assert "failed" not in only.stderr

    unknown = subprocess.run(
        [str(CLI), "sync", str(tmp_path), "--source", "nope"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert unknown.returncode == 2
    assert "unknown source 'nope'" in unknown.stderr
