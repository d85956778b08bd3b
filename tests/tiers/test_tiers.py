"""Tier rules, hysteresis over time, and reading [tiers] from TOML."""

from __future__ import annotations

import itertools
import math
import tomllib
from datetime import UTC, datetime, timedelta

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onetomany import Account
from onetomany.errors import InvalidAccountError
from onetomany.rules.tiers import (
    TIERS,
    Match,
    Tier,
    TierChange,
    TierPolicy,
    TierRule,
    TierRules,
    TierState,
    TierTracker,
    shadowed_criteria,
)
from onetomany.rules.tiers_toml import TierConfigWarning, read_tiers

T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
TECH, LOW, MID, HIGH = Tier.TECH, Tier.LOW, Tier.MID, Tier.HIGH


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


def rules(match: str = "any", *, high_match: str | None = None) -> TierRules:
    return TierRules(
        match=match,
        rules=[
            TierRule(tier=HIGH, mrr=5000, plans=["enterprise"], match=high_match),
            TierRule(tier=MID, mrr=1000, seats=50),
            TierRule(tier=LOW, mrr=200),
        ],
    )


# -- the Tier enum ----------------------------------------------------------------------------


def test_tiers_are_ordered_by_touch_level_not_alphabetically():
    assert TECH < LOW < MID < HIGH
    assert sorted([HIGH, TECH, MID, LOW]) == [TECH, LOW, MID, HIGH]
    assert max(LOW, HIGH, MID) is HIGH
    assert [t.rank for t in TIERS] == [0, 1, 2, 3]
    # alphabetically "high" < "low"; against a tier name the tier order wins
    assert HIGH > "low"
    assert "low" < HIGH  # noqa: SIM300 - the reflected comparison is the point
    assert LOW <= "low"


def test_tiers_store_and_compare_as_their_names():
    assert HIGH == "high"
    assert Tier("mid") is MID
    assert f"{TECH}" == "tech"


def test_ordering_against_an_unknown_name_is_a_type_error():
    with pytest.raises(TypeError, match="cannot order a tier"):
        _ = HIGH < "platinum"
    with pytest.raises(TypeError):
        _ = HIGH < 3  # type: ignore[operator]


# -- assignment -------------------------------------------------------------------------------

ANY_CASES = [
    ({}, TECH, "no traits at all"),
    ({"mrr": 5000}, HIGH, "mrr threshold is inclusive"),
    ({"mrr": 4999.99}, MID, "just below high falls to mid by mrr"),
    ({"plan": "enterprise"}, HIGH, "plan alone qualifies under any"),
    ({"plan": "enterprise", "mrr": 10}, HIGH, "one criterion is enough"),
    ({"seats": 50}, MID, "seats alone qualify for mid"),
    ({"seats": 49, "mrr": 199}, TECH, "all below every threshold"),
    ({"mrr": 200}, LOW, "low's boundary"),
    ({"mrr": "6000"}, TECH, "text is not a number"),
    ({"mrr": True}, TECH, "a boolean is not a number"),
    ({"mrr": None}, TECH, "null is missing"),
    ({"plan": ["enterprise"]}, TECH, "a list is not a plan"),
    ({"plan": "Enterprise"}, TECH, "plans match exactly"),
    ({"size": 10_000}, TECH, "no tier asks for size"),
]


@pytest.mark.parametrize(("traits", "expected", "why"), ANY_CASES, ids=[c[2] for c in ANY_CASES])
def test_assign_with_any(traits, expected, why):
    assert rules("any").assign(Account(id="a", traits=traits)) is expected, why


@pytest.mark.parametrize("mrr", [math.nan, math.inf, 10**400], ids=["nan", "infinity", "huge"])
def test_numbers_no_tier_could_compare_never_reach_an_account(mrr):
    # Tier rules compare MRR as a double; such values are refused where they come in.
    with pytest.raises(InvalidAccountError, match="traits"):
        Account(id="a", traits={"mrr": mrr})


ALL_CASES = [
    ({"mrr": 5000}, LOW, "high also needs the plan, mid also needs seats"),
    ({"mrr": 5000, "plan": "enterprise"}, HIGH, "both of high's criteria"),
    ({"mrr": 5000, "seats": 50}, MID, "both of mid's criteria"),
    ({"mrr": 1000}, LOW, "mid without seats"),
    ({"seats": 100, "plan": "enterprise"}, TECH, "a missing mrr fails every tier"),
    ({}, TECH, "nothing"),
]


@pytest.mark.parametrize(("traits", "expected", "why"), ALL_CASES, ids=[c[2] for c in ALL_CASES])
def test_assign_with_all(traits, expected, why):
    assert rules("all").assign(Account(id="a", traits=traits)) is expected, why


def test_a_tier_can_override_the_default_match():
    mixed = rules("any", high_match="all")
    assert mixed.assign(Account(id="a", traits={"plan": "enterprise"})) is TECH
    assert mixed.assign(Account(id="a", traits={"plan": "enterprise", "mrr": 5000})) is HIGH
    assert mixed.assign(Account(id="a", traits={"mrr": 6000})) is MID  # mid is still "any"


@pytest.mark.parametrize("match", ["any", "all"])
def test_a_rule_without_criteria_never_assigns(match):
    empty = TierRules(match=match, rules=[TierRule(tier=HIGH)])
    assert empty.assign(Account(id="a", traits={"mrr": 10**6})) is TECH


def test_the_highest_tier_met_wins_whatever_the_order_given():
    shuffled = TierRules(rules=[TierRule(tier=LOW, mrr=1), TierRule(tier=HIGH, mrr=1)])
    assert shuffled.assign(Account(id="a", traits={"mrr": 5})) is HIGH
    assert [r.tier for r in shuffled.rules] == [HIGH, LOW]


def test_explain_says_which_criteria_are_met():
    lines = rules().explain(Account(id="a", traits={"mrr": 1500, "plan": "pro"}))
    assert lines == [
        "high (any): mrr no, plan no",
        "mid (any): mrr yes, seats no",
        "low (any): mrr yes",
    ]


def test_rule_values_are_checked():
    with pytest.raises(ValueError, match="tech is the floor"):
        TierRule(tier=TECH, mrr=0)
    with pytest.raises(ValueError, match="number >= 0"):
        TierRule(tier=HIGH, mrr=-1)
    with pytest.raises(TypeError, match="collection of plan names"):
        TierRule(tier=HIGH, plans="enterprise")
    with pytest.raises(ValueError, match="two rules"):
        TierRules(rules=[TierRule(tier=HIGH, mrr=1), TierRule(tier=HIGH, mrr=2)])
    with pytest.raises(ValueError, match="'some'"):
        TierRules(match="some")


def test_values_are_frozen():
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        rules().match = Match.ALL  # type: ignore[misc]


# -- hysteresis -------------------------------------------------------------------------------


def run(
    observations: list[tuple[float, Tier]], *, hold_days: int = 14, start: Tier | None = None
) -> tuple[TierState, list[TierChange]]:
    """Feed (day, computed tier) observations through a tracker; collect the changes."""
    tracker = TierTracker(policy=TierPolicy(hold_days=hold_days))
    state = None if start is None else TierState(tier=start, since=day(0))
    changes = []
    for when, computed in observations:
        state, change = tracker.observe(state, "acme", computed, day(when))
        if change is not None:
            changes.append(change)
    assert state is not None
    return state, changes


def daily(first: int, last: int, tier: Tier) -> list[tuple[float, Tier]]:
    return [(n, tier) for n in range(first, last + 1)]


def test_a_new_account_gets_its_computed_tier_at_once():
    state, changes = run([(0, MID)])
    assert state == TierState(tier=MID, since=day(0))
    assert changes == [TierChange(account_id="acme", from_tier=None, to_tier=MID, at=day(0))]


def test_downgrade_after_hold_days_of_a_lower_tier():
    state, changes = run(daily(1, 20, MID), start=HIGH)
    assert changes == [TierChange(account_id="acme", from_tier=HIGH, to_tier=MID, at=day(15))]
    assert state == TierState(tier=MID, since=day(15))


def test_upgrade_after_hold_days_of_a_higher_tier():
    _, changes = run(daily(1, 20, HIGH), start=LOW)
    assert [(c.from_tier, c.to_tier, c.at) for c in changes] == [(LOW, HIGH, day(15))]


def test_the_boundary_is_exactly_hold_days():
    hold = timedelta(days=14)
    tracker = TierTracker()
    state = TierState(tier=HIGH, since=day(0))
    state, change = tracker.observe(state, "acme", MID, day(3))
    assert change is None
    assert state.candidate is MID
    assert state.candidate_since == day(3)
    just_before, change = tracker.observe(state, "acme", MID, day(3) + hold - timedelta(seconds=1))
    assert change is None
    assert just_before.candidate_since == day(3)  # the clock keeps running, not restarted
    _, change = tracker.observe(just_before, "acme", MID, day(3) + hold)
    assert change is not None
    assert change.at == day(3) + hold


def test_a_brief_dip_resets_the_clock():
    # mid for days 1-10, back at high on day 11, mid again from day 12
    timeline = [*daily(1, 10, MID), (11, HIGH), *daily(12, 30, MID)]
    state, changes = run(timeline, start=HIGH)
    assert [(c.to_tier, c.at) for c in changes] == [(MID, day(26))]
    assert state.tier is MID


def test_a_dip_shorter_than_hold_days_changes_nothing():
    state, changes = run([*daily(1, 13, LOW), *daily(14, 40, HIGH)], start=HIGH)
    assert changes == []
    assert state == TierState(tier=HIGH, since=day(0))


def test_moves_to_the_latest_tier_on_the_same_side():
    # below high the whole time: mid for a week, then low; the move lands on low
    _, changes = run([*daily(1, 7, MID), *daily(8, 20, LOW)], start=HIGH)
    assert [(c.from_tier, c.to_tier, c.at) for c in changes] == [(HIGH, LOW, day(15))]


def test_crossing_to_the_other_side_restarts_the_clock():
    # above mid for a week, then below it: a bounce around mid, not a sustained move
    _, changes = run([*daily(1, 7, HIGH), *daily(8, 30, LOW)], start=MID)
    assert [(c.from_tier, c.to_tier, c.at) for c in changes] == [(MID, LOW, day(22))]


def test_after_a_change_the_next_one_waits_hold_days_again():
    _, changes = run([*daily(1, 15, MID), *daily(16, 40, LOW)], start=HIGH)
    assert [(c.to_tier, c.at) for c in changes] == [(MID, day(15)), (LOW, day(30))]


def test_hold_days_zero_follows_every_observation():
    _, changes = run([(1, MID), (2, HIGH), (3, HIGH)], hold_days=0, start=HIGH)
    assert [(c.to_tier, c.at) for c in changes] == [(MID, day(1)), (HIGH, day(2))]


def test_step_computes_the_tier_from_the_account():
    tracker = TierTracker(rules=rules(), policy=TierPolicy(hold_days=14))
    state, change = tracker.step(None, Account(id="acme", traits={"mrr": 6000}), day(0))
    assert change == TierChange(account_id="acme", from_tier=None, to_tier=HIGH, at=day(0))
    shrunk = Account(id="acme", traits={"mrr": 300})
    for n in range(1, 14):
        state, change = tracker.step(state, shrunk, day(n))
        assert change is None
    state, change = tracker.step(state, shrunk, day(15))
    assert change == TierChange(account_id="acme", from_tier=HIGH, to_tier=LOW, at=day(15))


def test_time_must_be_aware_and_must_not_go_backwards():
    tracker = TierTracker()
    with pytest.raises(ValueError, match="no timezone"):
        tracker.observe(None, "acme", LOW, datetime(2026, 1, 1))
    state = TierState(tier=HIGH, since=day(5))
    with pytest.raises(ValueError, match="earlier than"):
        tracker.observe(state, "acme", LOW, day(4))


def test_state_invariants_are_checked():
    with pytest.raises(ValueError, match="together"):
        TierState(tier=HIGH, since=day(0), candidate=MID)
    with pytest.raises(ValueError, match="must differ"):
        TierState(tier=HIGH, since=day(0), candidate=HIGH, candidate_since=day(1))
    with pytest.raises(ValueError, match="no timezone"):
        TierState(tier=HIGH, since=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="whole number"):
        TierPolicy(hold_days=-1)


# Runs of one tier (rather than independent days) so that stable stretches, dips and
# bounces around the current tier all show up often.
RUNS = st.lists(
    st.tuples(st.sampled_from(TIERS), st.integers(min_value=1, max_value=25)),
    min_size=1,
    max_size=12,
).map(lambda runs: [tier for tier, length in runs for _ in range(length)])


@settings(max_examples=400, deadline=None)
@given(computed=RUNS, hold_days=st.integers(min_value=0, max_value=20))
def test_property_one_change_per_hold_days_and_stable_tiers_are_adopted(computed, hold_days):
    tracker = TierTracker(policy=TierPolicy(hold_days=hold_days))
    state: TierState | None = None
    changes: list[TierChange] = []
    current: list[Tier] = []  # the tier served after each day's observation
    for n, tier in enumerate(computed):
        state, change = tracker.observe(state, "acme", tier, day(n))
        if change is not None:
            changes.append(change)
        current.append(state.tier)

    # never two changes within hold_days of each other
    for before, after in itertools.pairwise(changes):
        assert after.at - before.at >= timedelta(days=hold_days)
    # every change lands on the tier computed that day, after hold_days of differing ones
    for change in changes[1:]:
        n = (change.at - T0).days
        assert computed[n] is change.to_tier
        assert all(computed[k] is not change.from_tier for k in range(n - hold_days, n + 1))
    # a computed tier that holds for hold_days (hold_days + 1 daily readings) is served
    for n in range(hold_days, len(computed)):
        window = computed[n - hold_days : n + 1]
        if len(set(window)) == 1:
            assert current[n] is window[0], (n, window)


# -- [tiers] from TOML ------------------------------------------------------------------------

EXAMPLE = """
[tiers]
hold_days = 14
match = "any"
[tiers.high]
mrr = 5000
plan = ["enterprise"]
hours_per_month = 8
[tiers.mid]
mrr = 1000
seats = 50
hours_per_month = 2
match = "all"
[tiers.low]
mrr = 200
hours_per_month = 0.5
[tiers.tech]
hours_per_month = 0
"""


def test_reads_the_example():
    data = tomllib.loads(EXAMPLE)
    settings_, errors = read_tiers(data["tiers"], file="program.toml")
    assert errors == []
    assert settings_.warnings == ()
    assert settings_.policy == TierPolicy(hold_days=14)
    assert settings_.rules.match is Match.ANY
    assert settings_.rules.rule(HIGH) == TierRule(tier=HIGH, mrr=5000, plans=["enterprise"])
    assert settings_.rules.rule(MID) == TierRule(tier=MID, mrr=1000, seats=50, match="all")
    assert settings_.rules.rule(TECH) is None
    assert settings_.tracker.policy.hold_days == 14
    # hours on the tiers are enough for a plan with the default CSM figures
    assert settings_.capacity is not None
    assert settings_.capacity.hours(HIGH) == 8
    assert settings_.capacity.csm_hours_per_month == 160


def test_no_tiers_table_means_defaults():
    settings_, errors = read_tiers(None, file="program.toml")
    assert errors == []
    assert settings_.rules == TierRules()
    assert settings_.policy.hold_days == 14
    assert settings_.capacity is None


def test_every_problem_is_reported_at_once_with_its_key():
    data = tomllib.loads(
        """
[tiers]
hold_days = 1.5
match = "some"
colour = "blue"
[tiers.platinum]
mrr = 1
[tiers.high]
mrr = "lots"
seats = -3
size = true
plan = "enterprise"
speed = 3
[tiers.mid]
plan = []
match = 1
[tiers.low]
plan = ["pro", 3]
[tiers.tech]
mrr = 0
"""
    )
    settings_, errors = read_tiers(data["tiers"], file="program.toml")
    assert all(e.file == "program.toml" for e in errors)
    reasons = {e.key: e.reason for e in errors}
    assert reasons == {
        "tiers.hold_days": "expected a whole number >= 0, got 1.5",
        "tiers.match": 'expected "any" or "all", got "some"',
        "tiers.colour": "unknown key (known: hold_days, match, tech, low, mid, high)",
        "tiers.platinum": 'unknown tier "platinum" (tiers: tech, low, mid, high)',
        "tiers.high.mrr": 'expected a number >= 0, got "lots"',
        "tiers.high.seats": "expected a number >= 0, got -3",
        "tiers.high.size": "expected a number >= 0, got true",
        "tiers.high.plan": 'expected a list of plan names, e.g. plan = ["enterprise"]',
        "tiers.high.speed": (
            "unknown key (known: mrr, seats, size, health, plan, match, hours_per_month, "
            "meetings_per_month, meetings_per_week, hours_per_meeting)"
        ),
        "tiers.mid.plan": "expected at least one plan name; remove the key to not use plans",
        "tiers.mid.match": 'expected "any" or "all", got 1',
        "tiers.low.plan": 'expected a list of plan names, got ["pro", 3]',
        "tiers.tech.mrr": (
            "tech is the floor: accounts that meet no other tier get it, so it takes no "
            "criteria (known: hours_per_month, meetings_per_month, meetings_per_week, "
            "hours_per_meeting)"
        ),
    }
    assert len(errors) == len(reasons)  # one error per key, nothing reported twice
    mrr = next(e for e in errors if e.key == "tiers.high.mrr")
    assert str(mrr) == 'program.toml: tiers.high.mrr: expected a number >= 0, got "lots"'
    assert settings_.rules.rules == ()  # no half-read rule slips through


def test_a_tiers_value_that_is_not_a_table():
    _, errors = read_tiers(3, file="p.toml")  # type: ignore[arg-type]
    assert [(e.key, e.reason) for e in errors] == [("tiers", "expected a table, got 3")]
    _, errors = read_tiers({"high": 5}, file="p.toml")
    assert [(e.key, e.reason) for e in errors] == [("tiers.high", "expected a table, got 5")]


def test_shadowed_thresholds_are_warnings_not_errors():
    data = tomllib.loads(
        """
[tiers.high]
mrr = 5000
plan = ["enterprise"]
[tiers.mid]
mrr = 6000
plan = ["enterprise", "pro"]
[tiers.low]
match = "all"
mrr = 5000
seats = 10
"""
    )
    settings_, errors = read_tiers(data["tiers"], file="p.toml")
    assert errors == []
    assert all(isinstance(w, TierConfigWarning) for w in settings_.warnings)
    assert [(w.key, w.reason) for w in settings_.warnings] == [
        (
            "tiers.low.mrr",
            "mrr >= 5000 is not below high's mrr >= 5000: every account meeting it is high "
            "first, so low (match = all) is never assigned",
        ),
        (
            "tiers.mid.mrr",
            "mrr >= 6000 is not below high's mrr >= 5000: every account meeting it is high "
            "first, so it never decides",
        ),
        (
            "tiers.mid.plan",
            'plan "enterprise" is also listed by high: every account meeting it is high '
            "first, so it never decides",
        ),
    ]


def test_a_higher_tier_matching_all_shadows_nothing():
    layered = TierRules(
        rules=[
            TierRule(tier=HIGH, mrr=5000, plans=["enterprise"], match="all"),
            TierRule(tier=MID, mrr=6000, seats=50, match="all"),
        ]
    )
    assert shadowed_criteria(layered) == []
    # a single criterion means the same under "all" and "any"
    single = TierRules(
        match="all", rules=[TierRule(tier=HIGH, mrr=5000), TierRule(tier=MID, mrr=7000)]
    )
    assert [(t, name) for t, name, _ in shadowed_criteria(single)] == [(MID, "mrr")]
