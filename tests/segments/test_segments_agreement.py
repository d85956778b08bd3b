"""THE property: for random populations and random expressions, the contacts the SQL
compiler selects are exactly those the Python evaluator puts in the segment, on SQLite and
(when its binaries are installed; always in CI) on PostgreSQL.

Populations mix the awkward cases on purpose: missing keys, JSON nulls, lists, values of
the wrong kind, invalid and boundary dates, contacts without an account or with a dangling
one, events exactly on window edges and in the future, accounts with and without a tier or
a journey stage (a dangling account may have them too), stages entered on day edges.

Python's side is checked twice: with profiles built from the population itself, and with
profiles :func:`load_profiles` reads back from the store.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import attrs
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onetomany import Account, Contact, Event
from onetomany.rules.segments import Profile, evaluate, unparse
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
    Health,
    HealthTrend,
    In,
    Last,
    Literal,
    Neg,
    Not,
    Or,
    StageOf,
)
from onetomany.store import Store
from onetomany.store.profiles import load_profiles
from onetomany.store.schema import (
    accounts,
    contacts,
    events,
    health_scores,
    journey_states,
    tier_states,
)
from onetomany.store.segments import compile_segment, matching_contact_ids
from tests.postgres import PostgresUnavailable, running_postgres, unavailable

EXPRESSIONS_PER_POPULATION = 6
#: Microseconds on purpose: whole-day counts and event windows must round them alike.
NOW = datetime(2026, 1, 5, 9, 0, 0, 250000, tzinfo=UTC)

# -- populations -------------------------------------------------------------------------------


def _date_text(seconds: int, style: int, offset_minutes: int) -> str:
    moment = NOW + timedelta(seconds=seconds)
    zone = timezone(timedelta(minutes=offset_minutes))
    local = moment.astimezone(zone)
    if style == 0:
        return moment.date().isoformat()
    if style == 1:
        return local.isoformat()  # with microseconds and +HH:MM
    if style == 2:
        return moment.strftime("%Y-%m-%d %H:%M:%S")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


dates = st.one_of(
    st.builds(
        _date_text,
        st.integers(-90 * 86400, 10 * 86400) | st.sampled_from([-30 * 86400, -86400, 0, 1]),
        st.integers(0, 3),
        st.sampled_from([0, 60, -300, 330, 23 * 60 + 59, -(23 * 60 + 59)]),
    ),
    st.sampled_from(
        [
            "2025-02-29",
            "2024-02-29",
            "2025-13-01",
            "2025-12-05T24:00:00",
            "2025-12-05T10:00:00+24:00",
            "2025-12-05T10:00",
            "0000-01-01",
            "2025-12-5",
            "2025-12-05T10:00:00.",
            "2025-12-05x",
        ]
    ),
)
numbers = st.one_of(
    st.integers(-50, 1000),
    st.integers(-400, 4000).map(lambda k: k / 4),  # exact in binary and in JSON text
    st.sampled_from([0, 0.0, -0.0, 0.1, 0.3, 2.675, 1e-7, 123.456]),
)
strings = st.sampled_from(["pro", "basic", "enterprise", "Pro", "", "é", "10", "a b"])
values = st.one_of(
    st.none(), st.booleans(), numbers, strings, dates, st.just([1, "pro"]), st.just({"x": 1})
)
TRAITS = ("plan", "mrr", "seats", "users", "signed_up_at", "flag", "billing")


@st.composite
def trait_maps(draw: st.DrawFn) -> dict[str, Any]:
    traits: dict[str, Any] = {}
    for name in draw(st.lists(st.sampled_from(TRAITS), unique=True)):
        if name == "billing":
            traits[name] = draw(
                st.one_of(values, st.fixed_dictionaries({}, optional={"overdue": values}))
            )
        else:
            traits[name] = draw(values)
    return traits


TIER_NAMES = ("tech", "low", "mid", "high")
JOURNEYS = ("onboarding", "adoption")
STAGES = ("setup", "first_value", "active", "Setup")


@attrs.frozen
class Population:
    accounts: tuple[Account, ...]
    contacts: tuple[Contact, ...]
    events: tuple[Event, ...]
    #: account id -> tier, and account id -> journey -> (stage, entered_at).
    tiers: dict[str, str] = attrs.field(factory=dict)
    stages: dict[str, dict[str, tuple[str, datetime]]] = attrs.field(factory=dict)
    #: account id -> its health scores (at, score), one per instant.
    health: dict[str, tuple[tuple[datetime, float], ...]] = attrs.field(factory=dict)

    def profile(self, contact: Contact) -> Profile:
        by_id = {a.id: a for a in self.accounts}
        owner = contact.account_id
        return Profile(
            contact=contact,
            account=by_id.get(owner) if owner else None,
            events=self.events,
            tier=self.tiers.get(owner) if owner else None,
            stages=self.stages.get(owner, {}) if owner else {},
            health=self.health.get(owner, ()) if owner else (),
        )


EVENT_SECONDS = st.one_of(
    st.integers(-60 * 86400, 2 * 86400),
    st.sampled_from([0, 1, -1, -7 * 86400, -30 * 86400, -30 * 86400 - 1, -30 * 86400 + 1]),
)


@st.composite
def populations(draw: st.DrawFn) -> Population:
    account_ids = [f"a{i}" for i in range(draw(st.integers(1, 3)))]
    accounts_ = tuple(
        Account(id=i, name=draw(strings), traits=draw(trait_maps())) for i in account_ids
    )
    owners = st.sampled_from([*account_ids, "ghost", None])
    contacts_ = tuple(
        Contact(
            id=f"c{i}",
            account_id=draw(owners),
            role=draw(st.sampled_from([None, "sponsor", "leader", "analyst"])),
            email=draw(st.sampled_from([None, "x@example.test"])),
            traits=draw(trait_maps()),
        )
        for i in range(draw(st.integers(1, 6)))
    )
    contact_ids = [c.id for c in contacts_]
    events_: list[Event] = []
    for i in range(draw(st.integers(0, 12))):
        account_id = draw(owners)
        contact_id = draw(st.sampled_from([*contact_ids, None]))
        if account_id is None and contact_id is None:
            contact_id = contact_ids[0]
        micro = draw(st.sampled_from([0, 250000, 999999]))
        events_.append(
            Event(
                id=f"e{i}",
                name=draw(st.sampled_from(["login", "report"])),
                account_id=account_id,
                contact_id=contact_id,
                occurred_at=NOW + timedelta(seconds=draw(EVENT_SECONDS), microseconds=micro),
            )
        )
    tiers: dict[str, str] = {}
    stages: dict[str, dict[str, tuple[str, datetime]]] = {}
    for account_id in [*account_ids, "ghost"]:
        if draw(st.booleans()):
            tiers[account_id] = draw(st.sampled_from(TIER_NAMES))
        for journey in draw(st.lists(st.sampled_from(JOURNEYS), unique=True)):
            micro = draw(st.sampled_from([0, 250000, 999999]))
            entered_at = NOW + timedelta(seconds=draw(EVENT_SECONDS), microseconds=micro)
            stages.setdefault(account_id, {})[journey] = (draw(st.sampled_from(STAGES)), entered_at)
    health: dict[str, tuple[tuple[datetime, float], ...]] = {}
    for account_id in [*account_ids, "ghost"]:
        # Scores on the trend's day edges, in the future, and several per account.
        moments = draw(st.lists(EVENT_SECONDS, unique=True, max_size=4))
        health[account_id] = tuple(
            (NOW + timedelta(seconds=s), draw(st.sampled_from([0.0, 12.5, 50.0, 80.0, 100.0])))
            for s in moments
        )
    return Population(accounts_, contacts_, tuple(events_), tiers, stages, health)


# -- expressions -------------------------------------------------------------------------------

trait_fields = st.builds(
    Field,
    st.sampled_from(["account", "contact"]),
    st.sampled_from([(t,) for t in TRAITS] + [("billing", "overdue"), ("absent",)]),
)
column_fields = st.sampled_from(
    [
        Field("contact", ("role",), column=True),
        Field("contact", ("email",), column=True),
        Field("contact", ("account_id",), column=True),
        Field("account", ("id",), column=True),
        Field("account", ("name",), column=True),
    ]
)
# Small integers too: day counts and event counts only meet literals of their size.
scalar_literals = st.builds(
    Literal,
    st.one_of(
        st.none(),
        st.booleans(),
        numbers,
        st.integers(-3, 40),
        strings,
        st.sampled_from(TIER_NAMES + STAGES),
    ),
)
journey_names = st.sampled_from([*JOURNEYS, "renewal"])  # renewal: nobody is in it
value_leaves = st.one_of(
    trait_fields,
    trait_fields,
    column_fields,
    scalar_literals,
    st.builds(
        Count,
        st.sampled_from(["login", "report"]),
        st.sampled_from([None, 0, 1, 7, 30]),
        st.sampled_from(["account", "contact"]),
    ),
    st.builds(DaysSince, trait_fields),
    st.just(CurrentTier()),
    st.builds(StageOf, journey_names),
    st.builds(DaysInStage, journey_names),
    st.just(Health()),
    st.builds(HealthTrend, st.sampled_from([1, 7, 30])),
    st.builds(
        lambda e, b: DaysSince(Last(e, b)),
        st.sampled_from(["login", "report"]),
        st.sampled_from(["account", "contact"]),
    ),
)
value_exprs = st.recursive(
    value_leaves,
    lambda inner: st.one_of(
        st.builds(Arith, st.sampled_from(["+", "-", "*", "/"]), inner, inner),
        st.builds(Neg, inner),
    ),
    max_leaves=3,
)
atoms = st.one_of(
    st.builds(
        Compare, st.sampled_from(["==", "!=", "<", "<=", ">", ">="]), value_exprs, value_exprs
    ),
    st.builds(In, value_exprs, st.lists(scalar_literals, max_size=3).map(tuple), st.booleans()),
    st.builds(Between, value_exprs, value_exprs, value_exprs, st.booleans()),
    st.builds(Exists, value_exprs, st.booleans()),
    st.builds(
        lambda e, b, m: Exists(Last(e, b), m),
        st.sampled_from(["login", "report"]),
        st.sampled_from(["account", "contact"]),
        st.booleans(),
    ),
    trait_fields,  # a trait as a condition: only a JSON true is true
)
conditions = st.recursive(
    atoms,
    lambda inner: st.one_of(
        st.builds(And, inner, inner), st.builds(Or, inner, inner), st.builds(Not, inner)
    ),
    max_leaves=5,
)


# -- the property ------------------------------------------------------------------------------


def _check(store: Store, population: Population, exprs: Sequence[Expr]) -> None:
    loaded = load_profiles(store)
    assert sorted(loaded) == sorted(c.id for c in population.contacts)
    for expr in exprs:
        in_sql = set(matching_contact_ids(store, expr, now=NOW))
        in_python = {
            c.id for c in population.contacts if evaluate(expr, population.profile(c), now=NOW)
        }
        assert in_sql == in_python, f"disagree on: {unparse(expr)}"
        in_loaded = {i for i, profile in loaded.items() if evaluate(expr, profile, now=NOW)}
        assert in_loaded == in_python, f"loaded profiles disagree on: {unparse(expr)}"


def _save(store: Store, population: Population) -> None:
    store.save_profiles(
        accounts=population.accounts,
        contacts=population.contacts,
        events=population.events,
        now=NOW,
    )
    # Written directly: tier tracking and journeys own these tables, and both may hold rows
    # for an account the store has no profile of.
    tier_rows = [
        {"account_id": a, "tier": tier, "since": NOW - timedelta(days=1)}
        for a, tier in population.tiers.items()
    ]
    stage_rows = [
        {
            "journey": journey,
            "account_id": a,
            "stage": stage,
            "entry_id": f"{journey}-{a}",
            "entered_at": entered_at,
        }
        for a, journeys in population.stages.items()
        for journey, (stage, entered_at) in journeys.items()
    ]
    with store.engine.begin() as conn:
        if tier_rows:
            conn.execute(sa.insert(tier_states), tier_rows)
        if stage_rows:
            conn.execute(sa.insert(journey_states), stage_rows)
        health_rows = [
            {"account_id": a, "at": at, "score": score, "measures": {}}
            for a, scores in population.health.items()
            for at, score in scores
        ]
        if health_rows:
            conn.execute(sa.insert(health_scores), health_rows)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(populations(), st.lists(conditions, min_size=1, max_size=EXPRESSIONS_PER_POPULATION))
def test_sql_agrees_with_python_on_sqlite(population: Population, exprs: list[Expr]) -> None:
    # A fresh store per example: hypothesis does not reset function-scoped fixtures.
    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder) / "x.db")
        try:
            _save(store, population)
            _check(store, population, exprs)
        finally:
            store.close()


@pytest.fixture(scope="module")
def pg_store() -> Iterator[Store]:
    """One migrated store on a throwaway PostgreSQL cluster; examples empty it first."""
    with contextlib.ExitStack() as stack:
        try:
            cluster = stack.enter_context(running_postgres())
        except PostgresUnavailable as exc:
            unavailable(str(exc))
        store = Store(cluster.url())
        stack.callback(store.close)
        yield store


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(populations(), st.lists(conditions, min_size=1, max_size=EXPRESSIONS_PER_POPULATION))
def test_sql_agrees_with_python_on_postgresql(
    pg_store: Store, population: Population, exprs: list[Expr]
) -> None:
    with pg_store.engine.begin() as conn:
        for table in (events, contacts, accounts, tier_states, journey_states, health_scores):
            conn.execute(sa.delete(table))
    _save(pg_store, population)
    _check(pg_store, population, exprs)


def test_dates_agree_with_python_on_every_generated_form() -> None:
    """Dates are where the two evaluators are most likely to drift: every shape, offset
    and boundary the strategy above can make, checked one by one on SQLite."""
    texts = [
        _date_text(seconds, style, offset)
        for seconds in (-86400 * 30, -86400 - 1, -1, 0, 1, 86399, 86400)
        for style in range(4)
        for offset in (0, 60, -300, 1439, -1439)
    ]
    contacts_ = [Contact(id=f"c{i}", traits={"d": text}) for i, text in enumerate(texts)]
    population = Population((), tuple(contacts_), ())
    exprs = [parse_days(n) for n in (-2, -1, 0, 1, 29, 30, 31)]
    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder) / "x.db")
        try:
            _save(store, population)
            _check(store, population, exprs)
        finally:
            store.close()


def parse_days(n: int) -> Expr:
    return Compare("==", DaysSince(Field("contact", ("d",))), Literal(n))


def test_now_in_another_zone_means_the_same_instant() -> None:
    shifted = NOW.astimezone(timezone(timedelta(hours=-7)))
    contact = Contact(id="c", traits={"d": "2025-12-06"})
    profile = Profile(contact=contact)
    text = "days_since(contact.d) == 30"
    assert evaluate(text, profile, now=NOW) == evaluate(text, profile, now=shifted)
    assert isinstance(shifted, datetime)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    populations(),
    conditions,
    st.lists(st.integers(min_value=-90 * 86400, max_value=90 * 86400), min_size=2, max_size=4),
)
def test_a_compiled_segment_asked_at_other_instants_agrees_with_python(
    population: Population, expr: Expr, shifts: list[int]
) -> None:
    """Compiled once, ``now`` and the ``count()`` windows bound per question: the same
    statements, asked at several instants, select what Python accepts at each."""
    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder) / "x.db")
        try:
            _save(store, population)
            compiled = compile_segment(expr, dialect_name=store.dialect)
            assert compile_segment(expr, dialect_name=store.dialect) is compiled
            for shift in shifts:
                at = NOW + timedelta(seconds=shift)
                with store.engine.connect() as conn:
                    in_sql = set(conn.scalars(compiled.contacts, compiled.params(at)))
                in_python = {
                    c.id
                    for c in population.contacts
                    if evaluate(expr, population.profile(c), now=at)
                }
                assert in_sql == in_python, f"disagree at {at}: {unparse(expr)}"
        finally:
            store.close()
