"""Journeys: accounts moving through stages, the events they emit and the touches they send."""

import logging
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onetomany import Account, Contact
from onetomany.engine import Engine
from onetomany.errors import ConfigErrors
from onetomany.program import Audience, EventTrigger, Reentry, StageTrigger, Touch, load_program
from onetomany.rules.journeys import Journey, Stage, StageChange
from onetomany.store import Store
from onetomany.store.queries.journeys import _save, journey_history, journey_states
from onetomany.testing import make_plugins
from onetomany.tracking.journeys import Criteria, advance, update_journeys

from .conftest import PEOPLE, make_program
from .test_program import GOOD, _folder

ONBOARDING = Journey(
    name="onboarding",
    stages=(
        Stage(
            name="setup",
            entry='exists(last("signed_up"))',
            complete='count("integration_connected") >= 1',
            ideal_days=7,
        ),
        Stage(name="first_value", complete='count("report_created") >= 1', ideal_days=14),
        Stage(name="renewal", entry="account.renewing == true", complete="account.renewed == true"),
    ),
)


def _engine(tmp_path, store, clock, recorder, *touches, journeys=(ONBOARDING,)):
    program = attrs.evolve(make_program(tmp_path, *touches), journeys={j.name: j for j in journeys})
    engine = Engine(
        program, store=store, clock=clock, plugins=make_plugins(), channels={"email": recorder}
    )
    engine.identify(*PEOPLE)
    return engine


def _steps(changes):
    return [(c.account_id, c.stage, c.action) for c in changes]


def _set_traits(engine, account_id, **traits):
    account = engine.store.get_account(account_id)
    engine.identify(attrs.evolve(account, traits={**account.traits, **traits}))


def test_an_account_enters_the_first_stage_when_any_contact_meets_its_entry(
    tmp_path, store, frozen_clock, recorder
):
    with _engine(tmp_path, store, frozen_clock, recorder) as engine:
        assert engine.update_journeys() == []
        engine.track("signed_up", contact_id="c2", account_id="a1")
        assert _steps(engine.update_journeys()) == [("a1", "setup", "entered")]
        assert engine.update_journeys() == []  # nothing more until something changes
        [state] = engine.journey_states("a1")
        assert (state.journey, state.stage, state.entered_at) == (
            "onboarding",
            "setup",
            frozen_clock.now(),
        )
        assert not state.completed and not state.overdue
        assert engine.journey_states("a2") == []


def test_completing_a_stage_enters_the_next_then_waits_for_its_entry(
    tmp_path, store, frozen_clock, recorder
):
    with _engine(tmp_path, store, frozen_clock, recorder) as engine:
        engine.track("signed_up", contact_id="c1", account_id="a1")
        engine.update_journeys()
        frozen_clock.advance(days=2)
        engine.track("integration_connected", contact_id="c1", account_id="a1")
        # first_value has no entry criterion: completing setup enters it.
        assert _steps(engine.update_journeys()) == [
            ("a1", "setup", "completed"),
            ("a1", "first_value", "entered"),
        ]
        engine.track("report_created", contact_id="c2", account_id="a1")
        assert _steps(engine.update_journeys()) == [("a1", "first_value", "completed")]
        assert engine.update_journeys() == []  # renewal's entry does not hold yet
        [state] = engine.journey_states("a1")
        assert (state.stage, state.completed) == ("first_value", True)

        _set_traits(engine, "a1", renewing=True)
        assert _steps(engine.update_journeys()) == [("a1", "renewal", "entered")]
        _set_traits(engine, "a1", renewed=True)
        assert _steps(engine.update_journeys()) == [("a1", "renewal", "completed")]
        _set_traits(engine, "a1", renewing=False, renewed=False)
        assert engine.update_journeys() == []  # finished, and stages never move back
        assert engine.journey_states("a1")[0].stage == "renewal"


def test_one_round_cascades_through_every_stage_whose_criteria_hold(
    tmp_path, store, frozen_clock, recorder
):
    with _engine(tmp_path, store, frozen_clock, recorder) as engine:
        for name in ("signed_up", "integration_connected", "report_created"):
            engine.track(name, contact_id="c3", account_id="a2")
        _set_traits(engine, "a2", renewing=True, renewed=True)
        assert _steps(engine.update_journeys()) == [
            ("a2", "setup", "entered"),
            ("a2", "setup", "completed"),
            ("a2", "first_value", "entered"),
            ("a2", "first_value", "completed"),
            ("a2", "renewal", "entered"),
            ("a2", "renewal", "completed"),
        ]
        entries = {c.stage: c.entry_id for c in engine.journey_history("a2")}
        assert len(set(entries.values())) == 3  # a fresh entry id per stage entered


def test_a_stage_is_overdue_once_after_its_ideal_days(tmp_path, store, frozen_clock, recorder):
    with _engine(tmp_path, store, frozen_clock, recorder) as engine:
        engine.track("signed_up", contact_id="c1", account_id="a1")
        engine.update_journeys()
        frozen_clock.advance(days=6, hours=23)
        assert engine.update_journeys() == []
        frozen_clock.advance(hours=1)
        assert _steps(engine.update_journeys()) == [("a1", "setup", "overdue")]
        frozen_clock.advance(days=30)
        assert engine.update_journeys() == []  # once per entry
        [state] = engine.journey_states("a1")
        assert state.overdue and state.overdue_at == frozen_clock.now() - timedelta(days=30)

        engine.track("integration_connected", contact_id="c1", account_id="a1")
        engine.update_journeys()
        frozen_clock.advance(days=14)
        # The next stage's entry has its own clock, and its own single overdue.
        assert _steps(engine.update_journeys()) == [("a1", "first_value", "overdue")]
        engine.track("report_created", contact_id="c1", account_id="a1")
        _set_traits(engine, "a1", renewing=True)
        engine.update_journeys()
        frozen_clock.advance(days=365)
        assert engine.update_journeys() == []  # renewal has no ideal_days: never overdue


def test_history_and_events_record_every_step(tmp_path, store, frozen_clock, recorder):
    with _engine(tmp_path, store, frozen_clock, recorder) as engine:
        engine.track("signed_up", contact_id="c1", account_id="a1", id="s1")
        entered_at = frozen_clock.now()
        frozen_clock.advance(days=8)
        first = engine.update_journeys()  # entered and, eight days late, nothing else
        frozen_clock.advance(days=8)
        second = engine.update_journeys()
        engine.track("integration_connected", contact_id="c1", account_id="a1")
        third = engine.update_journeys()
        history = engine.journey_history("a1")
        assert history == [*first, *second, *third]
        assert engine.journey_history("a1", journey="other") == []
        assert _steps(history) == [
            ("a1", "setup", "entered"),
            ("a1", "setup", "overdue"),
            ("a1", "setup", "completed"),
            ("a1", "first_value", "entered"),
        ]
        assert history[0].at == entered_at + timedelta(days=8)
        setup = history[0].entry_id
        assert {c.entry_id for c in history[:3]} == {setup}

        stored = [e for _, e in engine.store.events_after(0) if e.name.startswith("stage_")]
        assert [(e.id, e.name, e.account_id, e.contact_id) for e in stored] == [
            (c.event_id, c.event_name, "a1", None) for c in history
        ]
        assert dict(stored[0].properties) == {
            "journey": "onboarding",
            "stage": "setup",
            "entry_id": setup,
        }


def test_stage_touches_are_sent_through_tick_and_dispatch(tmp_path, store, frozen_clock, recorder):
    admins = Audience(roles=("admin", "sponsor"))
    touches = (
        Touch(
            name="kickoff",
            trigger=StageTrigger(journey="onboarding", stage="setup", on="enter"),
            channel="email",
            template="welcome",
            audience=admins,
        ),
        Touch(
            name="stuck",
            trigger=StageTrigger(journey="onboarding", stage="setup", on="overdue"),
            channel="email",
            template="welcome",
            audience=Audience(roles=("sponsor",)),
        ),
        Touch(
            name="first_report",
            trigger=StageTrigger(journey="onboarding", stage="first_value", on="complete"),
            channel="email",
            template="welcome",
            audience=admins,
        ),
    )
    with _engine(tmp_path, store, frozen_clock, recorder, *touches) as engine:
        engine.track("signed_up", contact_id="c1", account_id="a1")
        engine.step()
        assert [(m.touch, m.contact_id) for m in recorder.sent] == [("kickoff", "c1")]
        frozen_clock.advance(days=7)
        engine.step()
        engine.step()
        assert [(m.touch, m.contact_id) for m in recorder.sent[1:]] == [("stuck", "c2")]
        engine.track("integration_connected", contact_id="c1", account_id="a1")
        engine.track("report_created", contact_id="c1", account_id="a1")
        engine.step()
        assert [(m.touch, m.contact_id) for m in recorder.sent[2:]] == [("first_report", "c1")]


def test_a_per_stage_reentry_rule_sends_once_per_stage_entry(
    tmp_path, store, frozen_clock, recorder
):
    tips = Touch(
        name="tips",
        trigger=EventTrigger(event="login"),
        channel="email",
        template="welcome",
        reentry=Reentry(kind="stage", journey="onboarding"),
    )
    with _engine(tmp_path, store, frozen_clock, recorder, tips) as engine:
        engine.track("login", contact_id="c1", account_id="a1")
        engine.step()
        assert recorder.sent == []  # not in the journey: no stage entry to key by
        engine.track("signed_up", contact_id="c1", account_id="a1")
        engine.step()
        for _ in range(3):
            engine.track("login", contact_id="c1", account_id="a1")
            engine.step()
        assert len(recorder.sent) == 1  # once while in setup
        engine.track("integration_connected", contact_id="c1", account_id="a1")
        engine.step()  # enters first_value: a new stage entry
        for _ in range(2):
            engine.track("login", contact_id="c1", account_id="a1")
            engine.step()
        assert len(recorder.sent) == 2
        keys = [r.idempotency_key for r in engine.store.outbox_rows()]
        entries = [c.entry_id for c in engine.journey_history("a1") if c.action == "entered"]
        assert keys == [f"acme:tips:c1:stage-{entry}" for entry in entries]


# -- when the data disagrees ------------------------------------------------------------------


def test_an_account_meeting_several_entries_starts_at_the_first(
    tmp_path, store, frozen_clock, recorder, caplog
):
    with _engine(tmp_path, store, frozen_clock, recorder) as engine:
        engine.track("signed_up", contact_id="c1", account_id="a1")
        _set_traits(engine, "a1", renewing=True)
        with caplog.at_level(logging.INFO, logger="onetomany.tracking.journeys"):
            assert _steps(engine.update_journeys()) == [("a1", "setup", "entered")]
        assert "'a1' meets the entry of several stages of journey 'onboarding'" in caplog.text
        assert "placed at the first, 'setup'" in caplog.text


def test_meeting_a_later_completion_waits_until_that_stage_is_entered(
    tmp_path, store, frozen_clock, recorder, caplog
):
    with _engine(tmp_path, store, frozen_clock, recorder) as engine:
        engine.track("report_created", contact_id="c1", account_id="a1")  # before signing up
        with caplog.at_level(logging.DEBUG, logger="onetomany.tracking.journeys"):
            assert engine.update_journeys() == []
        assert "meets the completion of stage 'first_value' of journey 'onboarding'" in (
            caplog.text
        )
        engine.track("signed_up", contact_id="c1", account_id="a1")
        engine.track("integration_connected", contact_id="c1", account_id="a1")
        assert _steps(engine.update_journeys()) == [
            ("a1", "setup", "entered"),
            ("a1", "setup", "completed"),
            ("a1", "first_value", "entered"),
            ("a1", "first_value", "completed"),
        ]


def test_a_stage_removed_from_the_journey_is_dropped_and_history_kept(store, caplog):
    now = datetime(2026, 3, 1, tzinfo=UTC)
    store.save_profiles(
        accounts=[Account(id="a1", traits={"trial": True})],
        contacts=[Contact(id="c1", account_id="a1")],
        now=now,
    )
    before = Journey(
        name="j",
        stages=(
            Stage(name="trial", entry="account.trial == true", complete="account.paid == true"),
        ),
    )
    [entered] = update_journeys(store, [before], now=now)
    after = Journey(
        name="j",
        stages=(
            Stage(name="pilot", entry="account.trial == true", complete="account.paid == true"),
        ),
    )
    later = now + timedelta(days=1)
    with caplog.at_level(logging.WARNING, logger="onetomany.tracking.journeys"):
        assert _steps(update_journeys(store, [after], now=later)) == [("a1", "pilot", "entered")]
    assert "journey 'j' has no stage 'trial' any more: account 'a1'" in caplog.text
    assert [s.stage for s in journey_states(store, "a1")] == ["pilot"]
    assert _steps(journey_history(store, "a1")) == [
        ("a1", "trial", "entered"),
        ("a1", "pilot", "entered"),
    ]
    assert journey_history(store, "a1")[0] == entered

    # No stage of the journey takes the account any more: it leaves, with its history.
    store.save_profiles(accounts=[Account(id="a1", traits={"trial": False})], now=later)
    caplog.clear()
    gone = Journey(
        name="j", stages=(Stage(name="paid", entry="account.paid == true", complete="false"),)
    )
    with caplog.at_level(logging.WARNING, logger="onetomany.tracking.journeys"):
        assert update_journeys(store, [gone], now=later + timedelta(days=1)) == []
    assert "no stage 'pilot' any more" in caplog.text
    assert journey_states(store, "a1") == []
    assert len(journey_history(store, "a1")) == 2


def test_a_round_repeated_from_the_same_reading_records_nothing_twice(store):
    """Two engines reading the same state: the second one's writes find it changed."""
    now = datetime(2026, 3, 1, tzinfo=UTC)
    journey = Journey(name="j", stages=(Stage(name="s", entry="true", complete="false"),))
    criteria = Criteria(entry=(frozenset({"a1"}),), complete=(frozenset(),))
    new, steps = advance(journey, "a1", None, criteria, now)
    assert _steps(steps) == [("a1", "s", "entered")]
    with store.write() as conn:
        assert _save(store, conn, None, new)
    with store.write() as conn:
        assert not _save(store, conn, None, new)


# -- program.toml -----------------------------------------------------------------------------

JOURNEYS_TOML = """
[[journeys.onboarding.stages]]
name = "setup"
entry = 'exists(last("signed_up"))'
complete = 'count("integration_connected") >= 1'
ideal_days = 7

[[journeys.onboarding.stages]]
name = "first_value"
complete = 'count("report_created") >= 1'
ideal_days = 14

[[journeys.onboarding.stages]]
name = "renewal"
entry = "account.renewing == true"
complete = "account.renewed == true"

[touches.kickoff]
trigger = { stage = "onboarding.setup", on = "enter" }
channel = "email"
template = "welcome"
reentry = { per = "stage", journey = "onboarding" }
"""


def test_journeys_load_from_toml(tmp_path, monkeypatch):
    monkeypatch.setenv("ACME_SMTP_PASSWORD", "x")
    program = load_program(_folder(tmp_path, GOOD + JOURNEYS_TOML))
    assert program.journeys == {"onboarding": ONBOARDING}
    kickoff = program.touch("kickoff")
    assert kickoff.trigger == StageTrigger(journey="onboarding", stage="setup", on="enter")
    assert kickoff.reentry == Reentry(kind="stage", journey="onboarding")


def test_journey_errors_are_reported_together_with_their_keys(tmp_path, monkeypatch):
    monkeypatch.setenv("ACME_SMTP_PASSWORD", "x")
    bad = """
[[journeys.broken.stages]]
name = "setup"
entry = 'count("signed_up" >= 1'
complete = "account.ok == true"

[[journeys.incomplete.stages]]
name = "setup"
entry = "account.ok == true"

[[journeys.typo.stages]]
name = "setup"
entry = "account.ok == true"
complete = "account.ok == true"
ideal_dayz = 3

[[journeys.headless.stages]]
name = "setup"
complete = "account.ok == true"
"""
    with pytest.raises(ConfigErrors) as raised:
        load_program(_folder(tmp_path, GOOD + bad))
    found = {e.key: e.reason for e in raised.value.errors}
    assert set(found) == {
        "journeys.broken.stages[0].entry",
        "journeys.incomplete.stages[0].complete",
        "journeys.typo.stages[0]",
        "journeys.headless.stages[0].entry",
    }
    assert "ideal_dayz" in found["journeys.typo.stages[0]"]
    assert "first stage" in found["journeys.headless.stages[0].entry"]
    assert all(e.file == str(tmp_path / "program.toml") for e in raised.value.errors)


# -- properties that hold for every sequence of changes ---------------------------------------

PROPERTY_JOURNEY = Journey(
    name="p",
    stages=(
        Stage(name="one", entry="account.a == true", complete="account.b == true", ideal_days=3),
        Stage(name="two", complete="account.c == true", ideal_days=2),
        Stage(name="three", entry="account.d == true", complete="account.b == false", ideal_days=1),
    ),
)
TRAITS = ("a", "b", "c", "d")
operations = st.lists(
    st.one_of(
        st.tuples(st.just("set"), st.sampled_from(TRAITS), st.booleans()),
        st.tuples(st.just("wait"), st.integers(min_value=0, max_value=96), st.just(False)),
    ),
    max_size=25,
)


@pytest.fixture(scope="module")
def property_store():
    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder) / "store.db")
        yield store
        store.close()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=operations)
def test_journey_invariants_hold_for_any_sequence_of_changes(property_store, ops):
    store = property_store
    account_id = uuid.uuid4().hex
    traits = dict.fromkeys(TRAITS, False)
    now = datetime(2026, 1, 1, tzinfo=UTC)

    def save() -> None:
        store.save_profiles(accounts=[Account(id=account_id, traits=dict(traits))], now=now)

    save()
    store.save_profiles(contacts=[Contact(id=f"{account_id}-c", account_id=account_id)], now=now)
    steps: list[StageChange] = []
    for kind, what, value in [*ops, ("wait", 0, False)]:
        if kind == "set":
            traits[str(what)] = bool(value)
            save()
        else:
            now += timedelta(hours=int(what))
        # The store is shared between examples: keep this example's account only.
        taken = update_journeys(store, [PROPERTY_JOURNEY], now=now)
        steps += [s for s in taken if s.account_id == account_id]
        _check_settled(store, account_id, traits, now)
    _check_history(store, account_id, steps)


def _check_settled(store, account_id, traits, now):
    """After a round, nothing that should have happened is left for the next one."""
    states = journey_states(store, account_id)
    assert len(states) <= 1  # at most one stage per journey
    names = [s.name for s in PROPERTY_JOURNEY.stages]
    completes = [traits["b"], traits["c"], not traits["b"]]
    entries = [traits["a"], True, traits["d"]]
    if not states:
        assert not traits["a"]
        return
    [state] = states
    position = names.index(state.stage)
    if not state.completed:
        assert not completes[position]
        ideal = PROPERTY_JOURNEY.stages[position].ideal_days
        due = state.entered_at + timedelta(days=ideal) <= now
        assert state.overdue == due  # overdue as soon as due, and never early
    elif position + 1 < len(names):
        assert not entries[position + 1]


def _check_history(store, account_id, steps):
    history = journey_history(store, account_id)
    assert history == steps
    names = [s.name for s in PROPERTY_JOURNEY.stages]
    seen: dict[str, list[str]] = {}
    last_position = -1
    open_entry = None
    for step in history:
        actions = seen.setdefault(step.entry_id, [])
        if step.action == "entered":
            assert not actions  # one entry per entry id
            assert open_entry is None  # the previous stage was completed first
            assert names.index(step.stage) > last_position  # only forward
            last_position = names.index(step.stage)
            open_entry = step.entry_id
        else:
            assert actions and actions[0] == "entered"
            assert step.action not in actions  # completed once, overdue once
            assert "completed" not in actions  # nothing after completion
            if step.action == "completed":
                open_entry = None
        actions.append(step.action)

    events = [e for _, e in store.events_after(0) if e.account_id == account_id]
    assert [(e.name, e.properties["entry_id"]) for e in events] == [
        (s.event_name, s.entry_id) for s in history
    ]
    entered = set()
    overdue = set()
    for event in events:
        entry = event.properties["entry_id"]
        if event.name == "stage_entered":
            entered.add(entry)
        elif event.name == "stage_completed":
            assert entry in entered  # follows a stage_entered of the same entry
        else:
            assert entry in entered and entry not in overdue
            overdue.add(entry)
