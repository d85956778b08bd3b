"""Stripe objects into the program's accounts and events: pure functions, no I/O.

- A customer is an account: by the customer's ``metadata[metadata_key]``, or by its email's
  domain through the ``domains`` table. A customer neither maps is skipped, by id.
- An account's subscriptions (of all its customers) give it ``mrr`` and ``seats``, the sums
  over its live subscriptions (:data:`LIVE`; each item's price normalised to one month and
  converted with ``currencies``), ``plan`` and ``subscription_status`` of its live
  subscription with the largest MRR. With none live: no plan, 0 seats and MRR, and the status
  of its newest subscription. A price in a currency the program does not list is skipped.
- An open invoice past its due date gives ``overdue_since`` / ``overdue_days`` and an
  ``invoice_overdue`` event dated at the due date (one per invoice, whichever way it is read).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import attrs

from onetomany.model import Account, Event
from onetomany_stripe.options import StripeOptions

#: Stripe's zero-decimal currencies: amounts are whole units, not cents.
ZERO_DECIMAL: Final = frozenset(
    [
        "bif",
        "clp",
        "djf",
        "gnf",
        "jpy",
        "kmf",
        "krw",
        "mga",
        "pyg",
        "rwf",
        "ugx",
        "vnd",
        "vuv",
        "xaf",
        "xof",
        "xpf",
    ]
)
#: Months in one billing interval of each kind.
MONTHS: Final[Mapping[str, float]] = {"day": 12 / 365.25, "week": 12 / 52.1775, "month": 1.0}
MONTHS_PER_YEAR: Final = 12.0
#: Subscription statuses that bring revenue: their MRR and seats count. Stripe's others
#: (incomplete, incomplete_expired, unpaid, paused, canceled) count for nothing.
LIVE: Final = frozenset({"active", "trialing", "past_due"})


class Unmapped(Exception):
    """A Stripe object the program cannot use; the message says why."""


def account_id(customer: Mapping[str, Any], options: StripeOptions) -> str:
    """The account a customer belongs to."""
    metadata = customer.get("metadata") or {}
    if options.account_from == "metadata":
        value = metadata.get(options.metadata_key)
        if not value:
            raise Unmapped(
                f"no metadata[{options.metadata_key!r}] to name its account; set it in Stripe "
                "or map by email domain"
            )
        return str(value)
    email = customer.get("email") or ""
    domain = email.rpartition("@")[2].lower()
    if not domain or domain not in options.domains:
        raise Unmapped(
            f"email domain {domain or '(no email)'!r} is not in the domains table; add it "
            "or set the customer's metadata"
        )
    return options.domains[domain]


#: Stripe's search takes at most ten clauses joined by OR.
SEARCH_CLAUSES: Final = 10


def search_queries(account: str, options: StripeOptions) -> list[str]:
    """Stripe customer-search queries that find every customer :func:`account_id` maps to
    ``account`` (email searches match substrings: check each customer found)."""
    if options.account_from == "metadata":
        return [f"metadata[{_quoted(options.metadata_key)}]:{_quoted(account)}"]
    domains = sorted(d for d, mapped in options.domains.items() if mapped == account)
    clauses = [f"email~{_quoted(d)}" for d in domains]
    return [
        " OR ".join(clauses[n : n + SEARCH_CLAUSES]) for n in range(0, len(clauses), SEARCH_CLAUSES)
    ]


def _quoted(text: str) -> str:
    """A string in Stripe's search query language (quotes escaped with a backslash)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def customer_account(customer: Mapping[str, Any], options: StripeOptions) -> Account:
    return Account(**customer_fields(customer, options))


def customer_fields(customer: Mapping[str, Any], options: StripeOptions) -> dict[str, Any]:
    """The keyword arguments of a customer's account (unchecked)."""
    return {"id": account_id(customer, options), "traits": {"stripe_customer_id": customer["id"]}}


def customer_columns(
    customers: Sequence[Mapping[str, Any]], options: StripeOptions
) -> dict[str, list[Any]] | None:
    """The fields of a page of customers' accounts column by column (unchecked, for
    :func:`onetomany.model.pages.account_columns`), when every customer names its account in
    its metadata as plain text; ``None`` sends the page to :func:`customer_fields`, customer
    by customer (which names what is wrong with one)."""
    if options.account_from != "metadata":
        return None
    key = options.metadata_key
    metadata: list[Any] = [c.get("metadata") for c in customers]
    if not all(type(m) is dict for m in metadata):
        return None
    ids = [m.get(key) for m in metadata]
    if not all(type(i) is str and i for i in ids):
        return None
    # The list's ids are text: the client checked every item of the page.
    return {"id": ids, "traits": [{"stripe_customer_id": c["id"]} for c in customers]}


@attrs.frozen(kw_only=True)
class Subscription:
    """What one Stripe subscription brings its account."""

    id: str
    status: str
    plan: str
    seats: int
    #: Unrounded, in the program's currency: the account's sum is rounded once.
    mrr: float
    created: int


def read_subscription(
    subscription: Mapping[str, Any], items: Sequence[Mapping[str, Any]], options: StripeOptions
) -> Subscription:
    """One subscription with all its ``items`` (Stripe embeds only the first page of them)."""
    if not items:
        raise Unmapped("has no items to read a plan from")
    return Subscription(
        id=str(subscription["id"]),
        status=str(subscription.get("status")),
        plan=_plan(items[0]),
        seats=sum(int(item.get("quantity") or 0) for item in items),
        mrr=math.fsum(_monthly(item, options) for item in items),
        created=int(subscription.get("created") or 0),
    )


def billing_traits(subscriptions: Iterable[Subscription]) -> dict[str, Any]:
    """An account's billing from all its subscriptions; the same whatever their order."""
    read = list(subscriptions)
    live = [s for s in read if s.status in LIVE]
    if not live:
        newest = max(read, key=lambda s: (s.created, s.id), default=None)
        status = newest.status if newest is not None else None
        return {"plan": None, "seats": 0, "mrr": 0.0, "subscription_status": status}
    top = max(live, key=lambda s: (s.mrr, s.plan, s.id))
    return {
        "plan": top.plan,
        "seats": sum(s.seats for s in live),
        "mrr": round(math.fsum(s.mrr for s in live), 2),
        "subscription_status": top.status,
    }


def _plan(item: Mapping[str, Any]) -> str:
    price = item.get("price") or {}
    product = price.get("product")
    product_id = product.get("id") if isinstance(product, Mapping) else product
    return str(price.get("lookup_key") or price.get("nickname") or product_id or price.get("id"))


def _monthly(item: Mapping[str, Any], options: StripeOptions) -> float:
    price = item.get("price") or {}
    currency = str(price.get("currency") or "").lower()
    if currency not in options.currencies:
        known = ", ".join(sorted(options.currencies))
        raise Unmapped(
            f"price {price.get('id')!r} is in {currency.upper() or 'no currency'}, which the "
            f"program's currencies do not list ({known})"
        )
    recurring = price.get("recurring") or {}
    interval, count = str(recurring.get("interval")), int(recurring.get("interval_count") or 1)
    if interval == "year":
        months = MONTHS_PER_YEAR * count
    elif interval in MONTHS:
        months = MONTHS[interval] * count
    else:
        raise Unmapped(f"price {price.get('id')!r} is not recurring")
    amount = price.get("unit_amount")
    if amount is None and price.get("unit_amount_decimal") is not None:
        amount = float(price["unit_amount_decimal"])
    if amount is None:
        raise Unmapped(f"price {price.get('id')!r} has no unit amount (tiered prices are not read)")
    units = float(amount) if currency in ZERO_DECIMAL else float(amount) / 100
    quantity = int(item.get("quantity") or 1)
    return units * quantity / months * options.currencies[currency]


def overdue_days(invoice: Mapping[str, Any], now: datetime) -> int | None:
    """Whole days an open invoice is past its due date; ``None`` when it is not overdue."""
    due = invoice.get("due_date")
    if invoice.get("status") != "open" or due is None:
        return None
    days = (now - _when(due)).days
    return days if days > 0 else None


def invoice_account(invoice: Mapping[str, Any], account: str, now: datetime) -> Account:
    days = overdue_days(invoice, now)
    due = invoice.get("due_date")
    return Account(
        id=account,
        traits={
            "overdue_days": days,
            "overdue_since": _when(due).date().isoformat() if days and due else None,
        },
    )


def overdue_event(invoice: Mapping[str, Any], account: str) -> Event:
    """``invoice_overdue`` at the due date: the same id whether read from the invoice list or
    from Stripe's ``invoice.overdue`` event."""
    return Event(
        id=f"stripe-invoice-overdue-{invoice['id']}",
        name="invoice_overdue",
        account_id=account,
        occurred_at=_when(invoice["due_date"]),
        properties=_invoice_properties(invoice),
    )


def billing_event(event: Mapping[str, Any], account: str) -> Event | None:
    """The program's event for one Stripe event, or ``None`` when it has none."""
    kind = event.get("type")
    obj = event["data"]["object"]
    at = _when(event["created"])
    if kind == "invoice.overdue":
        return overdue_event(obj, account)
    if kind == "invoice.payment_failed":
        name, properties = "payment_failed", _invoice_properties(obj)
    elif kind == "customer.subscription.deleted":
        name, properties = "subscription_canceled", {"subscription": obj["id"]}
    elif kind == "customer.subscription.updated":
        previous = (event["data"].get("previous_attributes") or {}).get("items")
        if not previous:
            return None
        before = (previous.get("data") or [{}])[0]
        after = ((obj.get("items") or {}).get("data") or [{}])[0]
        if _plan(before) == _plan(after):
            return None
        name = "plan_changed"
        properties = {"subscription": obj["id"], "from": _plan(before), "to": _plan(after)}
    else:
        return None
    return Event(
        id=f"stripe-{event['id']}",
        name=name,
        account_id=account,
        occurred_at=at,
        properties=properties,
    )


def _invoice_properties(invoice: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "invoice": invoice["id"],
        "amount_due": invoice.get("amount_due"),
        "currency": invoice.get("currency"),
    }


def _when(timestamp: Any) -> datetime:
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise Unmapped(f"timestamp {timestamp!r} is not seconds since the epoch")
    return datetime.fromtimestamp(timestamp, tz=UTC)
