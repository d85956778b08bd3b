"""Health scores: read from program.toml with errors named by key, scored against a table
worked out by hand, kept as history one per account and day, and read by ``health()`` and
``health_trend(N)`` in segments (both evaluators) and by a tier's ``health`` minimum."""

from __future__ import annotations

from datetime import timedelta

import attrs
import pytest

from onetomany import Account, Contact
from onetomany.engine import Engine
from onetomany.errors import ConfigErrors
from onetomany.metrics.events import NPS_ANSWERED
from onetomany.metrics.health import health_summary
from onetomany.program import load_program
from onetomany.rules.health import HealthSettings, Measure
from onetomany.rules.segments import SegmentSet, evaluate
from onetomany.store.profiles import load_profiles
from onetomany.store.segments import matching_contact_ids
from onetomany.testing import FrozenClock, RecordingChannel, make_plugins

from .conftest import WELCOME, write_templates

TOML = """\
[program]
name = "acme"
[channels.email]
plugin = "outbox"
folder = "out"
[segments]
healthy = "health() >= 70"
falling = "health_trend(1) <= -10"
[tiers.mid]
health = 60
[health.measures.usage]
value = "account.active_users / account.seats"
weight = 40
good = 0.8
bad = 0.2
[health.measures.login]
value = 'days_since(last("login"))'
weight = 30
good = 2
bad = 32
[health.measures.tickets]
value = "account.open_tickets"
weight = 20
good = 0
bad = 4
[health.measures.nps]
nps_days = 180
weight = 10
good = 50
bad = -50
"""


def _folder(tmp_path, toml=TOML):
    (tmp_path / "program.toml").write_text(toml)
    write_templates(tmp_path / "templates", welcome=WELCOME)
    return tmp_path


def test_points_are_linear_between_bad_and_good_either_way_round():
    usage = Measure(name="u", weight=1, good=0.8, bad=0.2, value="1")
    assert [usage.points(v) for v in (0.0, 0.2, 0.5, 0.8, 2.0)] == pytest.approx(
        [0, 0, 50, 100, 100]
    )
    tickets = Measure(name="t", weight=1, good=0, bad=4, value="1")
    assert [tickets.points(v) for v in (0, 1, 4, 9)] == [100, 75, 0, 0]
    settings = HealthSettings(measures=(usage, attrs_evolve(tickets, weight=3)))
    score, details = settings.score({"u": 0.6, "t": 1}) or (None, None)
    assert score == pytest.approx((200 / 3 * 1 + 75 * 3) / 4)
    assert details["t"] == {"value": 1, "points": 75.0}
    # A measure without a value is left out and the others' weights count alone.
    assert settings.score({"u": None, "t": 1}) == (
        75.0,
        {"u": {"value": None, "points": None}, "t": {"value": 1, "points": 75.0}},
    )
    assert settings.score({}) is None


def attrs_evolve(measure: Measure, **changes: object) -> Measure:
    return attrs.evolve(measure, **changes)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("old", "new", "key", "reason"),
    [
        ("weight = 40", "weight = 0", "health.measures.usage.weight", "above 0"),
        ("weight = 40", 'weight = "high"', "health.measures.usage.weight", "a number"),
        ("good = 0.8", "good = 0.2", "health.measures.usage.good", "no range"),
        ("nps_days = 180", "nps_days = 0", "health.measures.nps.nps_days", "days >= 1"),
        ("nps_days = 180", 'nps_days = 180\nvalue = "1"', "health.measures.nps", "either"),
        (
            'value = "account.active_users / account.seats"',
            'value = "account.active_users /"',
            "health.measures.usage.value",
            "",
        ),
        ("weight = 30", "weight = 30\nthreshold = 3", "health.measures.login.threshold", "unknown"),
    ],
)
def test_a_wrong_measure_is_named_with_its_file_and_key(tmp_path, old, new, key, reason):
    with pytest.raises(ConfigErrors) as caught:
        load_program(_folder(tmp_path, TOML.replace(old, new, 1)))
    [error] = caught.value.errors
    assert error.key == key and reason in error.reason
    assert error.file.endswith("program.toml")


def _engine(tmp_path, store, clock):
    program = load_program(_folder(tmp_path))
    engine = Engine(
        program,
        store=store,
        clock=clock,
        plugins=make_plugins(),
        channels={"email": RecordingChannel()},
    )
    engine.identify(
        # a1: usage 0.5 -> 50; login 2 days ago -> 100; 1 ticket -> 75; NPS 100 -> 100.
        Account(id="a1", name="A", traits={"active_users": 5, "seats": 10, "open_tickets": 1}),
        # a2: usage 0.9 -> 100; no login, no NPS: left out; 6 tickets -> 0.
        Account(id="a2", name="B", traits={"active_users": 9, "seats": 10, "open_tickets": 6}),
        # a3: nothing to measure: no score.
        Account(id="a3", name="C"),
        Contact(id="c1", account_id="a1", email="c1@x.test"),
        Contact(id="c2", account_id="a2", email="c2@x.test"),
        Contact(id="c3", account_id="a3", email="c3@x.test"),
    )
    now = clock.now()
    engine.track("login", account_id="a1", contact_id="c1", occurred_at=now - timedelta(days=2))
    engine.track(NPS_ANSWERED, account_id="a1", contact_id="c1", properties={"score": 10})
    return engine


def test_scores_match_a_table_worked_out_by_hand_and_are_kept_per_day(tmp_path, store):
    clock = FrozenClock()
    with _engine(tmp_path, store, clock) as engine:
        scores = engine.update_health()
        a1 = (50 * 40 + 100 * 30 + 75 * 20 + 100 * 10) / 100
        a2 = (100 * 40 + 0 * 20) / 60
        assert scores == pytest.approx({"a1": a1, "a2": a2})
        [kept] = engine.health("a1")
        assert kept.score == pytest.approx(a1)
        assert kept.measures["login"] == {"value": 2.0, "points": 100.0}
        # Later the same day: the day's score is replaced, not added.
        clock.advance(hours=3)
        engine.update_health()
        assert len(engine.health("a1")) == 1
        # The next day a2's tickets rise to 10 (no change: already 0 points) and its usage
        # falls to 0.5: a second score, and a falling trend.
        clock.advance(days=1)
        engine.identify(
            Account(id="a2", name="B", traits={"active_users": 5, "seats": 10, "open_tickets": 10})
        )
        engine.update_health()
        history = engine.health("a2")
        assert [round(h.score, 3) for h in history] == [round(a2, 3), round(50 * 40 / 60, 3)]
        summary = health_summary(engine.store, now=clock.now())
        assert summary.accounts == 2 and sum(summary.bands) == 2
        assert len(summary.trend) == 2


def test_health_in_segments_agrees_in_sql_and_python_and_serves_tiers(tmp_path, store):
    clock = FrozenClock()
    with _engine(tmp_path, store, clock) as engine:
        engine.update_health()
        clock.advance(days=1)
        engine.identify(
            Account(id="a2", name="B", traits={"active_users": 5, "seats": 10, "open_tickets": 6})
        )
        engine.update_health()
        now = clock.now()
        segments = SegmentSet(engine.program.segments)
        profiles = load_profiles(engine.store)
        for name, expected in (("healthy", {"c1"}), ("falling", {"c2"})):
            expr = segments.expr(name)
            assert set(matching_contact_ids(engine.store, expr, now=now)) == expected, name
            in_python = {c for c, p in profiles.items() if evaluate(expr, p, now=now)}
            assert in_python == expected, name
        # The tier rule's health minimum (60): a1 scores 75, a2 33.3.
        engine.update_tiers()
        tiers = {a: str(state.tier) for a, state in engine.store.tier_states().items()}
        assert tiers["a1"] == "mid" and tiers["a2"] == "tech"
