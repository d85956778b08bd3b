"""An account's billing is the sum over all its live subscriptions, of all its customers,
with every item read: on a full read, on a re-read after a subscription event, and as a rule
for any set of subscriptions."""

from __future__ import annotations

import json
import math

from conftest import NOW
from hypothesis import given
from hypothesis import strategies as st

from onetomany.plugins.sources import read_all
from onetomany_stripe.mapping import LIVE, Subscription, billing_traits, read_subscription
from onetomany_stripe.options import StripeOptions

T = int(NOW.timestamp())


def _billing(result, account):
    [traits] = [a.traits for a in result.accounts if a.id == account and "mrr" in a.traits]
    return dict(traits)


def test_an_account_sums_its_live_subscriptions_and_takes_the_largest_plan(stripe, make_source):
    stripe.customer("cus_1", account_id="acme")
    stripe.subscription("cus_1", amount=2000, quantity=3, plan="team")  # 60.00
    stripe.subscription("cus_1", amount=9000, plan="scale", status="trialing")  # 90.00
    stripe.subscription("cus_1", amount=1000, plan="addon", status="past_due")  # 10.00
    stripe.subscription("cus_1", amount=50000, plan="old", status="canceled")
    stripe.subscription("cus_1", amount=70000, plan="unpaid", status="unpaid")
    assert _billing(read_all(make_source()), "acme") == {
        "plan": "scale",
        "seats": 5,
        "mrr": 160.0,
        "subscription_status": "trialing",
    }


def test_customers_mapped_to_one_account_are_summed(stripe, make_source):
    stripe.customer("cus_1", account_id="acme")
    stripe.customer("cus_2", account_id="acme")
    stripe.subscription("cus_1", amount=2000, plan="team")
    stripe.subscription("cus_2", amount=3000, quantity=2, plan="team-eu")
    result = read_all(make_source(page_size=1))
    assert _billing(result, "acme") == {
        "plan": "team-eu",
        "seats": 3,
        "mrr": 80.0,
        "subscription_status": "active",
    }


def test_a_full_read_lists_canceled_subscriptions_so_they_clear_billing(stripe, make_source):
    stripe.customer("cus_1", account_id="acme")
    stripe.subscription("cus_1", amount=2000, status="canceled", created=T - 100)
    stripe.subscription("cus_1", amount=2000, status="incomplete_expired", created=T - 200)
    assert _billing(read_all(make_source()), "acme") == {
        "plan": None,
        "seats": 0,
        "mrr": 0.0,
        "subscription_status": "canceled",
    }
    listed = [args for path, args in stripe.requests if path == "/v1/subscriptions"]
    assert [a["status"] for a in listed] == [["all"]]


def test_every_item_counts_past_the_ten_stripe_embeds(stripe, make_source):
    stripe.customer("cus_1", account_id="acme")
    items = [{"amount": 100 * (n + 1), "plan": f"p{n}"} for n in range(13)]
    stripe.subscription("cus_1", items=items)
    assert _billing(read_all(make_source()), "acme")["mrr"] == sum(n + 1 for n in range(13))
    [(_, args)] = [r for r in stripe.requests if r[0] == "/v1/subscription_items"]
    assert args["starting_after"] == [stripe.objects["subscriptions"][0]["items"]["data"][9]["id"]]


def test_a_subscription_that_cannot_be_read_leaves_its_account_as_it_was(stripe, make_source):
    stripe.customer("cus_1", account_id="acme")
    stripe.customer("cus_2", account_id="globex")
    stripe.subscription("cus_1", amount=2000)
    bad = stripe.subscription("cus_1", currency="jpy")
    stripe.subscription("cus_2", amount=2000)
    result = read_all(make_source())
    # Half of acme's sum would be a wrong MRR: none is given; globex is unaffected.
    assert [a.id for a in result.accounts if "mrr" in a.traits] == ["globex"]
    [skip] = result.skipped
    assert str(skip).startswith(f"stripe subscription {bad['id']} (customer cus_1): price")
    assert "is in JPY" in str(skip) and "account 'acme' keeps its plan, seats and MRR" in str(skip)


def _incremental(stripe, make_source, kind, subscription, **options):
    mark = stripe.event("customer.created", {"id": "cus_1", "object": "customer"}, created=T - 50)
    stripe.event(kind, subscription, created=T - 10)
    cursor = json.dumps({"event": mark["id"], "created": NOW.isoformat()})
    return read_all(make_source(**options), cursor=cursor)


def test_a_subscription_event_reads_all_the_accounts_subscriptions_again(stripe, make_source):
    stripe.customer("cus_1", account_id="acme")
    stripe.customer("cus_2", account_id="acme")
    stripe.customer("cus_3", account_id="globex")
    stripe.subscription("cus_1", amount=2000, plan="team")
    stripe.subscription("cus_3", amount=9900, plan="scale")
    changed = stripe.subscription("cus_2", amount=3000, plan="team-eu")
    gone = stripe.subscription("cus_2", amount=8000, plan="old", status="canceled")
    stripe.event("customer.subscription.deleted", gone, created=T - 20)
    result = _incremental(stripe, make_source, "customer.subscription.updated", changed)
    # One re-read for both events, over both of acme's customers (found by search).
    assert _billing(result, "acme") == {
        "plan": "team-eu",
        "seats": 2,
        "mrr": 50.0,
        "subscription_status": "active",
    }
    searched = [args["query"] for path, args in stripe.requests if "search" in path]
    assert searched == [['metadata["account_id"]:"acme"']]


def test_a_re_read_by_email_domain_counts_only_customers_of_the_account(stripe, make_source):
    stripe.customer("cus_1", email="ana@acme.test")
    stripe.customer("cus_2", email="bo@eu.acme.test")
    stripe.customer("cus_3", email="cy@notacme.test")  # an email search matches it too
    stripe.subscription("cus_1", amount=2000)
    stripe.subscription("cus_3", amount=9900)
    changed = stripe.subscription("cus_2", amount=3000)
    domains = {"acme.test": "acme", "eu.acme.test": "acme", "notacme.test": "other"}
    result = _incremental(
        stripe,
        make_source,
        "customer.subscription.created",
        changed,
        account_from="email_domain",
        domains=domains,
    )
    assert _billing(result, "acme")["mrr"] == 50.0
    searched = [args["query"] for path, args in stripe.requests if "search" in path]
    assert searched == [['email~"acme.test" OR email~"eu.acme.test"']]


OPTIONS = StripeOptions(
    api_key="rk_test_x",
    base_url="http://localhost",
    account_from="metadata",
    metadata_key="account_id",
    domains={},
    currencies={"usd": 1.0, "eur": 2.0},
    page_size=100,
    event_retention_days=30,
)
MONTHS = {("month", 1): 1.0, ("month", 3): 3.0, ("year", 1): 12.0}
STATUSES = sorted(LIVE | {"canceled", "unpaid", "paused", "incomplete", "incomplete_expired"})

items = st.lists(
    st.tuples(
        st.integers(0, 10**7),  # unit_amount, in cents
        st.integers(1, 500),  # quantity
        st.sampled_from(["usd", "eur"]),
        st.sampled_from(sorted(MONTHS)),
        st.sampled_from(["a", "b", "c"]),  # plan
    ),
    min_size=1,
    max_size=15,
)


def _subscription(n, status, item_list):
    return {
        "id": f"sub_{n}",
        "status": status,
        "created": n,
        "items": [
            {
                "quantity": quantity,
                "price": {
                    "id": "price",
                    "currency": currency,
                    "lookup_key": plan,
                    "unit_amount": amount,
                    "recurring": {"interval": interval, "interval_count": count},
                },
            }
            for amount, quantity, currency, (interval, count), plan in item_list
        ],
    }


@given(st.lists(st.tuples(st.sampled_from(STATUSES), items), max_size=8), st.randoms())
def test_mrr_and_seats_are_the_sums_over_live_subscriptions_in_any_order(subscriptions, rnd):
    raw = [_subscription(n, status, i) for n, (status, i) in enumerate(subscriptions)]
    read = [read_subscription(s, s["items"], OPTIONS) for s in raw]
    shuffled = list(read)
    rnd.shuffle(shuffled)
    traits = billing_traits(read)
    assert billing_traits(shuffled) == traits

    live = [s for s in raw if s["status"] in LIVE]
    expected = math.fsum(
        i["price"]["unit_amount"]
        / 100
        * i["quantity"]
        * OPTIONS.currencies[i["price"]["currency"]]
        / MONTHS[(i["price"]["recurring"]["interval"], i["price"]["recurring"]["interval_count"])]
        for s in live
        for i in s["items"]
    )
    # Rounded to the cent once (the expected sum is computed in another order: a cent's
    # half may round either way).
    assert abs(traits["mrr"] - expected) <= 0.005 + 1e-9 * max(1.0, expected)
    assert traits["seats"] == sum(i["quantity"] for s in live for i in s["items"])
    if live:
        top: Subscription = max((r for r in read if r.status in LIVE), key=lambda r: r.mrr)
        assert traits["plan"] is not None
        assert math.isclose(
            max(r.mrr for r in read if r.plan == traits["plan"] and r.status in LIVE), top.mrr
        )
    else:
        assert (traits["plan"], traits["mrr"]) == (None, 0.0)
