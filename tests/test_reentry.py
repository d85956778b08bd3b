"""Re-entry rules: once, once per stage entry, at most once per period, end to end."""

import itertools
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onetomany.engine import Engine
from onetomany.errors import ConfigErrors
from onetomany.model.clock import FrozenClock
from onetomany.program import Audience, EventTrigger, Reentry, Touch, load_program
from onetomany.rules.journeys import Journey, Stage
from onetomany.store import schema
from onetomany.testing import RecordingChannel, make_plugins

from .conftest import PEOPLE, make_program
from .test_program import GOOD, _folder

ONBOARDING = Journey(
    name="onboarding",
    stages=(
        Stage(name="setup", entry='exists(last("signed_up"))', complete='count("done") >= 1'),
        Stage(name="value", complete='count("done") >= 1'),
    ),
)


def _engine(tmp_path, store, clock, reentry, *, every=False):
    touch = Touch(
        name="nudge",
        trigger=EventTrigger(event="used"),
        channel="email",
        template="welcome",
        audience=Audience(roles=("admin", "sponsor"), every=every),
        reentry=reentry,
    )
    program = make_program(tmp_path, touch)
    program = type(program)(
        **{**{f: getattr(program, f) for f in _FIELDS}, "journeys": {"onboarding": ONBOARDING}}
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


_FIELDS = (
    "name",
    "touches",
    "channels",
    "templates_dir",
    "sender",
    "base_dir",
)


def _keys(engine):
    return sorted(r.idempotency_key for r in engine.store.outbox_rows())


def test_the_default_sends_once_per_occurrence(tmp_path, store, frozen_clock):
    with _engine(tmp_path, store, frozen_clock, Reentry()) as engine:
        engine.track("used", account_id="a1", id="u1")
        engine.track("used", account_id="a1", id="u2")
        assert engine.tick() == 2
        assert _keys(engine) == ["acme:nudge:c1:u1", "acme:nudge:c1:u2"]


def test_once_sends_once_ever(tmp_path, store, frozen_clock):
    with _engine(tmp_path, store, frozen_clock, Reentry(kind="once")) as engine:
        engine.track("used", account_id="a1", id="u1")
        assert engine.tick() == 1
        frozen_clock.advance(days=400)
        engine.track("used", account_id="a1", id="u2")
        engine.track("used", account_id="a2", id="u3")
        assert engine.tick() == 1  # only a2's first
        assert _keys(engine) == ["acme:nudge:c1:once", "acme:nudge:c3:once"]


def _enter(store, account_id, stage, entry_id, at):
    t = schema.journey_states
    row = {"stage": stage, "entry_id": entry_id, "entered_at": at}
    with store.write() as conn:
        updated = conn.execute(
            sa.update(t)
            .where(t.c.journey == "onboarding", t.c.account_id == account_id)
            .values(**row)
        )
        if not updated.rowcount:
            conn.execute(sa.insert(t).values(journey="onboarding", account_id=account_id, **row))


def test_once_per_stage_entry(tmp_path, store, frozen_clock):
    rule = Reentry(kind="stage", journey="onboarding")
    with _engine(tmp_path, store, frozen_clock, rule) as engine:
        engine.track("used", account_id="a1", id="u0")
        assert engine.tick() == 0  # not in the journey: no stage entry to key it by
        _enter(store, "a1", "setup", "e1", frozen_clock.now())
        engine.track("used", account_id="a1", id="u1")
        engine.track("used", account_id="a1", id="u2")
        assert engine.tick() == 1
        frozen_clock.advance(days=3)
        engine.track("used", account_id="a1", id="u3")
        assert engine.tick() == 0  # still the same entry into setup
        _enter(store, "a1", "value", "e2", frozen_clock.now())
        engine.track("used", account_id="a1", id="u4")
        assert engine.tick() == 1
        _enter(store, "a1", "setup", "e3", frozen_clock.now())  # back into setup: a new entry
        engine.track("used", account_id="a1", id="u5")
        assert engine.tick() == 1
        assert _keys(engine) == [f"acme:nudge:c1:stage-e{n}" for n in (1, 2, 3)]


def test_at_most_once_per_period(tmp_path, store, frozen_clock):
    with _engine(tmp_path, store, frozen_clock, Reentry(kind="period", days=30)) as engine:
        engine.track("used", account_id="a1", id="u1")
        engine.track("used", account_id="a1", id="u2")  # the same batch
        assert engine.tick() == 1
        frozen_clock.advance(days=29, hours=23)
        engine.track("used", account_id="a1", id="u3")
        assert engine.tick() == 0
        frozen_clock.advance(hours=1)
        engine.track("used", account_id="a1", id="u4")
        assert engine.tick() == 1
        assert _keys(engine) == ["acme:nudge:c1:u1", "acme:nudge:c1:u4"]


def test_a_period_is_per_contact(tmp_path, store, frozen_clock):
    rule = Reentry(kind="period", days=7)
    with _engine(tmp_path, store, frozen_clock, rule, every=True) as engine:
        engine.track("used", account_id="a1", id="u1")
        engine.track("used", account_id="a2", id="u2")
        assert engine.tick() == 2  # Nancy (a1's admin) and Janet (a2's sponsor)


# -- the rules hold for every history ----------------------------------------------------------

_histories = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=120 * 24),  # hours after the start
        st.sampled_from(["a1", "a2"]),
        st.booleans(),  # tick right after tracking, or let events pile up
    ),
    max_size=25,
)


def _replay(engine, clock, history):
    start = clock.now()
    for n, (hours, account, tick) in enumerate(sorted(history)):
        clock.set(start + timedelta(hours=hours))
        engine.track("used", account_id=account, id=f"u{n}")
        if tick:
            engine.tick()
    engine.tick()


def _reset(store):
    with store.write() as conn:
        for table in (schema.outbox, schema.events, schema.cursors):
            conn.execute(sa.delete(table))


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(history=_histories, days=st.integers(min_value=1, max_value=40))
def test_per_days_never_queues_twice_within_the_period(tmp_path, store, history, days):
    _reset(store)
    clock = FrozenClock(datetime(2026, 1, 5, tzinfo=UTC))
    with _engine(tmp_path, store, clock, Reentry(kind="period", days=days)) as engine:
        _replay(engine, clock, history)
        times: dict[str | None, list[datetime]] = {}
        for row in engine.store.outbox_rows():
            times.setdefault(row.contact_id, []).append(row.available_at)
        for sent in times.values():
            sent.sort()
            assert all(b - a >= timedelta(days=days) for a, b in itertools.pairwise(sent))
        assert set(times) <= {"c1", "c3"}
        if history:  # the first use of each account always gets through
            assert len(times) == len({account for _, account, _ in history})


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(history=_histories)
def test_once_never_queues_twice(tmp_path, store, history):
    _reset(store)
    clock = FrozenClock(datetime(2026, 1, 5, tzinfo=UTC))
    with _engine(tmp_path, store, clock, Reentry(kind="once")) as engine:
        _replay(engine, clock, history)
        contacts = [r.contact_id for r in engine.store.outbox_rows()]
        assert sorted(contacts) == sorted(
            {"a1": "c1", "a2": "c3"}[a] for a in {h[1] for h in history}
        )


# -- program.toml ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ('"once"', Reentry(kind="once")),
        ('"occurrence"', Reentry()),
        ("{ per_days = 30 }", Reentry(kind="period", days=30)),
    ],
)
def test_reentry_rules_load_from_toml(tmp_path, monkeypatch, toml, expected):
    monkeypatch.setenv("ACME_SMTP_PASSWORD", "x")
    text = GOOD.replace('template = "welcome"', f'template = "welcome"\nreentry = {toml}')
    [touch] = load_program(_folder(tmp_path, text)).touches
    assert touch.reentry == expected


def test_a_stage_rule_loads_with_its_journey(tmp_path, monkeypatch):
    monkeypatch.setenv("ACME_SMTP_PASSWORD", "x")
    text = GOOD.replace(
        'template = "welcome"',
        'template = "welcome"\nreentry = { per = "stage", journey = "onboarding" }',
    )
    text += """
[[journeys.onboarding.stages]]
name = "setup"
entry = 'exists(last("signed_up"))'
complete = 'count("integration_connected") >= 1'
"""
    [touch] = load_program(_folder(tmp_path, text)).touches
    assert touch.reentry == Reentry(kind="stage", journey="onboarding")


BAD_RULES = {
    "twice": ('"twice"', "reentry", "expected"),
    "nojourney": ('{ per = "stage" }', "reentry", "expected"),
    "zero": ("{ per_days = 0 }", "reentry", "expected"),
    "boolean": ("{ per_days = true }", "reentry", "expected"),
    "mixed": ('{ per_days = 3, per = "stage" }', "reentry", "expected"),
}


def test_every_bad_reentry_rule_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("ACME_SMTP_PASSWORD", "x")
    touches = "".join(
        f"""
[touches.{name}]
trigger = {{ event = "used" }}
channel = "email"
template = "welcome"
reentry = {rule}
"""
        for name, (rule, _, _) in BAD_RULES.items()
    )
    with pytest.raises(ConfigErrors) as info:
        load_program(_folder(tmp_path, GOOD + touches))
    found = {e.key: e.reason for e in info.value.errors}
    assert set(found) == {f"touches.{n}.{key}" for n, (_, key, _) in BAD_RULES.items()}
    for name, (_, key, reason) in BAD_RULES.items():
        assert reason in found[f"touches.{name}.{key}"]


def test_a_stage_rule_naming_an_unknown_journey_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("ACME_SMTP_PASSWORD", "x")
    text = GOOD.replace(
        'template = "welcome"', 'template = "welcome"\nreentry = { per = "stage", journey = "x" }'
    )
    with pytest.raises(ConfigErrors) as info:
        load_program(_folder(tmp_path, text))
    [error] = info.value.errors
    assert error.key == "touches.welcome.reentry.journey"
    assert "unknown journey 'x'" in error.reason
