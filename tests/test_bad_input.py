"""Bad input from a host gets an error naming the value and where it came from, never a raw
traceback from a database driver or from Python's stack, and nothing already stored changes."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from onetomany import Account, Contact, Event
from onetomany.errors import (
    ConfigError,
    InputError,
    InvalidAccountError,
    InvalidContactError,
    InvalidEventError,
    StoreError,
)
from onetomany.model.plaindata import MAX_DEPTH
from onetomany.rules.segments import evaluate
from onetomany.rules.segments.parser import MAX_DEPTH as MAX_SEGMENT_DEPTH
from onetomany.rules.segments.parser import MAX_TERMS, _depth, parse
from onetomany.store import Store
from onetomany.store.profiles import load_profiles
from onetomany.store.segments import matching_contact_ids

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def _nested(depth: int) -> dict[str, object]:
    value: dict[str, object] = {}
    for _ in range(depth - 1):
        value = {"k": value}
    return value


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        pytest.param(NOW, "a value of type datetime is not JSON data", id="datetime"),
        pytest.param({1, 2}, "a value of type set", id="set"),
        pytest.param(b"raw", "a value of type bytes", id="bytes"),
        pytest.param(math.nan, "nan is not a JSON number", id="nan"),
        pytest.param(math.inf, "inf is not a JSON number", id="inf"),
        pytest.param("a\x00b", "NUL", id="nul"),
        pytest.param("a\ud800b", "lone surrogate", id="surrogate"),
        pytest.param(10**30, "does not fit in 64 bits", id="huge-int"),
        pytest.param({3: "x"}, "keys are text", id="int-key"),
    ],
)
def test_event_properties_that_are_not_json_name_their_path(engine, value, fragment):
    with pytest.raises(InvalidEventError) as info:
        engine.track("login", account_id="a1", properties={"plan": {"since": value}})
    message = str(info.value)
    assert "properties['plan']['since']" in message
    assert fragment in message
    assert "'login'" in message
    assert engine.store.count("events") == 0


def test_deeply_nested_properties_are_refused_without_a_recursion_error(engine):
    with pytest.raises(InvalidEventError, match=f"nests more than {MAX_DEPTH} levels"):
        engine.track("login", account_id="a1", properties=_nested(5000))
    # The deepest value the limit allows is stored and read back whole.
    engine.track("login", account_id="a1", properties=_nested(MAX_DEPTH), id="ok")
    assert engine.store.count("events") == 1


def test_a_refused_event_leaves_the_events_before_it_stored(engine):
    engine.track("login", account_id="a1", id="first")
    with pytest.raises(InvalidEventError):
        engine.track("login", account_id="a1", properties={"at": NOW})
    assert engine.store.count("events") == 1


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        pytest.param({"account_id": ""}, "account_id", id="empty-account"),
        pytest.param({"account_id": "a1", "contact_id": "  "}, "contact_id", id="blank-contact"),
        pytest.param({"account_id": "a\x00"}, "account_id", id="nul-id"),
        pytest.param({"account_id": "a" * 300}, "account_id", id="too-long"),
        pytest.param({"account_id": "a1", "id": "x" * 65}, "id", id="long-event-id"),
    ],
)
def test_event_subject_ids_must_be_real_ids(fields, field):
    with pytest.raises(InvalidEventError, match=field):
        Event(name="login", occurred_at=NOW, **fields)


@pytest.mark.parametrize("bad_id", ["", "   "])
def test_profiles_need_an_id(bad_id):
    with pytest.raises(InvalidContactError, match="an id must be non-empty text"):
        Contact(id=bad_id, account_id="a1")
    with pytest.raises(InvalidAccountError, match="an id must be non-empty text"):
        Account(id=bad_id)


@pytest.mark.parametrize(
    ("build", "error", "field"),
    [
        (lambda: Account(id="a1", name="Ac\ud800me"), InvalidAccountError, "name"),
        (lambda: Account(id="a1", traits={"at": NOW}), InvalidAccountError, "traits"),
        (lambda: Contact(id="c1", name="Ana\ud83d"), InvalidContactError, "name"),
        (lambda: Contact(id="c1", role="ad\x00min"), InvalidContactError, "role"),
        (lambda: Contact(id="c1", traits={"x": {1}}), InvalidContactError, "traits"),
        (lambda: Contact(id="c1", consent={"sms": b"y"}), InvalidContactError, "consent"),
    ],
)
def test_profile_text_and_traits_name_the_field(build, error, field):
    with pytest.raises(error) as info:
        build()
    assert info.value.field == field


def test_a_refused_profile_changes_nothing_stored(engine):
    engine.identify(Account(id="a1", name="Acme"))
    with pytest.raises(InvalidAccountError):
        engine.identify(Account(id="a1", name="Acme\ud800"))
    assert engine.store.get_account("a1").name == "Acme"


@pytest.mark.parametrize(
    "ids",
    [[10**30], [-1], [0], ["7"], [True], [1.5]],
    ids=["huge", "negative", "zero", "text", "bool", "float"],
)
def test_mark_read_names_an_id_that_cannot_be_a_row(engine, ids):
    with pytest.raises(InputError, match=r"inbox item id .* is not a row id"):
        engine.mark_read("c1", ids)


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("mysql://cs:hunter2@db.internal/cs", "runs on SQLite"),
        ("postgresql+pg8000://cs:hunter2@db.internal/cs", "driver is not installed"),
        ("not a url://", "does not parse"),
    ],
)
def test_an_unsupported_store_url_is_a_store_error_without_the_password(url, fragment):
    with pytest.raises(StoreError) as info:
        Store(url, migrate=False)
    assert fragment in str(info.value)
    assert "hunter2" not in str(info.value)


def test_a_long_or_chain_is_parsed_shallow_and_both_evaluators_agree(store):
    store.save_profiles(
        accounts=[
            Account(id=f"a{i}", traits={"plan": f"p{i}"}) for i in (1, MAX_TERMS - 1, MAX_TERMS)
        ],
        contacts=[Contact(id=f"c{i}", account_id=f"a{i}") for i in (1, MAX_TERMS - 1, MAX_TERMS)],
        now=NOW,
    )
    text = " or ".join(f'account.plan == "p{i}"' for i in range(MAX_TERMS))

    assert _depth(parse(text)) <= 10  # about log2(250), not 250
    inside = ["c1", f"c{MAX_TERMS - 1}"]
    assert matching_contact_ids(store, text, now=NOW) == inside
    in_python = [cid for cid, p in load_profiles(store).items() if evaluate(text, p, now=NOW)]
    assert sorted(in_python) == inside


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("(" * 2000 + "account.x" + ")" * 2000, "parentheses"),
        ("not " * 2000 + "true", "parentheses, 'not' or '-'"),
        ("-" * 2000 + "account.x", "parentheses, 'not' or '-'"),
        (" + ".join(["1"] * 1000) + " > 0", f"at most {MAX_SEGMENT_DEPTH}"),
        (" or ".join(["account.x == 1"] * 1000), f"more than {MAX_TERMS} terms joined by 'or'"),
        (" and ".join(["true"] * 1000), f"more than {MAX_TERMS} terms joined by 'and'"),
    ],
    ids=["parens", "not", "minus", "arith-chain", "or-chain", "and-chain"],
)
def test_deep_segment_expressions_are_config_errors(text, fragment):
    with pytest.raises(ConfigError) as info:
        parse(text, file="program.toml", key="segments.deep")
    assert fragment in str(info.value)
    assert "program.toml" in str(info.value)


def test_events_from_the_future_still_refused_after_the_checks(engine):
    later = engine.clock.now() + timedelta(days=1)
    with pytest.raises(InvalidEventError, match="ahead of the engine's clock"):
        engine.track("login", account_id="a1", occurred_at=later)
