"""Retention: old rows are archived, then removed, and never what a trigger still needs.

Each test runs on SQLite and PostgreSQL (``store``), with the engine's own tick and dispatch
writing the rows.
"""

from __future__ import annotations

import gzip
import json
from datetime import timedelta
from pathlib import Path

import attrs
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onetomany import Event, FrozenClock
from onetomany.engine import Engine
from onetomany.errors import ConfigErrors
from onetomany.program import load_program
from onetomany.rules.caps import Cap
from onetomany.rules.retention import Retention
from onetomany.store import Store, schema
from onetomany.store.queries.decisions import recorded_decisions
from onetomany.testing import RecordingChannel, make_plugins

from .conftest import PEOPLE, make_program

SEGMENTS = {
    # A windowed count keeps its event for the window; a count over all time, for ever.
    "active": "count('login', days=365) >= 1",
    "reporting": "count('report_created') >= 2",
}


def _engine(tmp_path: Path, store: Store, clock: FrozenClock, retention: Retention) -> Engine:
    program = attrs.evolve(
        make_program(tmp_path),
        retention=retention,
        segments=SEGMENTS,
        caps={
            "weekly": Cap(name="weekly", per="contact", max=2, window=timedelta(days=7)),
        },
    )
    engine = Engine(
        program,
        store=store,
        clock=clock,
        plugins=make_plugins(),
        channels={"email": RecordingChannel()},
    )
    engine.identify(*PEOPLE)
    return engine


def _lines(path: Path) -> list[str]:
    with gzip.open(path, "rt") as lines:
        return list(lines)


def _event_ids(store: Store) -> set[str]:
    return {event.id for _, event in store.events_after(0, limit=10_000)}


@pytest.fixture
def history(tmp_path, store, frozen_clock):
    """A touch sent 200 days ago, and events of every kind the rule distinguishes."""
    retention = Retention(
        events=timedelta(days=30),
        deliveries=timedelta(days=180),
        decisions=timedelta(days=30),
        archive="archive",
    )
    engine = _engine(tmp_path, store, frozen_clock, retention)
    engine.track("signed_up", account_id="a1", id="signup")
    assert engine.tick() == 1
    assert engine.dispatch().sent == 1
    frozen_clock.advance(timedelta(days=200))
    now = frozen_clock.now()
    for name, ages in {
        "page_viewed": (100, 90, 80, 5),
        "login": (150, 120, 100, 2),
        "report_created": (150, 120, 100, 2),
    }.items():
        for age in ages:
            engine.track(
                name,
                contact_id="c1",
                account_id="a1",
                occurred_at=now - timedelta(days=age),
                id=f"{name}-{age}",
            )
    assert engine.tick() == 0
    # Stored after the tick read the log: not read yet, so kept whatever its age.
    engine.track(
        "page_viewed",
        contact_id="c1",
        account_id="a1",
        occurred_at=now - timedelta(days=95),
        id="page_viewed-unread",
    )
    # Cap slots besides the welcome's own (200 days old): one in the window, one past it, and
    # one of a cap the program no longer has.
    with store.write() as conn:
        conn.execute(
            sa.insert(schema.cap_reservations),
            [
                {"cap": "weekly", "scope": "c1", "outbox_id": 11, "at": now - timedelta(days=1)},
                {"cap": "weekly", "scope": "c1", "outbox_id": 12, "at": now - timedelta(days=8)},
                {"cap": "gone", "scope": "c1", "outbox_id": 13, "at": now - timedelta(days=1)},
            ],
        )
    yield engine
    engine.close()


def test_prune_archives_then_removes_only_what_no_trigger_needs(history: Engine, tmp_path):
    store = history.store
    before = _event_ids(store)
    dry = history.prune(dry_run=True)
    assert (dry.events, dry.deliveries, dry.decisions, dry.cap_reservations) == (2, 1, 1, 3)
    assert dry.archives == ()
    assert _event_ids(store) == before  # a dry run changes nothing
    assert not (tmp_path / "archive").exists()

    report = history.prune()
    assert (report.events, report.deliveries, report.decisions, report.cap_reservations) == (
        2,
        1,
        1,
        3,
    )
    # Between the first and the last of their name, older than 30 days, read by the tick:
    assert before - _event_ids(store) == {"page_viewed-90", "page_viewed-80"}
    # Kept: the first and last page view, the unread one, every windowed and unwindowed count,
    # the signup (first and last of its name) and the delivery's own event.
    assert {"page_viewed-100", "page_viewed-5", "page_viewed-unread", "signup"} <= _event_ids(store)
    assert {f"login-{a}" for a in (150, 120, 100, 2)} <= _event_ids(store)
    assert {f"report_created-{a}" for a in (150, 120, 100, 2)} <= _event_ids(store)

    archived = {p.name.split("-")[0]: p for p in report.archives}
    assert set(archived) == {"events", "deliveries", "decisions"}
    events = [json.loads(line) for line in _lines(archived["events"])]
    assert sorted(e["id"] for e in events) == ["page_viewed-80", "page_viewed-90"]
    [row] = [json.loads(line) for line in _lines(archived["deliveries"])]
    assert row["status"] == "sent"
    assert row["payload"]  # the payload went to the archive...
    assert [d["status"] for d in row["deliveries"]] == ["sent"]
    [sent] = store.outbox_rows()
    assert sent.payload == {}  # ...and out of the store, with the attempts
    assert store.deliveries() == []
    [decision] = [json.loads(line) for line in _lines(archived["decisions"])]
    assert decision["touch"] == "welcome"
    assert recorded_decisions(store, "welcome", "c1", limit=10) == []

    # The emptied row still holds its key: the touch is never queued again.
    assert history.tick() == 0
    assert [r.idempotency_key for r in store.outbox_rows()] == [sent.idempotency_key]
    # The tick has read the late page view since: now it may go too, and nothing else.
    again = history.prune()
    assert (again.events, again.deliveries, again.decisions, again.cap_reservations) == (
        1,
        0,
        0,
        0,
    )
    assert "page_viewed-unread" not in _event_ids(store)
    assert history.prune().events == 0


def test_cap_reservations_outlive_their_window_only(history: Engine):
    history.prune()
    with history.store.read() as conn:
        left = conn.execute(
            sa.select(schema.cap_reservations.c.cap, schema.cap_reservations.c.outbox_id)
        ).all()
    assert [tuple(r) for r in left] == [("weekly", 11)]


def test_with_an_archive_folder_a_tick_leaves_decisions_to_prune(history: Engine):
    # The tick after 200 days did not remove the 200-day-old decision: prune archives it first.
    assert len(recorded_decisions(history.store, "welcome", "c1", limit=10)) == 1


def test_without_an_archive_folder_ticks_prune_decisions_as_before(tmp_path, store, frozen_clock):
    engine = _engine(tmp_path, store, frozen_clock, Retention(decisions=timedelta(days=3)))
    engine.track("signed_up", account_id="a1")
    engine.tick()
    assert len(recorded_decisions(store, "welcome", "c1", limit=10)) == 1
    frozen_clock.advance(timedelta(days=4))
    engine.tick()
    assert recorded_decisions(store, "welcome", "c1", limit=10) == []
    engine.close()


def test_retention_reads_from_program_toml_and_bad_values_name_their_key(tmp_path):
    folder = tmp_path / "prog"
    (folder / "templates").mkdir(parents=True)
    (folder / "templates" / "welcome.mjml").write_text(
        '+++\nsubject = "Hi"\n+++\n<mjml><mj-body><mj-section><mj-column><mj-text>Hi'
        "</mj-text></mj-column></mj-section></mj-body></mjml>\n"
    )
    head = '[program]\nname = "p"\n\n'
    (folder / "program.toml").write_text(
        head + '[retention]\nevents = "400d"\ndeliveries = "180d"\narchive = "var/archive"\n'
        '[retention.event]\npage_viewed = "30d"\n'
    )
    retention = load_program(folder).retention
    assert retention.events == timedelta(days=400)
    assert retention.of_event("page_viewed") == timedelta(days=30)
    assert retention.of_event("login") == timedelta(days=400)
    assert retention.deliveries == timedelta(days=180)
    assert retention.decisions == timedelta(days=30)  # the default
    assert retention.archive == "var/archive"

    (folder / "program.toml").write_text(
        head + '[retention]\nevents = "forever"\nkeep = "1d"\n[retention.event]\nx = 5\n'
    )
    with pytest.raises(ConfigErrors) as caught:
        load_program(folder)
    keys = {e.key: e.reason for e in caught.value.errors}
    assert "positive duration" in keys["retention.events"]
    assert "unknown key" in keys["retention.keep"]
    assert "positive duration" in keys["retention.event.x"]


# -- the rule, for any history -----------------------------------------------------------------

EVENTS = st.lists(
    st.tuples(
        st.sampled_from(["login", "page_viewed"]),
        st.sampled_from(["c1", "c2", "c3", None]),
        st.integers(min_value=0, max_value=120),
    ),
    max_size=25,
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(events=EVENTS, read=st.integers(min_value=0, max_value=25))
def test_prune_never_removes_a_first_or_last_event_nor_one_the_tick_has_not_read(
    tmp_path_factory, events, read
):
    """Whatever the history and however far the tick has read: every first and last event of
    its name per contact and per account, and every event after the cursor, survives."""
    from onetomany.ops.lifecycle import prune
    from onetomany.store import EventPosition

    folder = tmp_path_factory.mktemp("prop")
    clock = FrozenClock()
    now = clock.now()
    store = Store(str(folder / "store.db"))
    accounts = {"c1": "a1", "c2": "a1", "c3": "a2"}
    try:
        store.add_events(
            [
                Event(
                    id=f"e{i}",
                    name=name,
                    contact_id=contact,
                    account_id=accounts[contact] if contact else "a2",
                    occurred_at=now - timedelta(days=age),
                )
                for i, (name, contact, age) in enumerate(events)
            ],
            now=now,
        )
        stored = store.events_after(0, limit=1000)
        through = stored[min(read, len(stored)) - 1][0] if read and stored else EventPosition(0, 0)
        program = attrs.evolve(make_program(folder), retention=Retention(events=timedelta(days=30)))
        prune(program, store, now=now, through=through)
        left = {event.id for _, event in store.events_after(0, limit=1000)}
        must_stay = {event.id for position, event in stored if position > through}
        for column in ("contact_id", "account_id"):
            groups: dict[tuple[str, str], list] = {}
            for position, event in stored:
                subject = getattr(event, column)
                if subject is not None:
                    groups.setdefault((subject, event.name), []).append(
                        (event.occurred_at, position.seq, event.id)
                    )
            for group in groups.values():
                must_stay |= {min(group)[2], max(group)[2]}
        for _, event in stored:
            if now - event.occurred_at <= timedelta(days=30):
                must_stay.add(event.id)
        assert must_stay <= left
    finally:
        store.close()


def test_a_goal_keeps_its_event_for_the_goal_s_days(tmp_path, store):
    """A conversion counts the goal's event up to ``within_days`` after the send, so retention
    keeps it that long, whatever a shorter age for its name says."""
    from onetomany.ops.lifecycle import prune
    from onetomany.rules.goals import Goal

    now = FrozenClock().now()
    store.add_events(
        [
            Event(
                id=f"{name}-{age}",
                name=name,
                contact_id="c1",
                account_id="a1",
                occurred_at=now - timedelta(days=age),
            )
            for name in ("report_created", "page_viewed")
            for age in (100, 90, 40, 20, 1)
        ],
        now=now,
    )
    through = store.events_after(0, limit=100)[-1][0]
    base = make_program(tmp_path)
    [welcome] = base.touches
    program = attrs.evolve(
        base,
        retention=Retention(events=timedelta(days=10)),
        # The welcome's own goal, and the program's for a second touch that names none.
        touches=(
            attrs.evolve(welcome, goal=Goal(event="page_viewed", within_days=30)),
            attrs.evolve(welcome, name="nudge"),
        ),
        goal=Goal(event="report_created", within_days=60),
    )

    report = prune(program, store, now=now, through=through)

    # Between the first and last of their name: kept while younger than the goal's days.
    assert report.events == 3
    left = _event_ids(store)
    assert {"report_created-90", "page_viewed-90", "page_viewed-40"}.isdisjoint(left)
    assert {"report_created-40", "report_created-20", "page_viewed-20"} <= left

    # With no touch left on the program's goal, its event keeps the plain age.
    only_own = attrs.evolve(program, touches=program.touches[:1])
    assert prune(only_own, store, now=now, through=through).events == 2
    assert {"report_created-40", "report_created-20"}.isdisjoint(_event_ids(store))
