"""The documented semantics, table-driven: three-valued logic over missing values, the kind
rules, dates and event aggregates. Each row gives the three-valued result of an expression;
the test checks it through evaluate() of the expression and of its negation (an unknown is
false both ways), in Python and in SQL on one stored profile."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from onetomany import Contact
from onetomany.errors import ConfigError
from onetomany.rules.segments import Profile, evaluate
from onetomany.rules.segments.dates import iso_epoch
from onetomany.store import Store
from onetomany.store.segments import AMONG_CHUNK, matching_contact_ids, to_sql

T, F, U = True, False, None

TABLE: list[tuple[str, bool | None]] = [
    # Comparisons of one kind.
    ('account.plan == "pro"', T),
    ('account.plan != "pro"', F),
    ('account.plan < "q"', T),
    ('"Pro" < "pro"', T),  # code point order: upper case first
    ("account.mrr >= 500", T),
    ("account.mrr == 600.0", T),  # integers and floats are one kind
    ("account.flag == true", T),
    ("account.flag != account.off", T),
    ('contact.role == "sponsor"', T),
    ('account.name == "Acme"', T),
    ('account.id == "acme"', T),
    ('account.traits.id == "trait-id"', T),
    ("contact.account_id == account.id", T),
    ("account.obj.x == 2", T),
    ('account.obj.deep.y == "z"', T),
    # Missing values: absent key, JSON null, list, object, missing column, beyond a leaf.
    ("account.absent == 1", U),
    ("account.nothing == 1", U),
    ("account.listy == 1", U),
    ("account.obj == 1", U),
    ('contact.phone == "+1"', U),
    ("account.plan.x == 1", U),
    ("contact.nps > 1", U),
    ("null == null", U),
    # Mixed kinds are unknown, never false.
    ("account.mrr_text == 600", U),
    ('account.mrr == "600"', U),
    ("account.flag == 1", U),
    ("account.flag < true", U),  # booleans have no order
    ("account.plan > 1", U),
    # Three-valued and / or / not.
    ("account.absent == 1 and false", F),
    ("account.absent == 1 and true", U),
    ("account.absent == 1 or true", T),
    ("account.absent == 1 or false", U),
    ("not (account.absent == 1)", U),
    ("account.flag", T),
    ("account.off", F),
    ("account.plan", U),  # a string is not a condition
    ("account.mrr and true", U),
    # in / not in / between.
    ('account.plan in ["basic", "pro"]', T),
    ('account.plan in ["basic"]', F),
    ('account.plan in ["basic", 1]', U),  # no match, and an item of another kind
    ('account.plan in ["pro", 1]', T),
    ('account.plan in ["basic", null]', U),
    ("account.plan in []", F),
    ("account.absent in []", F),
    ('account.absent in ["x"]', U),
    ('account.plan not in ["basic"]', T),
    ('account.plan not in ["basic", 1]', U),
    ("account.seats between 10 and 50", T),
    ("account.seats between 11 and 50", F),
    ("account.seats not between 11 and 50", T),
    ('account.seats between 1 and "z"', U),
    ("account.seats between 20 and 1 or account.absent between 1 and 2", U),
    # Arithmetic.
    ("account.active_users / account.seats < 0.5", T),
    ("account.active_users / account.seats == 0.3", T),
    ("account.mrr / account.zero > 0", U),  # division by zero
    ("account.mrr / account.zero == 1 or true", T),
    ("account.mrr + account.mrr_text > 0", U),
    ("-account.mrr == -600", T),
    ("account.seats * 2 - 1 == 19", T),
    ("account.ratio * 4 == 1", T),
    # exists / missing never are unknown.
    ("exists(account.plan)", T),
    ("exists(account.absent)", F),
    ("exists(account.nothing)", F),
    ("missing(account.listy)", T),
    ("missing(contact.phone)", T),
    ("exists(account.mrr / account.zero)", F),
    ("exists(account.absent == 1)", F),
    ("exists(account.plan == 1)", F),
    ("exists(account.plan == 'x')", T),
    # Dates: whole days, rounded down; offsets applied; bad dates are missing.
    ("days_since(account.signed_up_at) == 65", T),
    ("days_since(account.late_evening) == 0", T),  # 04:30 UTC today
    ("days_since(account.with_fraction) == 31", T),  # fraction dropped: 09:00:00 <= 09:00:00.25
    ("days_since(account.renews_on) == -27", T),
    ("days_since(account.leap_day) > 600", T),
    ("days_since(account.bad_date) > 0", U),
    ("days_since(account.mrr) > 0", U),
    ("days_since(account.plan) > 0", U),
    ("exists(days_since(account.bad_date))", F),
    # Event aggregates: the account's events, or the contact's; [now - N days, now].
    ('count("login", days=30) == 2', T),  # 3 days ago, and exactly 30 days ago
    ('count("login", days=29) == 1', T),
    ('count("login") == 3', T),  # the future one never counts
    ('count("report", days=7) == 1', T),  # the account's; the contact-only one is not
    ('count("report", days=7, by="contact") == 2', T),
    ('count("nothing", days=7) == 0', T),
    ('days_since(last("login")) == 3', T),
    ('days_since(last("report", by="contact")) == 1', T),
    ('days_since(last("nothing")) > 30', U),
    ('missing(last("nothing"))', T),
    ('exists(last("login"))', T),
]


def _ids(table: list[tuple[str, bool | None]]) -> list[str]:
    return [text for text, _ in table]


@pytest.mark.parametrize(("text", "result"), TABLE, ids=_ids(TABLE))
def test_python_three_valued_result(
    profile: Profile, now: datetime, text: str, result: bool | None
) -> None:
    assert evaluate(text, profile, now=now) is (result is True)
    assert evaluate(f"not ({text})", profile, now=now) is (result is False)


@pytest.mark.parametrize(("text", "result"), TABLE, ids=_ids(TABLE))
def test_sql_three_valued_result(
    profile_store: Store, now: datetime, text: str, result: bool | None
) -> None:
    assert matching_contact_ids(profile_store, text, now=now) == (["ana"] if result else [])
    negated = matching_contact_ids(profile_store, f"not ({text})", now=now)
    assert negated == (["ana"] if result is False else [])


def test_a_contact_without_account_has_only_missing_account_values(now: datetime) -> None:
    alone = Profile(contact=Contact(id="solo", role="admin"))
    assert evaluate("missing(account.id) and missing(account.plan)", alone, now=now)
    assert not evaluate("account.plan == 'pro' or not (account.plan == 'pro')", alone, now=now)
    assert evaluate('count("login") == 0 and missing(last("login"))', alone, now=now)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-05", datetime(2026, 1, 5, tzinfo=UTC)),
        ("2026-01-05T10:11:12", datetime(2026, 1, 5, 10, 11, 12, tzinfo=UTC)),
        ("2026-01-05 10:11:12", datetime(2026, 1, 5, 10, 11, 12, tzinfo=UTC)),
        ("2026-01-05T10:11:12Z", datetime(2026, 1, 5, 10, 11, 12, tzinfo=UTC)),
        ("2026-01-05T10:11:12.9", datetime(2026, 1, 5, 10, 11, 12, tzinfo=UTC)),
        ("2026-01-05T10:11:12+02:30", datetime(2026, 1, 5, 7, 41, 12, tzinfo=UTC)),
        ("2026-01-05T23:00:00-05:00", datetime(2026, 1, 6, 4, 0, 0, tzinfo=UTC)),
        ("2024-02-29", datetime(2024, 2, 29, tzinfo=UTC)),
        ("0001-01-01", datetime(1, 1, 1, tzinfo=UTC)),
        ("9999-12-31T23:59:59", datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)),
        ("1969-12-31T23:59:59", datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC)),
        ("2025-02-29", None),
        ("1900-02-29", None),
        ("2025-04-31", None),
        ("2025-13-01", None),
        ("2025-00-10", None),
        ("2025-01-00", None),
        ("0000-01-01", None),
        ("2025-01-05T24:00:00", None),
        ("2025-01-05T10:60:00", None),
        ("2025-01-05T10:00:60", None),
        ("2025-01-05T10:00", None),
        ("2025-01-05T10:00:00+24:00", None),
        ("2025-01-05T10:00:00+02:60", None),
        ("2025-01-05T10:00:00.", None),
        ("2025-01-05T10:00:00z", None),
        ("2025-1-5", None),
        ("20250105", None),
        ("2025-01-05 ", None),
        ("2025-01-05\n", None),
        ("", None),
    ],
)
def test_date_strings(text: str, expected: datetime | None) -> None:
    from onetomany.rules.segments.dates import epoch

    assert iso_epoch(text) == (None if expected is None else epoch(expected))


def test_now_must_be_aware(profile: Profile) -> None:
    with pytest.raises(ValueError, match="no timezone"):
        evaluate("true", profile, now=datetime(2026, 1, 5))
    with pytest.raises(ValueError, match="no timezone"):
        to_sql("true", now=datetime(2026, 1, 5), dialect_name="sqlite")


def test_segment_reference_without_a_segment_set_is_a_config_error(
    profile: Profile, now: datetime
) -> None:
    with pytest.raises(ConfigError, match='segment\\("x"\\) names no known segment'):
        evaluate('segment("x")', profile, now=now)
    with pytest.raises(ConfigError, match="names no known segment"):
        to_sql('segment("x")', now=now, dialect_name="sqlite")


def test_unsupported_dialect_is_a_config_error(now: datetime) -> None:
    with pytest.raises(ConfigError, match="not 'mysql'"):
        to_sql("true", now=now, dialect_name="mysql")


def test_a_question_among_more_contacts_than_one_query_takes_is_answered_whole(store):
    now = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    people = [
        Contact(id=f"c{i:05d}", role="admin" if i % 2 else "analyst")
        for i in range(3 * AMONG_CHUNK)
    ]
    store.save_profiles(contacts=people, now=now)
    among = [c.id for c in people[::3]] + ["nobody"]
    found = matching_contact_ids(store, 'contact.role == "admin"', now=now, among=reversed(among))
    assert found == sorted(c.id for c in people[::3] if c.role == "admin")
    assert len(found) == AMONG_CHUNK // 2
