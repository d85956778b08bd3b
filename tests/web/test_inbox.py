"""The inbox behind the API, on each database: tabs, pages, counts, snooze, archive, the
contact boundary, and reads that count as opens for escalation ladders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onetomany.engine import Engine
from onetomany.errors import InputError
from onetomany.model.clock import FrozenClock
from onetomany.store.queries.inbox import Position, inbox_view

from .conftest import deliver_tips


def _titles(engine: Engine, contact: str, **kwargs: object) -> list[str]:
    return [i.title for i in engine.inbox_page(contact, **kwargs).items]  # type: ignore[arg-type]


def test_a_page_is_newest_first_and_the_next_one_continues_it(engine):
    deliver_tips(engine, "c1", 5)
    first = engine.inbox_page("c1", limit=2)
    assert [i.title for i in first.items] == ["Tip 5 for Nancy", "Tip 4 for Nancy"]
    second = engine.inbox_page("c1", limit=2, after=first.next)
    assert [i.title for i in second.items] == ["Tip 3 for Nancy", "Tip 2 for Nancy"]
    last = engine.inbox_page("c1", limit=2, after=Position.parse(str(second.next)))
    assert [i.title for i in last.items] == ["Tip 1 for Nancy"]
    assert last.next is None


def test_counts_seen_read_and_the_unread_tab(engine):
    deliver_tips(engine, "c1", 3)
    assert engine.inbox_counts("c1").unread == 3
    assert engine.mark_seen("c1") == 3
    assert (engine.inbox_counts("c1").unread, engine.inbox_counts("c1").unseen) == (3, 0)
    newest = engine.inbox("c1")[0]
    assert engine.mark_read("c1", [newest.id]) == 1
    assert engine.mark_read("c1", [newest.id]) == 0
    assert _titles(engine, "c1", tab="unread") == ["Tip 2 for Nancy", "Tip 1 for Nancy"]
    assert engine.mark_read("c1") == 2
    assert engine.unread_count("c1") == 0


def test_archive_moves_an_item_to_the_archive_tab_and_back(engine):
    deliver_tips(engine, "c1", 2)
    newest = engine.inbox("c1")[0]
    assert engine.archive("c1", [newest.id]) == 1
    assert _titles(engine, "c1") == ["Tip 1 for Nancy"]
    assert _titles(engine, "c1", tab="archived") == ["Tip 2 for Nancy"]
    assert engine.unread_count("c1") == 1  # an archived item leaves the bell's count
    assert engine.archive("c1", [newest.id], archived=False) == 1
    assert _titles(engine, "c1") == ["Tip 2 for Nancy", "Tip 1 for Nancy"]


def test_a_snoozed_item_hides_and_comes_back_unread_on_top(engine):
    clock = engine.clock
    assert isinstance(clock, FrozenClock)
    deliver_tips(engine, "c1", 2)
    oldest = engine.inbox("c1")[-1]
    engine.mark_read("c1")
    engine.mark_seen("c1")
    until = engine.snooze("c1", oldest.id, clock.now() + timedelta(hours=3))
    assert until is not None
    assert _titles(engine, "c1") == ["Tip 2 for Nancy"]
    assert engine.unread_count("c1") == 0
    assert engine.mark_read("c1", [oldest.id]) == 0  # hidden: nothing to read yet
    clock.set(until)
    assert _titles(engine, "c1") == ["Tip 1 for Nancy", "Tip 2 for Nancy"]
    assert engine.inbox_counts("c1").unread == 1
    assert engine.inbox_counts("c1").unseen == 1


def test_a_snooze_without_an_offset_is_the_contacts_wall_clock(engine):
    deliver_tips(engine, "c2", 1)  # c2 lives in America/Sao_Paulo (UTC-3)
    item = engine.inbox("c2")[0]
    until = engine.snooze("c2", item.id, datetime(2026, 1, 6, 9, 0))
    assert until == datetime(2026, 1, 6, 12, 0, tzinfo=UTC)


def test_a_snooze_into_the_past_is_refused_and_changes_nothing(engine):
    deliver_tips(engine, "c1", 1)
    item = engine.inbox("c1")[0]
    with pytest.raises(InputError, match="must end after now"):
        engine.snooze("c1", item.id, engine.clock.now() - timedelta(minutes=1))
    assert engine.inbox("c1")[0] == item


def test_one_contact_can_neither_see_nor_change_anothers_items(engine):
    deliver_tips(engine, "c1", 2)
    theirs = [i.id for i in engine.inbox("c1")]
    assert engine.inbox("c2") == []
    assert engine.inbox_item("c2", theirs[0]) is None
    assert engine.mark_read("c2", theirs) == 0
    assert engine.mark_read("c2") == 0
    assert engine.archive("c2", theirs) == 0
    assert engine.snooze("c2", theirs[0], engine.clock.now() + timedelta(days=1)) is None
    assert engine.click("c2", theirs[0]) is None
    assert engine.mark_seen("c2") == 0
    assert engine.inbox_counts("c1").unread == 2
    assert engine.inbox_counts("c1").unseen == 2
    assert [i.id for i in engine.inbox("c1")] == theirs
    assert engine.store.count("events") == 4  # two tips, two sends: no open, no click


def _sent_nudges(engine: Engine) -> list[str | None]:
    return [r.contact_id for r in engine.store.outbox_rows() if r.touch == "nudge"]


def test_an_inapp_read_stops_the_not_opened_ladder(engine):
    clock = engine.clock
    assert isinstance(clock, FrozenClock)
    deliver_tips(engine, "c1", 1)
    deliver_tips(engine, "c2", 1)
    engine.mark_read("c1", [engine.inbox("c1")[0].id])
    clock.advance(days=3)
    engine.tick()
    assert _sent_nudges(engine) == ["c2"]  # c1 read it in the app; c2 did not


def test_a_click_counts_once_and_reads_the_item(engine):
    deliver_tips(engine, "c1", 1)
    item = engine.inbox("c1")[0]
    assert engine.click("c1", item.id) == item
    assert engine.click("c1", item.id) is not None
    assert engine.unread_count("c1") == 0
    names = [e.name for _, e in engine.store.events_after(0) if e.name.startswith("message_")]
    assert sorted(names) == ["message_clicked", "message_opened", "message_sent"]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    actions=st.lists(
        st.tuples(
            st.sampled_from(["read", "archive", "unarchive", "snooze", "seen", "wait"]),
            st.integers(0, 3),
        ),
        max_size=12,
    ),
    limit=st.integers(1, 4),
)
def test_pages_cover_each_visible_item_once_newest_first(sqlite_engine, actions, limit):
    engine = sqlite_engine
    clock = engine.clock
    assert isinstance(clock, FrozenClock)
    if not engine.inbox("c1") and not engine.inbox_page("c1", tab="archived").items:
        deliver_tips(engine, "c1", 4)
    ids = sorted(i.id for i in engine.inbox_page("c1", tab="archived", limit=100).items) or []
    ids = sorted({*ids, *(i.id for i in engine.inbox("c1"))})
    for action, index in actions:
        target = ids[index % len(ids)] if ids else 1
        if action == "read":
            engine.mark_read("c1", [target])
        elif action == "archive":
            engine.archive("c1", [target])
        elif action == "unarchive":
            engine.archive("c1", [target], archived=False)
        elif action == "snooze":
            engine.snooze("c1", target, clock.now() + timedelta(minutes=30 * (index + 1)))
        elif action == "seen":
            engine.mark_seen("c1")
        else:
            clock.advance(minutes=45)
    for tab in ("inbox", "unread", "archived"):
        everything = engine.inbox_page("c1", tab=tab, limit=100).items
        paged, after = [], None
        while True:
            page = engine.inbox_page("c1", tab=tab, limit=limit, after=after)
            # The list endpoint's one-statement read shows the same page and the same counts.
            view = inbox_view(
                engine.store, "c1", now=clock.now(), tab=tab, limit=limit, after=after
            )
            assert (view.page, view.counts) == (page, engine.inbox_counts("c1"))
            paged.extend(page.items)
            if page.next is None:
                break
            after = page.next
        assert [i.id for i in paged] == [i.id for i in everything]
        keys = [(i.shown_at, i.id) for i in everything]
        assert keys == sorted(keys, reverse=True)
    visible = engine.inbox("c1")
    counts = engine.inbox_counts("c1")
    assert counts.unread == sum(i.read_at is None for i in visible)
    assert counts.unseen == sum(i.seen_at is None for i in visible)
    assert all(i.archived_at is None for i in visible)
    assert all(i.snoozed_until is None or i.snoozed_until <= clock.now() for i in visible)


def test_the_one_statement_view_reads_one_contact_and_counts_an_empty_page(engine):
    deliver_tips(engine, "c1", 3)
    deliver_tips(engine, "c2", 2)
    now = engine.clock.now()
    view = inbox_view(engine.store, "c2", now=now, limit=10)
    assert {i.contact_id for i in view.page.items} == {"c2"}
    assert (view.counts.unread, view.counts.unseen) == (2, 2)
    assert (view.locale, view.timezone) == ("pt", "America/Sao_Paulo")
    # An empty tab still answers the bell's counts and the locale.
    empty = inbox_view(engine.store, "c2", now=now, tab="archived")
    assert empty.page.items == () and empty.page.next is None
    assert (empty.counts.unread, empty.locale) == (2, "pt")
    # A contact the store does not know: nothing, and no locale.
    nobody = inbox_view(engine.store, "nobody", now=now, topic="tips")
    assert (nobody.page.items, nobody.counts.unread, nobody.locale) == ((), 0, None)
    with pytest.raises(InputError, match="page size 0"):
        inbox_view(engine.store, "c1", now=now, limit=0)
    with pytest.raises(InputError, match="tab 'spam'"):
        inbox_view(engine.store, "c1", now=now, tab="spam")
