"""Named segments (references, unknown names, cycles) and the static type check."""

from __future__ import annotations

from datetime import datetime

import pytest

from onetomany.errors import ConfigError, ConfigErrors
from onetomany.rules.segments import Profile, SegmentSet, check_types, references
from onetomany.rules.segments.parser import parse
from onetomany.store import Store
from onetomany.store.segments import matching_contact_ids

SEGMENTS = {
    "paying": 'account.plan in ["pro", "enterprise"]',
    "big": "account.mrr >= 500 and segment('paying')",
    "quiet": 'count("login", days=7) == 0',
    "big_and_busy": 'segment("big") and not segment("quiet")',
    "unknown_inside": "account.absent > 1",
    "outside_unknown": 'not segment("unknown_inside")',
}


def test_references_resolve_in_python_and_sql(
    profile_store: Store, profile: Profile, now: datetime
) -> None:
    segments = SegmentSet(SEGMENTS, file="program.toml")
    assert references(segments["big_and_busy"]) == ["big", "quiet"]
    expected = {
        "paying": True,
        "big": True,
        "quiet": False,
        "big_and_busy": True,
        "unknown_inside": False,
        # A reference is in-or-out, never unknown: not(unknown segment) is everyone.
        "outside_unknown": True,
    }
    for name, inside in expected.items():
        assert segments.evaluate(name, profile, now=now) is inside, name
        in_sql = matching_contact_ids(
            profile_store, segments.expr(name), now=now, segments=segments
        )
        assert in_sql == (["ana"] if inside else []), name


def test_a_cycle_is_an_error_naming_its_path() -> None:
    with pytest.raises(ConfigError) as info:
        SegmentSet({"a": 'segment("b")', "b": 'true and segment("a")', "c": "true"})
    assert info.value.reason == "segments refer to each other in a cycle: a -> b -> a"
    assert info.value.key == "a"


def test_a_segment_referring_to_itself_is_a_cycle() -> None:
    with pytest.raises(ConfigError, match=r"cycle: me -> me$"):
        SegmentSet({"me": 'segment("me") or true'})


def test_a_longer_cycle_behind_a_good_segment() -> None:
    with pytest.raises(ConfigError, match=r"cycle: b -> c -> d -> b"):
        SegmentSet(
            {"a": 'segment("b")', "b": 'segment("c")', "c": 'segment("d")', "d": 'segment("b")'}
        )


def test_an_unknown_reference_is_an_error_naming_it() -> None:
    with pytest.raises(ConfigError) as info:
        SegmentSet({"a": 'segment("nope")', "b": "true"}, file="program.toml")
    assert 'segment("nope") names no known segment (known: a, b)' in info.value.reason
    assert (info.value.file, info.value.key) == ("program.toml", "a")


def test_several_problems_are_reported_together() -> None:
    with pytest.raises(ConfigErrors) as info:
        SegmentSet({"a": "account.plan =", "b": 'segment("zz")'})
    assert [e.key for e in info.value.errors] == ["a", "b"]


def test_missing_segment_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no segment named 'zz'"):
        SegmentSet({}).expr("zz")


def test_parsed_expressions_are_accepted() -> None:
    segments = SegmentSet({"a": parse("true")})
    assert list(segments) == ["a"]
    assert len(segments) == 1


# -- type check ------------------------------------------------------------------------------

ACCOUNT_TRAITS = {
    "plan": "str",
    "mrr": "int",
    "ratio": "float",
    "trial": "bool",
    "signed_up_at": "date",
    "renewed_at": "datetime",
    "billing.overdue_days": "int",
}
CONTACT_TRAITS = {"score": "float"}


@pytest.mark.parametrize(
    "text",
    [
        'account.plan in ["pro", "enterprise"] and account.mrr >= 500',
        "account.mrr / account.ratio < 0.5 and account.trial",
        "days_since(account.signed_up_at) > 30 or days_since(account.renewed_at) < 3",
        'account.signed_up_at < "2025-01-01"',
        'days_since(last("login")) > 30 and count("login", days=7) == 0',
        "account.billing.overdue_days > 40",
        "account.undeclared == 'x' and account.undeclared > 3",
        'contact.role == "sponsor" and contact.score between 1 and 5',
        "exists(account.plan) and not account.trial",
    ],
)
def test_well_typed_expressions_have_no_errors(text: str) -> None:
    errors = check_types(text, account_traits=ACCOUNT_TRAITS, contact_traits=CONTACT_TRAITS)
    assert errors == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("account.plan > 3", "compares account.plan (a string) with 3 (a number)"),
        ('account.mrr == "600"', 'compares account.mrr (a number) with "600" (a string)'),
        ('account.plan in ["pro", 1]', "compares account.plan (a string) with 1 (a number)"),
        ("account.mrr between 1 and 'z'", 'compares account.mrr (a number) with "z"'),
        ("days_since(account.plan) > 3", "days_since(account.plan) needs a date or datetime, but"),
        ("days_since(account.mrr) > 3", "account.mrr is a number"),
        ("account.plan + 1 > 3", "'+' needs numbers, but account.plan is a string"),
        ("account.mrr and true", "account.mrr is a number, not a condition"),
        ("account.mrr", "account.mrr is a number, not a condition"),
        ("account.trial < true", "orders a booleans"),
        ("contact.email == 3", "compares contact.email (a string) with 3"),
        ("account.billing.overdue_days == 'x'", "compares account.billing.overdue_days"),
        ("contact.score == null", "compares with null, which is always unknown"),
    ],
)
def test_type_errors_are_reported(text: str, message: str) -> None:
    errors = check_types(
        text,
        account_traits=ACCOUNT_TRAITS,
        contact_traits=CONTACT_TRAITS,
        file="program.toml",
        key="segments.x",
    )
    assert len(errors) == 1, errors
    assert message in errors[0].reason
    assert (errors[0].file, errors[0].key) == ("program.toml", "segments.x")


def test_bad_declared_type_and_unknown_reference() -> None:
    errors = check_types(
        'segment("ghost") and true',
        account_traits={"x": "money"},
        segments=SegmentSet({"a": "true"}),
    )
    reasons = [e.reason for e in errors]
    assert "account trait 'x' is declared 'money'; expected one of int, float" in reasons[0]
    assert 'segment("ghost") names no known segment' in reasons[1]
