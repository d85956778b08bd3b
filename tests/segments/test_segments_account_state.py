"""tier(), stage() and days_in_stage(): an account's service tier and journey stages, read
from the tables the engine writes, the same in the Python evaluator (profiles loaded from
the store) and in SQL, on every supported database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from onetomany import Account, Contact, Event
from onetomany.errors import ConfigError
from onetomany.rules.segments import Profile, check_types, evaluate, parse, unparse
from onetomany.rules.segments.ast import Compare, CurrentTier, DaysInStage, In, Literal, StageOf
from onetomany.rules.tiers import TierState
from onetomany.store import Store
from onetomany.store.profiles import load_profiles
from onetomany.store.schema import journey_states
from onetomany.store.segments import matching_contact_ids

NOW = datetime(2026, 1, 5, 9, 0, 0, 250000, tzinfo=UTC)
ACCOUNTS = (Account(id="acme"), Account(id="beta"))
CONTACTS = (
    Contact(id="ana", account_id="acme", role="sponsor"),
    Contact(id="bo", account_id="acme", role="analyst"),
    Contact(id="cy", account_id="beta", role="sponsor"),
    Contact(id="solo"),  # no account
    Contact(id="gus", account_id="ghost"),  # an account the store holds no row for
)
EVERYONE = [c.id for c in CONTACTS]
EVENTS = (
    Event(name="login", occurred_at=NOW - timedelta(days=2), account_id="acme"),
    Event(name="report", occurred_at=NOW - timedelta(days=1), contact_id="solo"),
)


def _journey(journey: str, account_id: str, stage: str, entered_at: datetime) -> dict[str, object]:
    return {
        "journey": journey,
        "account_id": account_id,
        "stage": stage,
        "entry_id": f"{journey}-{account_id}-{stage}",
        "entered_at": entered_at,
    }


@pytest.fixture
def populated(store: Store) -> Store:
    """acme: high tier, in onboarding "setup" for 10 days and 3 hours and in adoption
    "active" since the second before now; beta: no tier, in no journey; ghost (no account
    row): low tier, in onboarding "first_value" for exactly 3 days."""
    store.save_profiles(accounts=ACCOUNTS, contacts=CONTACTS, events=EVENTS, now=NOW)
    store.save_tier_states(
        {
            "acme": TierState(tier="high", since=NOW - timedelta(days=40)),
            "ghost": TierState(tier="low", since=NOW - timedelta(days=1)),
        },
        now=NOW,
    )
    with store.engine.begin() as conn:
        conn.execute(
            sa.insert(journey_states),
            [
                _journey("onboarding", "acme", "setup", NOW - timedelta(days=10, hours=3)),
                _journey("adoption", "acme", "active", NOW - timedelta(seconds=1)),
                _journey("onboarding", "ghost", "first_value", NOW - timedelta(days=3)),
            ],
        )
    return store


CASES: list[tuple[str, list[str]]] = [
    ('tier() == "high"', ["ana", "bo"]),
    ('tier() in ["high", "mid"]', ["ana", "bo"]),
    ('tier() == "low"', ["gus"]),
    ("missing(tier())", ["cy", "solo"]),
    ('tier() != "high"', ["gus"]),  # no tier is unknown, not "not high"
    ('not (tier() == "high")', ["gus"]),
    ('tier() == "high" and contact.role == "sponsor"', ["ana"]),
    ('stage("onboarding") == "setup"', ["ana", "bo"]),
    ('stage("onboarding") in ["setup", "first_value"]', ["ana", "bo", "gus"]),
    ('stage("adoption") == "active"', ["ana", "bo"]),
    ('missing(stage("onboarding"))', ["cy", "solo"]),
    ('stage("onboarding") != "setup"', ["gus"]),
    ('exists(stage("renewal"))', []),  # no such journey: missing for everyone
    ('missing(stage("renewal")) and missing(days_in_stage("renewal"))', EVERYONE),
    ('days_in_stage("onboarding") == 10', ["ana", "bo"]),
    ('days_in_stage("onboarding") == 3', ["gus"]),  # exactly three days: whole days, inclusive
    ('days_in_stage("onboarding") >= 10', ["ana", "bo"]),
    ('days_in_stage("adoption") == 0', ["ana", "bo"]),
    ('stage("onboarding") == "setup" and days_in_stage("onboarding") > 7', ["ana", "bo"]),
    ('missing(days_in_stage("onboarding"))', ["cy", "solo"]),
    ('days_in_stage("renewal") >= 0 or days_in_stage("renewal") < 0', []),
    ('tier() == stage("onboarding")', []),
    ('count("login", days=7) >= 1 and tier() == "high"', ["ana", "bo"]),
]


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[t for t, _ in CASES])
def test_both_evaluators_read_tier_and_stages(
    populated: Store, text: str, expected: list[str]
) -> None:
    assert matching_contact_ids(populated, text, now=NOW) == sorted(expected)
    profiles = load_profiles(populated)
    in_python = sorted(i for i, p in profiles.items() if evaluate(text, p, now=NOW))
    assert in_python == sorted(expected)


def test_profiles_from_the_store_carry_tier_and_stages(populated: Store) -> None:
    profiles = load_profiles(populated, ["ana", "cy", "gus", "solo", "nobody"])
    assert sorted(profiles) == ["ana", "cy", "gus", "solo"]
    ana = profiles["ana"]
    assert ana.account == ACCOUNTS[0]
    assert ana.tier == "high"
    assert ana.stages == {
        "onboarding": ("setup", NOW - timedelta(days=10, hours=3)),
        "adoption": ("active", NOW - timedelta(seconds=1)),
    }
    assert [e.name for e in ana.events] == ["login"]
    assert profiles["cy"].tier is None and profiles["cy"].stages == {}
    assert profiles["solo"].account is None and profiles["solo"].tier is None
    assert [e.name for e in profiles["solo"].events] == ["report"]
    assert profiles["gus"].account is None
    assert profiles["gus"].tier == "low"
    assert profiles["gus"].stages["onboarding"][0] == "first_value"


def test_profiles_can_leave_out_events_no_expression_counts(populated: Store) -> None:
    assert load_profiles(populated, ["ana"], event_names=["report"])["ana"].events == ()
    assert len(load_profiles(populated, ["ana"], event_names=["login"])["ana"].events) == 1


def test_a_hand_built_profile_without_tier_or_stages_has_them_missing() -> None:
    alone = Profile(contact=Contact(id="x", account_id="acme"))
    assert evaluate('missing(tier()) and missing(stage("onboarding"))', alone, now=NOW)
    assert evaluate('missing(days_in_stage("onboarding"))', alone, now=NOW)


def test_days_in_stage_rounds_down_and_counts_a_future_entry_negative() -> None:
    def days(entered_at: datetime) -> bool:
        profile = Profile(
            contact=Contact(id="x", account_id="acme"),
            stages={"onboarding": ("setup", entered_at)},
        )
        return evaluate('days_in_stage("onboarding") == 1', profile, now=NOW)

    assert days(NOW - timedelta(days=1))
    assert days(NOW - timedelta(days=2) + timedelta(seconds=1))
    assert not days(NOW - timedelta(days=1) + timedelta(seconds=1))
    future = Profile(
        contact=Contact(id="x"), stages={"onboarding": ("setup", NOW + timedelta(hours=1))}
    )
    assert evaluate('days_in_stage("onboarding") == -1', future, now=NOW)


def test_a_naive_stage_entry_time_is_refused() -> None:
    with pytest.raises(ValueError, match=r"stages\['onboarding'\]: entered_at .* no timezone"):
        Profile(contact=Contact(id="x"), stages={"onboarding": ("setup", datetime(2026, 1, 1))})


# -- the language ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        ('tier() == "high"', Compare("==", CurrentTier(), Literal("high"))),
        ("tier ( ) in ['mid']", In(CurrentTier(), (Literal("mid"),))),
        ("stage('onboarding') == 'setup'", Compare("==", StageOf("onboarding"), Literal("setup"))),
        ('days_in_stage("onboarding") > 10', Compare(">", DaysInStage("onboarding"), Literal(10))),
    ],
)
def test_the_calls_parse_and_read_back(text: str, tree: object) -> None:
    assert parse(text) == tree
    assert parse(unparse(parse(text))) == tree


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('tier("x") == "high"', "expected ')' after tier(: tier() takes no arguments"),
        ("stage() == 'setup'", 'expected a journey name in quotes, e.g. stage("onboarding")'),
        ("stage(onboarding) == 'setup'", "expected a journey name in quotes"),
        ('days_in_stage("a", "b") > 1', "expected ')' to close days_in_stage("),
        ("tier == 'high'", "expected '(' after tier"),
    ],
)
def test_bad_calls_say_what_was_expected(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(text)
    assert message in info.value.reason


JOURNEYS = {"onboarding": ["setup", "first_value"], "adoption": ["active"]}


@pytest.mark.parametrize(
    "text",
    [
        'tier() in ["high", "mid"]',
        'tier() == "tech" or tier() != "low"',
        'stage("onboarding") == "setup"',
        'stage("onboarding") in ["setup", "first_value"] and days_in_stage("onboarding") > 10',
        'days_in_stage("adoption") between 1 and 30',
        "exists(tier()) and missing(stage('adoption'))",
        'tier() == account.plan and stage("onboarding") != contact.role',
    ],
)
def test_tier_and_stage_expressions_typecheck(text: str) -> None:
    assert check_types(text) == []
    assert check_types(text, journeys=JOURNEYS) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'tier() == "premium"',
            "tier() == \"premium\" compares tier() with 'premium', which is not a tier; "
            "tiers are tech, low, mid, high",
        ),
        ('tier() in ["high", "Mid"]', "compares tier() with 'Mid', which is not a tier"),
        ('"gold" != tier()', "compares tier() with 'gold', which is not a tier"),
        ('tier() >= "mid"', "orders tiers by their names, not tech < low < mid < high"),
        ('tier() between "low" and "high"', "orders tiers by their names"),
        ("tier() == 3", "compares tier() (a string) with 3 (a number)"),
        ('stage("onboarding") > 2', 'compares stage("onboarding") (a string) with 2'),
        ('days_in_stage("onboarding") == "10"', '(a number) with "10" (a string)'),
        ("tier()", "tier() is a string, not a condition"),
        ('days_in_stage("onboarding") and true', "is a number, not a condition"),
    ],
)
def test_tier_and_stage_type_errors(text: str, message: str) -> None:
    errors = check_types(text, file="program.toml", key="segments.x")
    assert len(errors) == 1, errors
    assert message in errors[0].reason
    assert (errors[0].file, errors[0].key) == ("program.toml", "segments.x")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'stage("onbaording") == "setup"',
            'stage("onbaording") names no known journey (journeys: adoption, onboarding)',
        ),
        ('days_in_stage("renewal") > 3', 'days_in_stage("renewal") names no known journey'),
        (
            'stage("onboarding") == "set_up"',
            "compares stage(\"onboarding\") with 'set_up', which is not a stage of journey "
            "'onboarding' (stages: setup, first_value)",
        ),
        ('stage("adoption") in ["active", "idle"]', "'idle', which is not a stage"),
    ],
)
def test_declared_journeys_catch_unknown_journeys_and_stages(text: str, message: str) -> None:
    errors = check_types(text, journeys=JOURNEYS)
    assert len(errors) == 1, errors
    assert message in errors[0].reason
    # Without the journeys the same expression is accepted: unknown names are just missing.
    assert check_types(text) == []
