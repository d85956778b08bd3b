"""The CSM capacity planner, and reading [capacity] from TOML."""

from __future__ import annotations

import math
import re
import tomllib
from pathlib import Path

import pytest

from onetomany.rules.capacity import (
    CSM_HOURS_PER_MONTH,
    DEFAULT_NEW_ACCOUNT_TIER,
    WEEKS_PER_MONTH,
    CapacityInputs,
    TierCost,
    capacity_from_counts,
    render_plan,
)
from onetomany.rules.tiers import Tier
from onetomany.rules.tiers_toml import read_tiers

TECH, LOW, MID, HIGH = Tier.TECH, Tier.LOW, Tier.MID, Tier.HIGH

#: The domain: a weekly 1-hour meeting per account, 160 h a month, ten new customers a month.
DOMAIN = CapacityInputs(
    costs={HIGH: TierCost(meetings_per_week=1, hours_per_meeting=1)},
    new_accounts_per_month=10,
)


def test_the_domain_figures_40_accounts_per_csm_and_a_new_csm_every_4_months():
    plan = capacity_from_counts({HIGH: 40}, DOMAIN)
    assert plan.hours_per_account[HIGH] == 4
    assert plan.accounts_per_csm[HIGH] == 40
    assert plan.months_per_hire == 4
    lines = render_plan(plan)
    assert "high: 4 h a month per account (1 meeting a week x 1 h x 4 weeks a month)" in lines[1]
    assert lines[1].endswith("-> 40 accounts per CSM")
    assert any(line.endswith("one more CSM every 4 months") for line in lines)


def test_the_domain_plan_reads_in_full():
    assert render_plan(capacity_from_counts({HIGH: 40}, DOMAIN)) == [
        "Each CSM has 160 h a month for 1:1 work.",
        "high: 4 h a month per account (1 meeting a week x 1 h x 4 weeks a month)"
        " -> 40 accounts per CSM",
        "mid: 0 h a month per account -> no CSM time",
        "low: 0 h a month per account -> no CSM time",
        "tech: 0 h a month per account -> no CSM time",
        "Book now: 40 accounts (high 40) = 160 h a month -> 40 accounts per CSM at this mix",
        "CSMs needed now: 1 -> 1",
        "On staff: 1 (assumed: CSMs needed now, rounded up)",
        "Growth: 10 new accounts a month (all high) = 40 h a month more"
        " -> one more CSM every 4 months",
        "Next hire due: in 1 month",
    ]


def test_defaults_are_the_domains():
    assert WEEKS_PER_MONTH == 4
    assert CSM_HOURS_PER_MONTH == 160
    assert DEFAULT_NEW_ACCOUNT_TIER is HIGH
    assert CapacityInputs().new_account_mix == {HIGH: 1.0}


def test_calendar_weeks_give_the_4_33_hour_meeting():
    calendar = CapacityInputs(costs=DOMAIN.costs, weeks_per_month=52 / 12)
    plan = capacity_from_counts({}, calendar)
    assert plan.hours_per_account[HIGH] == pytest.approx(4.33, abs=0.01)
    assert plan.accounts_per_csm[HIGH] == pytest.approx(36.92, abs=0.01)
    assert "-> 36 accounts per CSM" in render_plan(plan)[1]  # whole accounts: floored
    assert "x 4.33 weeks a month" in render_plan(plan)[1]


def test_cost_forms():
    assert TierCost(hours_per_month=8).monthly_hours() == 8
    assert TierCost(meetings_per_month=1, hours_per_meeting=2).monthly_hours() == 2
    assert TierCost(meetings_per_week=2, hours_per_meeting=0.5).monthly_hours(4) == 4
    assert TierCost(meetings_per_month=3).basis() == "3 meetings a month x 1 h"
    assert TierCost(hours_per_month=8).basis() == ""
    with pytest.raises(ValueError, match="exactly one"):
        TierCost()
    with pytest.raises(ValueError, match=r"got hours_per_month, meetings_per_week"):
        TierCost(hours_per_month=8, meetings_per_week=1)
    with pytest.raises(ValueError, match=">= 0"):
        TierCost(hours_per_month=-1)
    with pytest.raises(TypeError, match="expected a number"):
        TierCost(hours_per_month="8")  # type: ignore[arg-type]


def test_csms_needed_fractional_and_rounded_up():
    inputs = CapacityInputs(
        costs={HIGH: TierCost(hours_per_month=8), MID: TierCost(hours_per_month=2)}
    )
    plan = capacity_from_counts({HIGH: 30, MID: 100, TECH: 5000}, inputs)  # 240 + 200 h
    assert plan.hours_now == 440
    assert plan.csms_needed == 2.75
    assert plan.csms_needed_rounded == 3
    assert plan.staff == 3
    assert plan.staff_assumed
    assert plan.accounts == 5130
    assert plan.mix_accounts_per_csm == pytest.approx(160 * 5130 / 440)


def test_float_noise_does_not_add_a_csm():
    # 0.1 h x 4800 accounts is 480.00000000000006 h in floating point: still 3 CSMs
    inputs = CapacityInputs(costs={LOW: TierCost(meetings_per_month=3, hours_per_meeting=0.1)})
    plan = capacity_from_counts({LOW: 1600}, inputs)
    assert plan.csms_needed == pytest.approx(3)
    assert plan.csms_needed_rounded == 3


@pytest.mark.parametrize(
    ("high_accounts", "csms", "due"),
    [
        (0, None, 1),  # no book, no staff: the first month's intake needs someone
        (40, None, 1),  # exactly full: the next batch does not fit
        (100, None, 3),  # 400 h of 480: 440 fits, 480 fits, 520 does not
        (100, 5, 11),  # 800 h of capacity: 400 + 11 x 40 = 840 > 800
        (100, 2, 0),  # 400 h > 320 h already: hire now
    ],
)
def test_next_hire(high_accounts, csms, due):
    inputs = CapacityInputs(costs=DOMAIN.costs, new_accounts_per_month=10, csms=csms)
    plan = capacity_from_counts({HIGH: high_accounts}, inputs)
    assert plan.next_hire_in_months == due


def test_staff_short_today_is_said():
    inputs = CapacityInputs(costs=DOMAIN.costs, new_accounts_per_month=10, csms=2)
    plan = capacity_from_counts({HIGH: 100}, inputs)
    assert plan.shortfall == 1
    lines = render_plan(plan)
    assert "On staff: 2 (1 short today)" in lines
    assert lines[-1] == "Next hire due: now; the book already needs more than the staff"


def test_zero_growth_means_no_hire_due():
    inputs = CapacityInputs(costs=DOMAIN.costs, new_accounts_per_month=0)
    plan = capacity_from_counts({HIGH: 20}, inputs)
    assert plan.months_per_hire is None
    assert plan.next_hire_in_months is None
    lines = render_plan(plan)
    assert lines[-2] == (
        "Growth: 0 new accounts a month (all high) = 0 h a month -> no more CSMs needed for growth"
    )
    assert lines[-1] == "Next hire due: none; the book does not outgrow the staff"


def test_growth_into_a_zero_hour_tier_needs_no_hire():
    inputs = CapacityInputs(costs=DOMAIN.costs, new_accounts_per_month=500, new_account_mix=TECH)
    plan = capacity_from_counts({HIGH: 20}, inputs)
    assert plan.growth_hours_per_month == 0
    assert plan.next_hire_in_months is None


def test_zero_hour_tiers_carry_unlimited_accounts():
    inputs = CapacityInputs(costs={TECH: TierCost(hours_per_month=0)})
    plan = capacity_from_counts({TECH: 10_000}, inputs)
    assert plan.accounts_per_csm[TECH] == math.inf
    assert plan.mix_accounts_per_csm == math.inf
    assert plan.csms_needed == 0
    assert plan.csms_needed_rounded == 0
    assert render_plan(plan)[5] == (
        "Book now: 10000 accounts (tech 10000) = 0 h a month"
        " -> unlimited accounts per CSM at this mix"
    )


def test_an_empty_book():
    plan = capacity_from_counts({}, DOMAIN)
    assert plan.accounts == 0
    assert plan.mix_accounts_per_csm is None
    assert plan.counts == {TECH: 0, LOW: 0, MID: 0, HIGH: 0}
    assert "Book now: no accounts." in render_plan(plan)


def test_a_mix_of_new_accounts_is_normalised():
    inputs = CapacityInputs(
        costs={MID: TierCost(hours_per_month=2), LOW: TierCost(hours_per_month=0.5)},
        new_accounts_per_month=10,
        new_account_mix={"mid": 3, "low": 7, "high": 0},
    )
    assert inputs.new_account_mix == {MID: 0.3, LOW: 0.7}
    plan = capacity_from_counts({"mid": 10}, inputs)
    assert plan.growth_hours_per_month == pytest.approx(10 * (0.3 * 2 + 0.7 * 0.5))
    assert "(mid 30%, low 70%)" in render_plan(plan)[-2]
    with pytest.raises(ValueError, match="above 0"):
        CapacityInputs(new_account_mix={"mid": 0})


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="whole number >= 0"):
        capacity_from_counts({HIGH: -1}, DOMAIN)
    with pytest.raises(ValueError, match="'platinum'"):
        capacity_from_counts({"platinum": 1}, DOMAIN)
    with pytest.raises(ValueError, match="> 0"):
        CapacityInputs(csm_hours_per_month=0)
    with pytest.raises(ValueError, match="whole number"):
        CapacityInputs(csms=-1)


# -- [capacity] from TOML ---------------------------------------------------------------------

EXAMPLE = """
[tiers.high]
mrr = 5000
meetings_per_week = 1
[tiers.mid]
mrr = 1000
meetings_per_month = 1
hours_per_meeting = 2
[tiers.low]
mrr = 200
hours_per_month = 0.5
[tiers.tech]
hours_per_month = 0

[capacity]
csm_hours_per_month = 160
weeks_per_month = 4
new_accounts_per_month = 10
new_account_tier = "mid"
csms = 3
"""


def test_reads_capacity():
    data = tomllib.loads(EXAMPLE)
    settings, errors = read_tiers(data["tiers"], capacity=data["capacity"], file="program.toml")
    assert errors == []
    inputs = settings.capacity
    assert inputs == CapacityInputs(
        costs={
            HIGH: TierCost(meetings_per_week=1),
            MID: TierCost(meetings_per_month=1, hours_per_meeting=2),
            LOW: TierCost(hours_per_month=0.5),
            TECH: TierCost(hours_per_month=0),
        },
        csm_hours_per_month=160,
        weeks_per_month=4,
        new_accounts_per_month=10,
        new_account_mix=MID,
        csms=3,
    )
    assert [inputs.hours(t) for t in (HIGH, MID, LOW, TECH)] == [4, 2, 0.5, 0]


def test_reads_a_new_account_mix():
    data = tomllib.loads(
        EXAMPLE.replace('new_account_tier = "mid"', "new_account_mix = { mid = 3, low = 7 }")
    )
    settings, errors = read_tiers(data["tiers"], capacity=data["capacity"], file="p.toml")
    assert errors == []
    assert settings.capacity is not None
    assert settings.capacity.new_account_mix == {MID: 0.3, LOW: 0.7}


def test_capacity_problems_are_all_reported_with_keys():
    data = tomllib.loads(
        """
[tiers.high]
hours_per_month = 8
meetings_per_week = 1
[tiers.mid]
meetings_per_month = "monthly"
[tiers.low]
hours_per_month = 1
hours_per_meeting = 2
[tiers.tech]
meetings_per_week = 1
hours_per_meeting = -1

[capacity]
csm_hours_per_month = 0
weeks_per_month = "four"
new_accounts_per_month = -10
csms = 2.5
new_account_tier = "gold"
new_account_mix = { mid = 1 }
speed = "fast"
"""
    )
    settings, errors = read_tiers(data["tiers"], capacity=data["capacity"], file="program.toml")
    reasons = {e.key: e.reason for e in errors}
    assert reasons == {
        "tiers.high": (
            "give one of hours_per_month, meetings_per_month, meetings_per_week, "
            "not hours_per_month and meetings_per_week"
        ),
        "tiers.mid.meetings_per_month": 'expected a number >= 0, got "monthly"',
        "tiers.low.hours_per_meeting": "only counts with meetings_per_month or meetings_per_week",
        "tiers.tech.hours_per_meeting": "expected a number >= 0, got -1",
        "capacity.speed": (
            "unknown key (known: csm_hours_per_month, weeks_per_month, new_accounts_per_month, "
            "new_account_tier, new_account_mix, csms)"
        ),
        "capacity.csm_hours_per_month": "expected a number > 0, got 0",
        "capacity.weeks_per_month": 'expected a number > 0, got "four"',
        "capacity.new_accounts_per_month": "expected a number >= 0, got -10",
        "capacity.csms": "expected a whole number >= 0, got 2.5",
        "capacity.new_account_mix": "give new_account_tier or new_account_mix, not both",
    }
    assert len(errors) == len(reasons)
    assert all(e.file == "program.toml" for e in errors)
    assert settings.capacity is None


def test_bad_new_account_tier_and_mix():
    tiers = {"high": {"hours_per_month": 8}}
    _, errors = read_tiers(tiers, capacity={"new_account_tier": "gold"}, file="p.toml")
    assert [(e.key, e.reason) for e in errors] == [
        ("capacity.new_account_tier", 'unknown tier "gold" (tiers: tech, low, mid, high)')
    ]
    mix = {"gold": 1, "mid": "lots"}
    _, errors = read_tiers(tiers, capacity={"new_account_mix": mix}, file="p.toml")
    assert [(e.key, e.reason) for e in errors] == [
        ("capacity.new_account_mix.gold", 'unknown tier "gold" (tiers: tech, low, mid, high)'),
        ("capacity.new_account_mix.mid", 'expected a number >= 0, got "lots"'),
    ]
    _, errors = read_tiers(tiers, capacity={"new_account_mix": {"mid": 0}}, file="p.toml")
    assert [(e.key, e.reason) for e in errors] == [
        ("capacity.new_account_mix", "expected at least one tier with a weight above 0")
    ]
    _, errors = read_tiers(tiers, capacity={"new_account_mix": "mid"}, file="p.toml")
    assert [e.key for e in errors] == ["capacity.new_account_mix"]
    _, errors = read_tiers(tiers, capacity="lots", file="p.toml")
    assert [(e.key, e.reason) for e in errors] == [("capacity", 'expected a table, got "lots"')]


def test_capacity_without_any_tier_cost_is_an_error():
    _, errors = read_tiers({"high": {"mrr": 5000}}, capacity={"csms": 2}, file="p.toml")
    assert [e.key for e in errors] == ["capacity"]
    assert "no tier says what it costs" in errors[0].reason


def test_no_capacity_and_no_costs_means_no_plan():
    settings, errors = read_tiers({"high": {"mrr": 5000}}, file="p.toml")
    assert errors == []
    assert settings.capacity is None


def test_the_domain_from_toml():
    data = tomllib.loads(
        """
[tiers.high]
meetings_per_week = 1
[capacity]
new_accounts_per_month = 10
"""
    )
    settings, errors = read_tiers(data["tiers"], capacity=data["capacity"], file="p.toml")
    assert errors == []
    assert settings.capacity is not None
    plan = capacity_from_counts({}, settings.capacity)
    assert plan.accounts_per_csm[HIGH] == 40
    assert plan.months_per_hire == 4


# -- docs/tiers.md shows what the code prints -------------------------------------------------

DOC = Path(__file__).resolve().parents[2] / "docs" / "tiers.md"


def test_the_docs_show_the_planner_output_as_it_is():
    page = DOC.read_text(encoding="utf-8")
    plans = [
        block.splitlines()
        for block in re.findall(r"```text\n(.*?)```", page, re.S)
        if block.startswith("Each CSM has")
    ]
    toml = re.search(r"## In program.toml\n\n```toml\n(.*?)```", page, re.S)
    assert toml is not None
    data = tomllib.loads(toml.group(1))
    settings, errors = read_tiers(data["tiers"], capacity=data["capacity"], file="program.toml")
    assert errors == []
    assert settings.capacity is not None
    mix = {HIGH: 10, MID: 40, LOW: 100, TECH: 1000}
    assert plans == [
        render_plan(capacity_from_counts({HIGH: 40}, DOMAIN)),
        render_plan(capacity_from_counts(mix, settings.capacity)),
    ]
