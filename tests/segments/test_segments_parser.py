"""The segment language's parser: good texts give the expected tree and read back from their
canonical text; bad texts give a ConfigError that points at the character and says what was
expected there."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onetomany.errors import ConfigError
from onetomany.rules.segments import parse, unparse
from onetomany.rules.segments.ast import (
    And,
    Arith,
    Between,
    Compare,
    Count,
    CurrentTier,
    DaysInStage,
    DaysSince,
    Exists,
    Expr,
    Field,
    In,
    Last,
    Literal,
    Neg,
    Not,
    Or,
    SegmentRef,
    StageOf,
)

plan = Field("account", ("plan",))
mrr = Field("account", ("mrr",))
role = Field("contact", ("role",), column=True)

GOOD: list[tuple[str, Expr]] = [
    (
        'account.plan in ["pro", "enterprise"] and account.mrr >= 500',
        And(In(plan, (Literal("pro"), Literal("enterprise"))), Compare(">=", mrr, Literal(500))),
    ),
    (
        'contact.role == "sponsor" or contact.role == "leader"',
        Or(Compare("==", role, Literal("sponsor")), Compare("==", role, Literal("leader"))),
    ),
    (
        "account.active_users / account.seats < 0.5",
        Compare(
            "<",
            Arith("/", Field("account", ("active_users",)), Field("account", ("seats",))),
            Literal(0.5),
        ),
    ),
    (
        "days_since(account.signed_up_at) > 30",
        Compare(">", DaysSince(Field("account", ("signed_up_at",))), Literal(30)),
    ),
    ('count("login", days=30) == 0', Compare("==", Count("login", 30), Literal(0))),
    (
        "count('report_created', days=7, by=\"contact\")",
        Count("report_created", 7, "contact"),
    ),
    ('count("login", by="contact", days=7)', Count("login", 7, "contact")),
    ('count("login")', Count("login")),
    (
        'days_since(last("login")) > 30',
        Compare(">", DaysSince(Last("login")), Literal(30)),
    ),
    ("exists(account.renews_on)", Exists(Field("account", ("renews_on",)))),
    ("missing(contact.phone)", Exists(Field("contact", ("phone",), column=True), missing=True)),
    (
        "account.seats between 10 and 50",
        Between(Field("account", ("seats",)), Literal(10), Literal(50)),
    ),
    (
        "account.seats not between 10 and 50 and true",
        And(
            Between(Field("account", ("seats",)), Literal(10), Literal(50), negated=True),
            Literal(True),
        ),
    ),
    ("not (account.mrr > 1)", Not(Compare(">", mrr, Literal(1)))),
    ("not not account.flag", Not(Not(Field("account", ("flag",))))),
    ('segment("at_risk")', SegmentRef("at_risk")),
    (
        "account.plan not in [1, -2.5, null, true, 'x',]",
        In(
            plan,
            (Literal(1), Literal(-2.5), Literal(None), Literal(True), Literal("x")),
            negated=True,
        ),
    ),
    ("account.traits.id == 1", Compare("==", Field("account", ("id",)), Literal(1))),
    ("account.id == 'a'", Compare("==", Field("account", ("id",), column=True), Literal("a"))),
    ("contact.billing.overdue_days", Field("contact", ("billing", "overdue_days"))),
    ("account.and.or == 1", Compare("==", Field("account", ("and", "or")), Literal(1))),
    # Precedence: * before +, + before comparison, comparison before not, not before and/or.
    ("1 + 2 * 3", Arith("+", Literal(1), Arith("*", Literal(2), Literal(3)))),
    ("1 - 2 - 3", Arith("-", Arith("-", Literal(1), Literal(2)), Literal(3))),
    ("-account.mrr * 2", Arith("*", Neg(mrr), Literal(2))),
    ("-5 * 2", Arith("*", Literal(-5), Literal(2))),
    (
        "not account.x or account.y and account.z",
        Or(
            Not(Field("account", ("x",))),
            And(Field("account", ("y",)), Field("account", ("z",))),
        ),
    ),
    ('"a\\"b\\n"', Literal('a"b\n')),
    ("1e3 == 1000.0", Compare("==", Literal(1000.0), Literal(1000.0))),
]


@pytest.mark.parametrize(("text", "tree"), GOOD, ids=[text for text, _ in GOOD])
def test_good_expressions_parse_and_round_trip(text: str, tree: Expr) -> None:
    assert parse(text) == tree
    assert parse(unparse(tree)) == tree


def test_literals_of_different_kinds_are_different_trees() -> None:
    assert parse("1") != parse("1.0")
    assert parse("1") != parse("true")


BAD = [
    ("", 0, "expected an expression"),
    ("account.plan = 'pro'", 13, "expected '==' (comparison) rather than '='"),
    ("account.plan in 'pro'", 16, "expected '[' to start the list after 'in'"),
    ("account.plan in ['a' 'b']", 21, "expected ',' or ']' in the list"),
    ("account.plan in [account.x]", 17, "expected a literal"),
    ("(account.mrr > 1", 16, "expected ')' to close the '(' at position 0"),
    ("account.mrr >", 13, "expected a value, found the end of the expression"),
    ("account.mrr > 1 1", 16, "expected 'and', 'or', an operator or the end"),
    ("1 < 2 < 3", 6, "expected 'and', 'or'"),
    ("plan == 1", 0, "expected a value: a number, a string"),
    ("account.", 8, "expected a field or trait name"),
    ("account.traits", 14, "expected '.' and a trait name after account.traits"),
    ("contact.email.domain == 'x'", 14, "contact.email is a column and has no fields"),
    ("count(login)", 6, 'expected an event name in quotes, e.g. count("login")'),
    ('count("login", day=3)', 15, "expected days= or by= in count()"),
    ('count("login", days=1.5)', 20, "expected a whole number of days after days="),
    ('count("login", days=-1)', 20, "expected a whole number of days"),
    ('count("login", days=1, days=2)', 23, "days= given twice"),
    ('count("login", by="team")', 18, 'by= must be "account" or "contact"'),
    ('last("login", days=3)', 14, "expected by= in last()"),
    ('last("login") > 3', 0, "last() gives the time of an event"),
    ('days_since(last("a") + 1)', 11, "last() gives the time of an event"),
    ("segment(at_risk)", 8, "expected a segment name in quotes"),
    ("account.x not 3", 14, "expected 'in' or 'between' after 'not'"),
    ("account.x between 1 or 2", 20, "expected 'and' (between LOW and HIGH)"),
    ("'abc", 0, "unterminated string; expected a closing '"),
    ("'a\\q'", 2, "unknown escape in string"),
    ("account.x @ 1", 10, "unexpected character '@'"),
    ("1e999 > 1", 0, "number 1e999 is too large"),
    ("[1] == [1]", 0, "a list is only allowed after 'in'"),
    ("and", 0, "expected a value, found 'and'"),
]


@pytest.mark.parametrize(("text", "position", "expected"), BAD, ids=[b[0] or "empty" for b in BAD])
def test_bad_expressions_name_position_and_expectation(
    text: str, position: int, expected: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse(text, file="program.toml", key="segments.at_risk")
    error = info.value
    assert f"at position {position}:" in error.reason
    assert expected in error.reason
    # The expression is quoted with a caret under the offending character.
    quoted, caret = error.reason.splitlines()[-2:]
    assert quoted == "    " + text
    assert caret == "    " + " " * position + "^"
    assert error.file == "program.toml"
    assert error.key == "segments.at_risk"
    assert str(error).startswith("program.toml: segments.at_risk: segment expression")


def test_caret_points_into_the_right_line_of_a_multiline_text() -> None:
    with pytest.raises(ConfigError) as info:
        parse("account.plan == 'pro'\n  and account.mrr >")
    *_, quoted, caret = info.value.reason.splitlines()
    assert quoted == "      and account.mrr >"
    assert caret == "    " + " " * len("  and account.mrr >") + "^"


# -- every tree reads back from its canonical text -----------------------------------------

names = st.sampled_from(["plan", "mrr", "id", "traits", "and", "x_1"])
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
)
literals = st.builds(Literal, scalars)
fields = st.one_of(
    st.builds(
        Field,
        st.sampled_from(["account", "contact"]),
        st.lists(names, min_size=1, max_size=3).map(tuple),
    ),
    st.builds(
        lambda n: Field("contact", (n,), column=True), st.sampled_from(["id", "role", "email"])
    ),
    st.builds(lambda n: Field("account", (n,), column=True), st.sampled_from(["id", "name"])),
)
event_names = st.text(min_size=1, max_size=6)
bys = st.sampled_from(["account", "contact"])
leaves = st.one_of(
    literals,
    fields,
    st.builds(Count, event_names, st.none() | st.integers(0, 400), bys),
    st.builds(lambda e, b: DaysSince(Last(e, b)), event_names, bys),
    st.builds(lambda e, b, m: Exists(Last(e, b), m), event_names, bys, st.booleans()),
    st.builds(SegmentRef, st.text(max_size=6)),
    st.just(CurrentTier()),
    st.builds(StageOf, st.text(max_size=6)),
    st.builds(DaysInStage, st.text(max_size=6)),
)


def _extend(children: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
    return st.one_of(
        st.builds(Neg, children),
        st.builds(Arith, st.sampled_from(["+", "-", "*", "/"]), children, children),
        st.builds(Compare, st.sampled_from(["==", "!=", "<", "<=", ">", ">="]), children, children),
        st.builds(In, children, st.lists(literals, max_size=3).map(tuple), st.booleans()),
        st.builds(Between, children, children, children, st.booleans()),
        st.builds(And, children, children),
        st.builds(Or, children, children),
        st.builds(Not, children),
        st.builds(Exists, children, st.booleans()),
        st.builds(DaysSince, children),
    )


trees = st.recursive(leaves, _extend, max_leaves=12)


@settings(max_examples=300)
@given(trees)
def test_every_tree_reads_back_from_its_canonical_text(tree: Expr) -> None:
    assert parse(unparse(tree)) == tree
