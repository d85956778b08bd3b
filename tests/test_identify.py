"""``identify`` changes only what it is told: fields not given keep their stored values.

Engine-level tests run on SQLite and PostgreSQL (the ``engine`` fixture); the property folds
random partial profiles over the defaults and compares with what the store keeps.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onetomany import UNSET, Account, Contact
from onetomany.store import Store

FULL = Contact(
    id="c1",
    account_id="a1",
    name="Nancy Davolio",
    email="nancy@northwind.test",
    phone="+5511912345678",
    role="admin",
    locale="pt-BR",
    timezone="America/Sao_Paulo",
    consent={"email": True, "sms": False},
    traits={"seats": 3, "title": "CTO"},
)


def test_a_partial_contact_keeps_every_field_it_does_not_give(engine):
    engine.identify(FULL)
    engine.identify(Contact(id="c1", account_id="a1", traits={"seats": 9}))
    assert engine.store.get_contact("c1") == attrs.evolve(FULL, traits={"seats": 9, "title": "CTO"})


def test_a_partial_account_keeps_its_traits(engine):
    engine.identify(Account(id="a1", name="Northwind", traits={"plan": "pro", "seats": 10}))
    engine.identify(Account(id="a1", name="New"))
    assert engine.store.get_account("a1") == Account(
        id="a1", name="New", traits={"plan": "pro", "seats": 10}
    )


def test_none_clears_a_field_or_a_trait(engine):
    engine.identify(FULL)
    engine.identify(Contact(id="c1", email=None, phone=None, traits={"title": None}))
    stored = engine.store.get_contact("c1")
    assert (stored.email, stored.phone, stored.traits) == (None, None, {"seats": 3})
    assert (stored.role, stored.locale) == ("admin", "pt-BR")


def test_consent_merges_channel_by_channel(engine):
    engine.identify(FULL)
    engine.identify(Contact(id="c1", consent={"whatsapp": False, "sms": True}))
    assert engine.store.get_contact("c1").consent == {
        "email": True,
        "sms": True,
        "whatsapp": False,
    }


def test_a_new_contact_gets_the_defaults(engine):
    engine.identify(Contact(id="c9", traits={"seats": 1}))
    assert engine.store.get_contact("c9") == Contact(
        id="c9",
        account_id=None,
        name="",
        email=None,
        phone=None,
        role=None,
        locale="en",
        timezone="UTC",
        consent={},
        traits={"seats": 1},
    )


def test_a_contact_remembers_what_was_given_and_reads_defaults_for_the_rest():
    contact = Contact(id="c1", email=None, traits={"seats": 1})
    assert contact.given == {"id", "email", "traits"}
    assert (contact.locale, contact.email, contact.role) == ("en", None, None)
    assert contact == Contact(id="c1", traits={"seats": 1})  # ``given`` is not compared
    assert attrs.evolve(contact, role="admin").given == {f.name for f in _init_fields(Contact)}
    assert "given" not in repr(contact)
    assert repr(UNSET) == "UNSET"


def test_from_mapping_gives_only_the_keys_present():
    account = Account.from_mapping({"id": "a1", "plan": "pro"})
    assert account.given == {"id", "traits"}
    assert Account.from_mapping({"id": "a1"}).given == {"id"}
    contact = Contact.from_mapping({"id": "c1", "locale": "de", "seats": 3})
    assert contact.given == {"id", "locale", "traits"}
    assert contact.traits == {"seats": 3}


def _init_fields(cls: type) -> list[attrs.Attribute[Any]]:
    return [f for f in attrs.fields(cls) if f.init]


# -- the property: any sequence of partial identifies folds the given fields over defaults ---

DEFAULTS: Mapping[str, Any] = {
    "account_id": None,
    "name": "",
    "email": None,
    "phone": None,
    "role": None,
    "locale": "en",
    "timezone": "UTC",
    "consent": {},
    "traits": {},
}

TRAIT_VALUES = st.none() | st.integers(-5, 5) | st.sampled_from(["a", "b", ""]) | st.booleans()
FIELDS: Mapping[str, st.SearchStrategy[Any]] = {
    "account_id": st.none() | st.sampled_from(["a1", "a2"]),
    "name": st.sampled_from(["", "Ana", "Bo Li"]),
    "email": st.none() | st.sampled_from(["ana@acme.test", "bo@globex.test"]),
    "phone": st.none() | st.sampled_from(["+5511912345678", "+14155552671"]),
    "role": st.none() | st.sampled_from(["admin", "sponsor"]),
    "locale": st.sampled_from(["en", "pt-BR", "de"]),
    "timezone": st.sampled_from(["UTC", "Europe/Lisbon"]),
    "consent": st.dictionaries(st.sampled_from(["email", "sms", "inapp"]), st.booleans()),
    "traits": st.dictionaries(st.sampled_from(["plan", "seats", "beta"]), TRAIT_VALUES),
}
PARTIALS = st.lists(st.fixed_dictionaries({}, optional=dict(FIELDS)), min_size=1, max_size=5)


def fold(partials: list[dict[str, Any]]) -> dict[str, Any]:
    """What the store must keep: each given field over the last, maps merged key by key."""
    expected = dict(DEFAULTS)
    for partial in partials:
        for name, value in partial.items():
            if name == "traits":
                merged = {**expected["traits"], **value}
                expected["traits"] = {k: v for k, v in merged.items() if v is not None}
            elif name == "consent":
                expected["consent"] = {**expected["consent"], **value}
            else:
                expected[name] = value
    return expected


def stored_fields(contact: Contact | None) -> dict[str, Any]:
    assert contact is not None
    return {name: getattr(contact, name) for name in DEFAULTS}


@pytest.fixture(scope="module")
def property_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    store = Store(Path(tmp_path_factory.mktemp("identify")) / "store.db")
    yield store
    store.close()


_ids = itertools.count()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(partials=PARTIALS)
def test_partial_identifies_fold_the_given_fields_over_the_defaults(property_store, partials):
    from datetime import UTC, datetime

    now = datetime(2026, 1, 5, tzinfo=UTC)
    one_by_one, in_one_batch = f"p{next(_ids)}", f"q{next(_ids)}"
    for partial in partials:
        property_store.save_profiles(contacts=[Contact(id=one_by_one, **partial)], now=now)
    property_store.save_profiles(
        contacts=[Contact(id=in_one_batch, **partial) for partial in partials], now=now
    )
    expected = fold(partials)
    assert stored_fields(property_store.get_contact(one_by_one)) == expected
    assert stored_fields(property_store.get_contact(in_one_batch)) == expected
