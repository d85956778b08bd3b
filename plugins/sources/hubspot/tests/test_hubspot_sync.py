"""The HubSpot source against the fake HubSpot: mapping, personas, owners, paging, the search
window, incremental reads, rate limits, scopes and the bad records a real portal holds."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import requests

from onetomany.engine import Engine
from onetomany.errors import ConfigError, InputError
from onetomany.model.clock import FrozenClock
from onetomany.plugins.manager import Plugins
from onetomany.plugins.settings import PluginSettings
from onetomany.plugins.sources import pages, read_all
from onetomany.program import Program
from onetomany.store import Store
from onetomany_hubspot import HubSpotSource
from onetomany_hubspot.client import HubSpotError, HubSpotScopeError, MalformedAnswerError
from onetomany_hubspot.testing import TOKEN

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


def _searches(hubspot, kind):
    return [
        body for method, path, body in hubspot.requests if path == f"/crm/v3/objects/{kind}/search"
    ]


def test_a_full_sync_maps_companies_owners_and_contacts(hubspot, make_source):
    csm = hubspot.owner("carla@vendor.test")
    acme = hubspot.company(
        name="Acme", domain="acme.test", industry="SOFTWARE", hubspot_owner_id=csm
    )
    hubspot.contact(
        companies=(acme,),
        email="ana@acme.test",
        firstname="Ana",
        lastname="Lima",
        hs_persona="persona_1",
        jobtitle="CTO",
    )

    result = read_all(make_source(roles={"persona_1": "sponsor", "persona_2": "analyst"}))

    [account] = result.accounts
    assert (account.id, account.name) == (acme, "Acme")
    assert account.traits == {
        "hubspot_company_id": acme,
        "domain": "acme.test",
        "industry": "SOFTWARE",
        "owner": "carla@vendor.test",
        "hubspot_owner_id": csm,
    }
    [contact] = result.contacts
    assert contact.id.startswith("hubspot-")
    assert (contact.account_id, contact.email, contact.name, contact.role) == (
        acme,
        "ana@acme.test",
        "Ana Lima",
        "sponsor",
    )
    assert contact.traits["jobtitle"] == "CTO"
    assert result.skipped == []


def test_an_account_property_names_the_account(hubspot, make_source):
    company = hubspot.company(name="Acme", account_id="acct-7")
    hubspot.contact(companies=(company,), email="ana@acme.test")
    result = read_all(make_source(account_property="account_id"))
    assert [a.id for a in result.accounts] == ["acct-7"]
    assert [c.account_id for c in result.contacts] == ["acct-7"]


def test_pages_follow_after_and_each_carries_its_newest_modification(hubspot, make_source):
    for n in range(5):
        hubspot.company(name=f"C{n}", modified=1_000_000 + n)
    found = list(pages(make_source(page_size=2).sync()))
    company_pages = [p for p in found if p.accounts]
    assert [len(p.accounts) for p in company_pages] == [2, 2, 1]
    assert [json.loads(p.cursor)["companies"] for p in company_pages] == [
        1_000_001,
        1_000_003,
        1_000_004,
    ]
    assert [b.get("after") for b in _searches(hubspot, "companies")] == [None, "2", "4"]


def test_an_incremental_sync_searches_from_the_cursor(hubspot, make_source):
    first = hubspot.company(name="Old", modified=1_000)
    hubspot.company(name="Older", modified=500)
    cursor = read_all(make_source()).cursor
    assert json.loads(cursor) == {"companies": 1_000, "contacts": None}

    hubspot.company(id=first, name="Renamed", modified=2_000)
    hubspot.requests.clear()
    result = read_all(make_source(), cursor=cursor)

    assert [a.name for a in result.accounts] == ["Renamed"]
    [search] = _searches(hubspot, "companies")
    assert search["filterGroups"] == [
        {"filters": [{"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": "1000"}]}
    ]
    assert search["sorts"] == [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}]
    assert json.loads(result.cursor)["companies"] == 2_000


def test_the_search_window_is_split_by_time(hubspot, make_source):
    """HubSpot pages one search through 10,000 results at most (6 here): the sync starts a
    new search from the last modification read and still reads every company once or more."""
    hubspot.window = 6
    made = {hubspot.company(name=f"C{n}", modified=1_000 + n) for n in range(15)}
    source = make_source(page_size=2)
    source.search_window = 6

    result = read_all(source)

    assert {a.id for a in result.accounts} == made
    starts = [
        b["filterGroups"][0]["filters"][0]["value"]
        for b in _searches(hubspot, "companies")
        if b["filterGroups"]
    ]
    assert starts[0] == "1005"  # the sixth company's time: the second window starts there
    assert all(int(b.get("after", 0)) + 2 <= 6 for b in _searches(hubspot, "companies"))


def test_more_than_a_window_at_one_instant_is_an_error(hubspot, make_source):
    hubspot.window = 4
    for n in range(6):
        hubspot.company(name=f"C{n}", modified=7_000)
    source = make_source(page_size=2)
    source.search_window = 4
    with pytest.raises(HubSpotError, match="more than 4 companies were modified at"):
        read_all(source)


def test_a_contact_in_two_companies_takes_the_primary_one(hubspot, make_source):
    a, b = hubspot.company(name="A"), hubspot.company(name="B")
    hubspot.contact(companies=(a, b), primary=b, email="ana@a.test")
    [contact] = read_all(make_source()).contacts
    assert contact.account_id == b


def test_a_contact_in_two_companies_and_no_primary_one_is_skipped_by_name(hubspot, make_source):
    a, b = hubspot.company(name="A"), hubspot.company(name="B")
    ident = hubspot.contact(companies=(a, b), primary="", email="ana@a.test")
    result = read_all(make_source())
    assert result.contacts == []
    [skip] = result.skipped
    assert skip.record == f"hubspot contact {ident}"
    assert "none of them is labelled primary" in skip.reason


def test_a_contact_in_two_companies_is_skipped_by_name_when_asked(hubspot, make_source):
    a, b = hubspot.company(name="A"), hubspot.company(name="B")
    ident = hubspot.contact(companies=(a, b), email="ana@a.test")
    hubspot.contact(companies=(a,), email="bo@a.test")
    result = read_all(make_source(two_companies="skip"))
    assert [c.email for c in result.contacts] == ["bo@a.test"]
    [skip] = result.skipped
    assert skip.record == f"hubspot contact {ident}"
    assert f"2 companies ({a}, {b})" in skip.reason


def test_bad_records_are_skipped_by_name_and_the_rest_read(hubspot, make_source):
    good = hubspot.company(name="Good", account_id="acct-1")
    nameless = hubspot.company(name="No account id")
    orphan = hubspot.company(name="Lost owner", account_id="acct-2", hubspot_owner_id="999")
    hubspot.contact(companies=(good,), email="ana@good.test", hs_persona="persona_9")
    hubspot.contact(companies=(good,), email="not an email")
    result = read_all(make_source(account_property="account_id", roles={"persona_1": "sponsor"}))
    assert [a.id for a in result.accounts] == ["acct-1"]
    reasons = {s.record: s.reason for s in result.skipped}
    assert "has no 'account_id' property" in reasons[f"hubspot company {nameless}"]
    assert "owner 999 is not among the owners" in reasons[f"hubspot company {orphan}"]
    assert len([r for r in reasons if r.startswith("hubspot contact")]) == 2
    assert any("persona_9" in r and "roles table" in r for r in reasons.values())
    assert any("email" in r for r in reasons.values())


def test_a_429_waits_as_long_as_hubspots_rate_limit_window(hubspot, make_source, waits):
    hubspot.company(name="Acme")
    hubspot.too_many = 2
    result = read_all(make_source())
    assert len(result.accounts) == 1
    assert len(waits) == 2
    assert all(w >= 10.0 for w in waits)  # X-HubSpot-RateLimit-Interval-Milliseconds: 10000


def test_the_daily_limit_stops_the_sync_without_retrying(hubspot, make_source, waits):
    hubspot.daily_limit = True
    with pytest.raises(HubSpotError, match="daily API limit"):
        read_all(make_source())
    assert waits == []


@pytest.mark.parametrize(
    "scope", ["crm.objects.owners.read", "crm.objects.companies.read", "crm.objects.contacts.read"]
)
def test_a_token_without_a_scope_names_it(hubspot, make_source, scope):
    hubspot.contact(email="ana@a.test")
    hubspot.missing_scopes.add(scope)
    with pytest.raises(HubSpotScopeError, match=f"lacks the scope {scope}"):
        read_all(make_source())


def test_a_wrong_token_is_a_clear_error(hubspot, make_source):
    with pytest.raises(HubSpotError, match="refused the token"):
        read_all(make_source(token="pat-na1-wrong"))


def test_a_malformed_page_is_an_error_naming_the_endpoint(hubspot, make_source):
    hubspot.malformed.add("/crm/v3/objects/contacts/search")
    with pytest.raises(MalformedAnswerError, match="/crm/v3/objects/contacts/search"):
        read_all(make_source())


def _engine(hubspot, tmp_path, **options):
    program = Program(
        name="p",
        sources={
            "crm": PluginSettings(
                name="crm",
                plugin="hubspot",
                options={"base_url": hubspot.url, "token": TOKEN, **options},
            )
        },
        base_dir=tmp_path,
        templates_dir=tmp_path,
    )
    store = Store(tmp_path / "s.db")
    return store, Engine(program, store=store, clock=FrozenClock(NOW), plugins=Plugins())


def test_through_the_engine_the_cursor_stops_before_a_skipped_contact(hubspot, tmp_path):
    company = hubspot.company(name="Acme", modified=100)
    hubspot.contact(
        companies=(company,), email="ana@acme.test", hs_persona="persona_1", modified=200
    )
    broken = hubspot.contact(
        companies=(company,), email="bo@acme.test", hs_persona="persona_9", modified=300
    )
    store, engine = _engine(hubspot, tmp_path, roles={"persona_1": "sponsor"}, page_size=1)
    with engine:
        [report] = engine.sync()
        assert report.cursor_held and report.skipped == 1
        assert store.get_contact("hubspot-" + broken) is None
        assert store.get_account(company) is not None
        # The stored cursor stops at the page before the skip: the next sync reads it again.
        assert json.loads(store.get_cursor("source:crm")) == {"companies": 100, "contacts": 200}


def test_through_the_engine_a_missing_scope_keeps_what_was_stored(hubspot, tmp_path):
    company = hubspot.company(name="Acme", modified=100)
    hubspot.contact(companies=(company,), email="ana@acme.test", modified=200)
    store, engine = _engine(hubspot, tmp_path)
    hubspot.missing_scopes.add("crm.objects.contacts.read")
    with engine:
        with pytest.raises(HubSpotScopeError):
            engine.sync()
        assert store.get_account(company) is not None
        assert json.loads(store.get_cursor("source:crm")) == {"companies": 100, "contacts": None}
        hubspot.missing_scopes.clear()
        [report] = engine.sync()
        assert report.contacts == 1


def test_the_fake_refuses_what_hubspot_refuses(hubspot):
    response = requests.post(
        f"{hubspot.url}/crm/v3/objects/companies/search",
        json={"limit": 500},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=5,
    )
    assert response.status_code == 400
    assert response.json()["category"] == "VALIDATION_ERROR"
    assert len(hubspot.refused) == 1
    hubspot.refused.clear()


@pytest.mark.parametrize(
    ("options", "key", "reason"),
    [
        ({"token_env": "ONETOMANY_NO_SUCH_VAR"}, "crm.token_env", "ONETOMANY_NO_SUCH_VAR"),
        ({"token": TOKEN, "page_size": 500}, "crm.page_size", "1 to 200"),
        ({"token": TOKEN, "two_companies": "first"}, "crm.two_companies", "primary"),
        ({"token": TOKEN, "apikey": "x"}, "crm.apikey", "unknown option"),
    ],
)
def test_bad_options_name_their_key(options, key, reason):
    with pytest.raises(ConfigError) as caught:
        HubSpotSource(PluginSettings(name="crm", plugin="hubspot", options=options))
    assert caught.value.key == key
    assert reason in str(caught.value)


def test_the_token_never_shows(make_source):
    source = make_source()
    assert TOKEN not in repr(source)
    assert TOKEN not in repr(source.options)


def test_a_cursor_it_did_not_write_is_refused(make_source):
    with pytest.raises(InputError, match="run onetomany sync --full"):
        read_all(make_source(), cursor="12345")


def test_a_hubspot_contact_and_a_billing_customer_with_one_email_are_one_contact(
    hubspot, make_source, tmp_path
):
    from onetomany.model import Contact
    from onetomany.plugins.syncing import run_sync
    from onetomany.testing import StaticSource

    company = hubspot.company(name="Acme")
    ident = hubspot.contact(companies=(company,), email="ana@acme.test", hs_persona="sponsor")
    billing = StaticSource(
        contacts=[
            Contact(id="cus_1", email="ANA@acme.test", traits={"stripe_customer_id": "cus_1"})
        ]
    )
    store = Store(tmp_path / "s.db")

    def sync(name, source):
        return run_sync(
            store, name, source, now=lambda: NOW, is_future=lambda e, at: False, identity=["email"]
        )

    sync("crm", make_source())
    sync("billing", billing)
    [ana] = store.all_contacts()
    assert ana.id == f"hubspot-{ident}"
    assert (ana.role, ana.account_id, ana.traits["stripe_customer_id"]) == (
        "sponsor",
        company,
        "cus_1",
    )
    store.close()
