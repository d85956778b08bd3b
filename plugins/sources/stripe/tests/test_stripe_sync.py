"""The Stripe source against the fake Stripe: mapping, MRR, overdue invoices, events, paging,
rate limits, expired cursors and the bad input a real account holds."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import requests
from conftest import NOW
from fake_stripe import KEY

from onetomany.engine import Engine
from onetomany.errors import ConfigError, InputError
from onetomany.model.clock import FrozenClock
from onetomany.plugins.manager import Plugins
from onetomany.plugins.settings import PluginSettings
from onetomany.plugins.sources import pages, read_all
from onetomany.program import Program
from onetomany.store import Store
from onetomany_stripe.client import MalformedPageError, StripePermissionError

T = int(NOW.timestamp())
DAY = 86400


def _accounts(result):
    merged = {}
    for account in result.accounts:
        merged[account.id] = {**merged.get(account.id, {}), **account.traits}
    return merged


def test_a_full_sync_maps_customers_subscriptions_and_overdue_invoices(stripe, make_source):
    stripe.customer("cus_1", email="ana@acme.test", account_id="acme")
    stripe.customer("cus_2", email="bo@globex.test", account_id="globex")
    stripe.subscription("cus_1", amount=2500, quantity=4, plan="team")  # 25.00 x 4 a month
    stripe.subscription("cus_2", amount=120000, currency="eur", interval="year", plan="scale")
    stripe.invoice("cus_1", due_date=T - 41 * DAY)
    stripe.invoice("cus_2", due_date=T + 5 * DAY)  # open, not yet due
    stripe.event("customer.created", {"id": "cus_2", "object": "customer"}, created=T - 60)

    result = read_all(make_source(currencies={"usd": 1.0, "eur": 1.1}))
    accounts = _accounts(result)
    assert accounts["acme"] == {
        "stripe_customer_id": "cus_1",
        "plan": "team",
        "seats": 4,
        "mrr": 100.0,
        "subscription_status": "active",
        "overdue_days": 41,
        "overdue_since": (NOW - timedelta(days=41)).date().isoformat(),
    }
    # 1,200.00 EUR a year is 100.00 EUR a month, 110.00 in the program's currency.
    assert accounts["globex"]["mrr"] == 110.0
    assert "overdue_days" not in accounts["globex"]
    [overdue] = result.events
    assert (overdue.name, overdue.account_id) == ("invoice_overdue", "acme")
    assert overdue.occurred_at == NOW.replace(hour=12) - timedelta(days=41)
    assert json.loads(result.cursor)["event"] == stripe.objects["events"][0]["id"]
    assert result.skipped == []


@pytest.mark.parametrize(
    ("interval", "count", "amount", "mrr"),
    [
        ("month", 1, 3000, 30.0),
        ("month", 3, 9000, 30.0),  # quarterly
        ("year", 1, 36000, 30.0),
        ("week", 2, 1000, 21.74),  # 10.00 every two weeks: 52.1775 / 2 / 12 times a month
        ("day", 1, 100, 30.44),
    ],
)
def test_mrr_is_normalised_to_a_month(stripe, make_source, interval, count, amount, mrr):
    stripe.customer("cus_1", account_id="acme")
    stripe.subscription("cus_1", amount=amount, interval=interval, interval_count=count)
    assert _accounts(read_all(make_source()))["acme"]["mrr"] == mrr


def test_email_domain_mapping(stripe, make_source):
    stripe.customer("cus_1", email="ana@Acme.test")
    source = make_source(account_from="email_domain", domains={"acme.test": "acme"})
    assert [a.id for a in read_all(source).accounts] == ["acme"]


def test_lists_are_read_page_by_page(stripe, make_source):
    for i in range(5):
        stripe.customer(f"cus_{i}", account_id=f"a{i}")
    synced = list(pages(make_source(page_size=2).sync()))
    assert [len(p.accounts) for p in synced[:3]] == [2, 2, 1]
    customers = [args for path, args in stripe.requests if path == "/v1/customers"]
    assert [a.get("starting_after") for a in customers] == [None, ["cus_3"], ["cus_1"]]
    assert all(a["limit"] == ["2"] for a in customers)


def test_bad_records_are_skipped_by_name_and_the_rest_read(stripe, make_source):
    stripe.customer("cus_ok", account_id="acme")
    stripe.customer("cus_nomap", email="x@nowhere.test")
    stripe.customer("cus_jpy", account_id="nihon")
    stripe.subscription("cus_ok")
    stripe.subscription("cus_jpy", currency="jpy", amount=1000)
    stripe.subscription("cus_nomap")
    result = read_all(make_source())
    reasons = sorted(str(s) for s in result.skipped)
    assert reasons[0].startswith("stripe customer cus_nomap: no metadata['account_id']")
    assert "stripe subscription sub_" in reasons[1] and "(customer cus_jpy)" in reasons[1]
    assert "is in JPY, which the program's currencies do not list (usd)" in reasons[1]
    assert "(customer cus_nomap): no metadata['account_id']" in reasons[2]
    assert _accounts(result)["acme"]["mrr"] == 50.0


def test_an_incremental_sync_reads_events_after_the_cursor_oldest_first(stripe, make_source):
    stripe.customer("cus_1", account_id="acme")
    mark = stripe.event("customer.created", {"id": "cus_1", "object": "customer"}, created=T - 50)
    cursor = json.dumps({"event": mark["id"], "created": NOW.isoformat()})
    old = stripe.subscription("cus_1", plan="team")
    new = stripe.subscription("cus_1", plan="scale", amount=9900)
    stripe.event(
        "customer.subscription.updated",
        new | {"id": old["id"]},
        created=T - 40,
        previous={"items": old["items"]},
    )
    invoice = stripe.invoice("cus_1", due_date=T - 3 * DAY)
    stripe.event("invoice.payment_failed", invoice, created=T - 30)
    stripe.event("invoice.overdue", invoice, created=T - 20)
    stripe.event("customer.subscription.deleted", old | {"status": "canceled"}, created=T - 10)
    old["status"] = "canceled"  # Stripe's state when the sync runs

    synced = list(pages(make_source(page_size=2).sync(cursor=cursor)))
    names = [e.name for p in synced for e in p.events]
    assert names == ["plan_changed", "payment_failed", "invoice_overdue", "subscription_canceled"]
    changed = synced[0].events[0]
    assert dict(changed.properties) == {"subscription": old["id"], "from": "team", "to": "scale"}
    # Each subscription event reads the account's subscriptions again: only "scale" is live.
    billed = [a.traits for p in synced for a in p.accounts if "plan" in a.traits]
    assert [(t["plan"], t["mrr"]) for t in billed] == [("scale", 99.0), ("scale", 99.0)]
    newest = stripe.objects["events"][0]["id"]
    assert json.loads(synced[-1].cursor)["event"] == newest
    # The customer was looked up once, for all its events.
    assert list(stripe.paths()).count("/v1/customers/cus_1") == 1


def test_an_expired_event_cursor_falls_back_to_a_full_read(stripe, make_source, caplog):
    stripe.customer("cus_1", account_id="acme")
    gone = stripe.event("customer.created", {"id": "cus_1", "object": "customer"}, created=T)
    stripe.expired.add(gone["id"])
    cursor = json.dumps({"event": gone["id"], "created": NOW.isoformat()})
    result = read_all(make_source(), cursor=cursor)
    assert [a.id for a in result.accounts] == ["acme"]
    assert "no longer has event" in caplog.text


def test_a_cursor_older_than_stripe_keeps_events_reads_everything(stripe, make_source, caplog):
    stripe.customer("cus_1", account_id="acme")
    old = json.dumps({"event": "evt_old", "created": (NOW - timedelta(days=31)).isoformat()})
    assert [a.id for a in read_all(make_source(), cursor=old).accounts] == ["acme"]
    assert "older than Stripe keeps events" in caplog.text
    assert "/v1/customers" in stripe.paths()


def test_a_429_is_retried_after_retry_after(stripe, make_source, waits):
    stripe.customer("cus_1", account_id="acme")
    stripe.too_many, stripe.retry_after = 2, "7"
    assert [a.id for a in read_all(make_source()).accounts] == ["acme"]
    assert waits == [7.0, 7.0]


def test_a_key_without_permission_names_the_endpoint_and_the_permission(stripe, make_source):
    stripe.customer("cus_1", account_id="acme")
    stripe.forbidden.add("subscriptions")
    with pytest.raises(StripePermissionError) as caught:
        read_all(make_source())
    assert "may not GET /v1/subscriptions" in str(caught.value)
    assert "'Subscriptions: Read'" in str(caught.value)


def test_a_malformed_page_is_an_error_naming_the_endpoint(stripe, make_source):
    stripe.malformed.add("customers")
    with pytest.raises(MalformedPageError, match=r"GET /v1/customers .* is not a Stripe list"):
        read_all(make_source())


def test_through_the_engine_a_refused_endpoint_keeps_what_was_stored(stripe, tmp_path, monkeypatch):
    """Customers' pages stored, the sync recorded as failed, the cursor not set."""
    stripe.customer("cus_1", account_id="acme")
    stripe.event("customer.created", {"id": "cus_1", "object": "customer"}, created=T)
    stripe.forbidden.add("invoices")
    monkeypatch.setenv("STRIPE_API_KEY", KEY)
    program = Program(
        name="p",
        sources={
            "billing": PluginSettings(
                name="billing", plugin="stripe", options={"base_url": stripe.url}
            )
        },
        base_dir=tmp_path,
        templates_dir=tmp_path,
    )
    store = Store(tmp_path / "s.db")
    with Engine(program, store=store, clock=FrozenClock(NOW), plugins=Plugins()) as engine:
        with pytest.raises(StripePermissionError):
            engine.sync()
        assert store.get_account("acme") is not None
        assert store.get_cursor("source:billing") is None

        stripe.forbidden.clear()
        [report] = engine.sync()
        assert json.loads(store.get_cursor("source:billing"))["event"].startswith("evt_")
        assert report.accounts == 1


def test_the_fake_refuses_what_stripe_refuses(stripe):
    # The validation is real: a limit that is not an integer fails Stripe's document.
    response = requests.get(
        f"{stripe.url}/v1/customers",
        params={"limit": "many"},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=5,
    )
    assert response.status_code == 400
    assert len(stripe.invalid) == 1
    stripe.invalid.clear()


@pytest.mark.parametrize(
    ("options", "key", "reason"),
    [
        ({"api_key": "pk_test_123"}, "billing.api_key", "secret (sk_...) or restricted"),
        ({"api_key_env": "ONETOMANY_NO_SUCH_VAR"}, "billing.api_key_env", "is unset"),
        ({"api_key": KEY, "account_from": "name"}, "billing.account_from", "expected one of"),
        ({"api_key": KEY, "account_from": "email_domain"}, "billing.domains", "needs a domains"),
        ({"api_key": KEY, "currencies": {"eur": 0}}, "billing.currencies.eur", "positive rate"),
        ({"api_key": KEY, "page_size": 500}, "billing.page_size", "1 to 100"),
        ({"api_key": KEY, "apikey": "x"}, "billing.apikey", "unknown option"),
    ],
)
def test_bad_options_name_their_key(tmp_path, options, key, reason):
    from onetomany_stripe import StripeSource

    with pytest.raises(ConfigError) as caught:
        StripeSource(PluginSettings(name="billing", plugin="stripe", options=options))
    assert caught.value.key == key
    assert reason in str(caught.value)
    assert "pk_test_123" not in str(caught.value)


def test_the_key_never_shows(make_source):
    source = make_source()
    assert KEY not in repr(source)
    assert KEY not in repr(source.options)


def test_a_cursor_it_did_not_write_is_refused(make_source):
    with pytest.raises(InputError, match="run onetomany sync --full"):
        read_all(make_source(), cursor="evt_123")
