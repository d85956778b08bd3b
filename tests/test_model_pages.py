"""A page of contacts or accounts checked column by column (``onetomany.model.pages``) accepts
only what ``Contact(**fields)`` / ``Account(**fields)`` accept, record by record, and builds the
same values."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from onetomany import Account, Contact
from onetomany.model.pages import (
    account_columns,
    checked_accounts,
    checked_contacts,
    contact_columns,
)

texts = st.one_of(
    st.sampled_from(["", " ", "ana", "Ana Lima", "x" * 255, "x" * 256, "a\x00b", "é", "\ud800"]),
    st.text(max_size=12),
)
optional = st.one_of(st.none(), texts, st.integers(0, 9))
emails = st.one_of(
    st.none(),
    st.sampled_from(
        ["ana@acme.test", " bo@acme.test ", "", "Ana@ACME.test", "no-at", "a@localhost", "é@x.test"]
    ),
)
phones = st.one_of(st.none(), st.sampled_from(["+5511912345678", "12", " ", "+1 202 555 0143"]))
zones = st.sampled_from(["UTC", "America/Sao_Paulo", "Nowhere/City", "", "../etc"])
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**64), 2**64),
    st.floats(),
    texts,
)
mappings = st.one_of(
    st.dictionaries(st.one_of(texts, st.integers(0, 3)), scalars, max_size=3),
    st.dictionaries(texts, st.lists(scalars, max_size=2), max_size=2),
    st.none(),
)
#: Each field a contact record may give, with values of every kind.
contact_values = {
    "account_id": optional,
    "name": optional,
    "email": emails,
    "phone": phones,
    "role": optional,
    "locale": optional,
    "timezone": zones,
    "consent": mappings,
    "traits": mappings,
}
fields = st.fixed_dictionaries({"id": st.one_of(texts, st.integers(0, 9))}, optional=contact_values)
plain = st.fixed_dictionaries(
    {"id": st.from_regex(r"u[0-9]{1,6}", fullmatch=True)},
    optional={
        "account_id": st.one_of(st.none(), st.just("acme")),
        "name": st.just("Ana Lima"),
        "email": st.one_of(st.none(), st.just("ana@acme.test")),
        "timezone": st.sampled_from(["UTC", "Europe/Lisbon"]),
        "traits": st.dictionaries(st.sampled_from("abc"), st.integers(0, 5), max_size=2),
    },
)


def _one_by_one(records, kind=Contact):
    try:
        return [kind(**r) for r in records]
    except Exception:
        return None


def _agree(fast, alone):
    """A page path's answer against each record built alone: ``None`` (the caller builds each
    record on its own, and that path decides), or the same values giving the same fields."""
    if fast is None:
        return
    assert alone is not None, "the page path accepted a record the value class refuses"
    assert fast == alone
    assert [v.given for v in fast] == [v.given for v in alone]


@settings(max_examples=400)
@given(st.lists(st.one_of(fields, plain), max_size=6))
@example([{"id": "u1", "email": "ana@acme.test", "traits": {"seats": 3}}])
@example([{"id": "u1", "traits": {"big": 2**63}}])
@example([{"id": "u1", "traits": {"nan": float("nan")}}])
def test_a_page_checked_by_column_agrees_with_each_record_checked_alone(records):
    fast = checked_contacts(records)
    alone = _one_by_one(records)
    _agree(fast, alone)


def test_a_plain_page_takes_the_column_path():
    records = [
        {"id": f"u{i}", "account_id": "acme", "email": f"p{i}@acme.test", "traits": {"n": i}}
        for i in range(50)
    ]
    assert checked_contacts(records) == [Contact(**r) for r in records]


account_fields = st.fixed_dictionaries(
    {"id": st.one_of(texts, st.integers(0, 9))},
    optional={"name": optional, "traits": mappings, "plan": st.just("pro")},
)
plain_accounts = st.fixed_dictionaries(
    {"id": st.from_regex(r"acct[0-9]{1,6}", fullmatch=True)},
    optional={"name": st.just("Acme"), "traits": st.just({"stripe_customer_id": "cus_1"})},
)


@settings(max_examples=300)
@given(st.lists(st.one_of(account_fields, plain_accounts), max_size=6))
def test_a_page_of_accounts_checked_by_column_agrees_with_each_alone(records):
    fast = checked_accounts(records)
    alone = _one_by_one(records, Account)
    _agree(fast, alone)


#: Values each page check accepts, mixed in often so that whole pages take the column path.
plain_values = {
    "account_id": st.just("acme"),
    "name": st.just("Ana Lima"),
    "email": st.just("ana@acme.test"),
    "phone": st.none(),
    "role": st.just("admin"),
    "locale": st.just("pt-BR"),
    "timezone": st.just("Europe/Lisbon"),
    "consent": st.just({"email": False}),
    "traits": st.dictionaries(st.sampled_from("abc"), st.integers(0, 5), max_size=2),
}
# Pages whose records all give the same fields: what a source reading rows has.
same_fields = st.sets(st.sampled_from(sorted(contact_values))).flatmap(
    lambda names: st.lists(
        st.fixed_dictionaries(
            {
                "id": st.one_of(texts, st.integers(0, 9), st.integers(0, 99999).map("u{}".format)),
                **{n: st.one_of(plain_values[n], contact_values[n]) for n in names},
            }
        ),
        min_size=1,
        max_size=6,
    )
)


def _columns(records):
    """The records' fields column by column, with their own copy of each dict (the column
    functions take theirs over)."""
    return {
        field: [dict(r[field]) if type(r[field]) is dict else r[field] for r in records]
        for field in records[0]
    }


@settings(max_examples=400)
@given(same_fields)
@example([{"id": "u1", "email": "ana@acme.test", "consent": {}, "traits": {"seats": 3}}])
@example(
    [
        {"id": "u1", "name": "Ana", "timezone": "Europe/Lisbon"},
        {"id": "u2", "name": "Bo", "timezone": "UTC"},
    ]
)
def test_a_page_given_as_columns_agrees_with_each_record_checked_alone(records):
    fast = contact_columns(_columns(records))
    alone = _one_by_one(records)
    _agree(fast, alone)


def test_a_plain_page_of_columns_takes_the_column_path():
    records = [{"id": f"u{i}", "email": f"p{i}@acme.test", "traits": {"n": i}} for i in range(50)]
    assert contact_columns(_columns(records)) == [Contact(**r) for r in records]
    assert [c.given for c in contact_columns(_columns(records))] == [
        frozenset({"id", "email", "traits"})
    ] * 50


@settings(max_examples=300)
@given(
    st.sets(st.sampled_from(["name", "traits"])).flatmap(
        lambda names: st.lists(
            st.fixed_dictionaries(
                {
                    "id": st.one_of(texts, st.integers(0, 9), st.just("acct1")),
                    **{n: {"name": optional, "traits": mappings}[n] for n in names},
                }
            ),
            min_size=1,
            max_size=6,
        )
    )
)
def test_accounts_given_as_columns_agree_with_each_alone(records):
    fast = account_columns(_columns(records))
    alone = _one_by_one(records, Account)
    _agree(fast, alone)


def test_the_defaults_of_a_page_are_the_contact_class_defaults():
    from onetomany.model.pages import _DEFAULTS

    bare = Contact(id="u1")
    assert {field: getattr(bare, field) for field in _DEFAULTS} == dict(_DEFAULTS)
    assert set(_DEFAULTS) | {"id", "consent", "traits"} == set(Contact.__slots__) - {
        "given",
        "__weakref__",
    }
