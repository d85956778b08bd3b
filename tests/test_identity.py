"""Identity across sources: one person known by email to one source and by its own id to
another is one contact; conflicting claims are reported with both sources named, never merged
or overwritten silently."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onetomany.errors import ConfigError
from onetomany.model import Contact, Event
from onetomany.plugins.syncing import run_sync
from onetomany.program import load_program
from onetomany.store import Store
from onetomany.store.queries.identity import claims_of_keys, forget_key
from onetomany.testing import StaticSource

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


def _sync(store: Store, name: str, *contacts: Contact, events=(), identity=("email",)):
    source = StaticSource(contacts=contacts, events=events)
    return run_sync(
        store, name, source, now=lambda: NOW, is_future=lambda e, at: False, identity=identity
    )


def test_one_person_in_two_sources_is_one_contact(temp_store):
    _sync(temp_store, "crm", Contact(id="hubspot-101", email="Ana@Acme.test", role="sponsor"))
    report = _sync(
        temp_store,
        "billing",
        Contact(id="cus_1", email="ana@acme.test", traits={"stripe_customer_id": "cus_1"}),
        events=[Event(name="payment_failed", contact_id="cus_1", occurred_at=NOW, id="e1")],
    )

    assert report.skipped == 0
    ana = temp_store.get_contact("hubspot-101")
    assert ana is not None
    assert (ana.role, ana.traits["stripe_customer_id"]) == ("sponsor", "cus_1")
    assert temp_store.get_contact("cus_1") is None
    # The billing source's own id now names the same contact, and so do its events.
    assert claims_of_keys(temp_store, ["id:billing:cus_1"])["id:billing:cus_1"].contact_id == (
        "hubspot-101"
    )
    [(_, event)] = temp_store.events_after(0)
    assert (event.name, event.contact_id) == ("payment_failed", "hubspot-101")


def test_a_later_sync_without_the_email_still_finds_the_contact_by_its_id(temp_store):
    _sync(temp_store, "crm", Contact(id="hubspot-101", email="ana@acme.test"))
    _sync(temp_store, "billing", Contact(id="cus_1", email="ana@acme.test"))
    _sync(temp_store, "billing", Contact(id="cus_1", traits={"plan": "pro"}))
    ana = temp_store.get_contact("hubspot-101")
    assert ana is not None and ana.traits["plan"] == "pro"
    assert temp_store.get_contact("cus_1") is None


def test_two_sources_claiming_different_contacts_is_a_conflict_naming_both(temp_store):
    _sync(temp_store, "crm", Contact(id="hubspot-101", email="ana@acme.test"))
    _sync(temp_store, "billing", Contact(id="cus_1", email="bo@acme.test"))
    # Billing now says its customer cus_1 is ana: but ana is the CRM's hubspot-101.
    report = _sync(temp_store, "billing", Contact(id="cus_1", email="ana@acme.test", name="X"))

    [skip] = report.skips
    assert skip.record == "billing contact cus_1"
    assert "email:ana@acme.test is contact 'hubspot-101' (claimed by source 'crm')" in skip.reason
    assert "id:billing:cus_1 is contact 'cus_1' (claimed by source 'billing')" in skip.reason
    assert report.cursor_held
    # Nothing was overwritten: each contact keeps what it had.
    assert temp_store.get_contact("hubspot-101").name == ""
    assert temp_store.get_contact("cus_1").email == "bo@acme.test"


def test_a_source_changing_a_contacts_email_is_a_conflict_until_the_key_is_forgotten(
    temp_store,
):
    _sync(temp_store, "crm", Contact(id="hubspot-101", email="ana@acme.test"))
    report = _sync(temp_store, "crm", Contact(id="hubspot-101", email="ana@globex.test"))
    [skip] = report.skips
    assert "source 'crm' changed the email of contact 'hubspot-101'" in skip.reason
    assert "'ana@acme.test' to 'ana@globex.test'" in skip.reason
    assert temp_store.get_contact("hubspot-101").email == "ana@acme.test"

    assert forget_key(temp_store, "email:ana@acme.test")
    report = _sync(temp_store, "crm", Contact(id="hubspot-101", email="ana@globex.test"))
    assert report.skipped == 0
    assert temp_store.get_contact("hubspot-101").email == "ana@globex.test"


def test_another_source_giving_a_different_email_is_a_conflict_naming_both(temp_store):
    _sync(temp_store, "crm", Contact(id="hubspot-101", email="ana@acme.test"))
    _sync(temp_store, "billing", Contact(id="cus_1", email="ana@acme.test"))
    report = _sync(temp_store, "billing", Contact(id="cus_1", email="ana@globex.test"))
    [skip] = report.skips
    assert "source 'billing' gives contact 'hubspot-101' the email 'ana@globex.test'" in (
        skip.reason
    )
    assert "its email is 'ana@acme.test' (claimed by source 'crm')" in skip.reason
    assert temp_store.get_contact("hubspot-101").email == "ana@acme.test"


def test_sources_without_identity_are_stored_as_given(temp_store):
    _sync(temp_store, "crm", Contact(id="a", email="ana@acme.test"), identity=())
    _sync(temp_store, "billing", Contact(id="b", email="ana@acme.test"), identity=())
    assert temp_store.get_contact("a") is not None and temp_store.get_contact("b") is not None
    assert claims_of_keys(temp_store, ["email:ana@acme.test"]) == {}


def test_the_program_reads_and_checks_identity(tmp_path):
    (tmp_path / "program.toml").write_text(
        '[program]\nname = "p"\n'
        '[sources.crm]\nplugin = "csv"\nidentity = ["email"]\n'
        '[sources.billing]\nplugin = "csv"\nidentity = ["customer"]\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_program(tmp_path / "program.toml")
    assert "sources.billing.identity" in str(caught.value)
    assert "expected a list of email, phone" in str(caught.value)


emails = st.sampled_from(["ana@a.test", "bo@a.test", "cy@b.test"])


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["crm", "billing"]), st.integers(0, 3), emails), max_size=12)
)
def test_no_email_ever_names_two_contacts(tmp_path_factory, records):
    """Whatever the sources send, in whatever order: every stored email belongs to one
    contact, and every key claimed names a stored contact."""
    store = Store(tmp_path_factory.mktemp("identity") / "s.db")
    try:
        for source, n, email in records:
            _sync(store, source, Contact(id=f"{source}-{n}", email=email))
        owners: dict[str, set[str]] = {}
        for contact in store.all_contacts():
            if contact.email:
                owners.setdefault(contact.email, set()).add(contact.id)
        assert all(len(ids) == 1 for ids in owners.values()), owners
        keys = [f"email:{e}" for e in owners]
        for claim in claims_of_keys(store, keys).values():
            assert store.get_contact(claim.contact_id) is not None
    finally:
        store.close()
