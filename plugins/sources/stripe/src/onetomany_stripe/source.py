"""The Stripe source: a full read of customers, subscriptions and open invoices, then
incremental reads through the Events API.

**Full sync.** The newest event is noted first, then every customer, subscription and open
invoice is listed page by page (each subscription and invoice with its customer expanded, so
no lookup is needed). The last page carries the cursor: the event noted at the start, so
whatever changed during the read is read again from the events (harmless: records are
upserted, event ids stored once).

**Incremental sync.** Events newer than the cursor are listed oldest first (``ending_before``
walks towards the present) and each page's cursor is its newest event. When the cursor is
older than Stripe keeps events (30 days), or Stripe says the event is gone, the sync falls
back to a full read, with a warning.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from onetomany.errors import InputError
from onetomany.model import Account, Event
from onetomany.model.clock import Clock, SystemClock
from onetomany.plugins.settings import PluginSettings
from onetomany.plugins.sources import Skipped, Source, SyncPage
from onetomany_stripe.client import ExpiredCursorError, StripeClient, StripeError
from onetomany_stripe.mapping import (
    Unmapped,
    account_id,
    billing_event,
    customer_account,
    invoice_account,
    overdue_days,
    overdue_event,
    subscription_account,
)
from onetomany_stripe.options import StripeOptions, read_options

log = logging.getLogger(__name__)

#: Customers looked up by id during one incremental sync, kept at most (then forgotten).
CUSTOMER_CACHE: Final = 10_000


class StripeSource(Source):
    """Accounts (plan, seats, MRR, overdue invoices) and billing events from Stripe."""

    #: The clock overdue days and the cursor's age are counted on (a test gives its own).
    clock: Clock = SystemClock()
    #: How a wait before a retry is spent (a test records it instead).
    sleep: Callable[[float], None] = staticmethod(time.sleep)

    def __init__(self, settings: PluginSettings) -> None:
        super().__init__(settings)
        self.options: StripeOptions = read_options(settings)
        self._customers: dict[str, Mapping[str, Any]] = {}

    def client(self) -> StripeClient:
        return StripeClient(
            api_key=self.options.api_key,
            base_url=self.options.base_url,
            source=self.settings.name,
            sleep=self.sleep,
        )

    def sync(self, *, cursor: str | None = None) -> Iterator[SyncPage]:
        client = self.client()
        try:
            since = self._since(cursor)
            if since is None:
                yield from self._full(client)
                return
            try:
                yield from self._events(client, since)
            except ExpiredCursorError as exc:
                log.warning("source %r: %s; reading everything again", self.settings.name, exc)
                yield from self._full(client)
        finally:
            client.close()

    # -- full ---------------------------------------------------------------------------

    def _full(self, client: StripeClient) -> Iterator[SyncPage]:
        size = self.options.page_size
        newest = client.list("/v1/events", {"limit": 1})["data"]
        mark = _cursor(newest[0]) if newest else None
        for customers in client.pages("/v1/customers", {}, limit=size):
            yield self._page(
                [(c, lambda c=c: [customer_account(c, self.options)]) for c in customers]
            )
        expand = {"expand[]": "data.customer"}
        for subscriptions in client.pages("/v1/subscriptions", expand, limit=size):
            yield self._page(
                [(s, lambda s=s: [self._subscription(s, s["customer"])]) for s in subscriptions]
            )
        now = self.clock.now()
        for invoices in client.pages("/v1/invoices", {"status": "open", **expand}, limit=size):
            yield self._page(
                [(i, lambda i=i: self._invoice(i, i["customer"], now)) for i in invoices]
            )
        # Only once everything is stored: a full read cut short starts over.
        if mark is not None:
            yield SyncPage(cursor=mark)

    # -- incremental ----------------------------------------------------------------------

    def _events(self, client: StripeClient, since: str) -> Iterator[SyncPage]:
        params: dict[str, Any] = {"limit": self.options.page_size, "ending_before": since}
        now = self.clock.now()
        while True:
            body = client.list("/v1/events", params)
            # Stripe lists newest first; the page right before the cursor is read oldest first.
            events = list(reversed(body["data"]))
            if not events:
                return
            page = self._page([(e, lambda e=e: self._event(client, e, now)) for e in events])
            yield _with_cursor(page, _cursor(events[-1]))
            if not body["has_more"]:
                return
            params["ending_before"] = events[-1]["id"]

    def _event(self, client: StripeClient, event: Mapping[str, Any], now: datetime) -> list[Any]:
        kind = str(event.get("type", ""))
        obj = (event.get("data") or {}).get("object") or {}
        if kind.startswith("customer.") and obj.get("object") == "customer":
            return [customer_account(obj, self.options)]
        if obj.get("object") not in ("subscription", "invoice"):
            return []
        customer = self._customer(client, obj.get("customer"))
        account = account_id(customer, self.options)
        found: list[Account | Event] = []
        if obj["object"] == "subscription":
            found.append(self._subscription(obj, customer))
        elif kind in ("invoice.paid", "invoice.overdue", "invoice.voided", "invoice.updated"):
            found.append(invoice_account(obj, account, now))
        translated = billing_event(event, account)
        return [*found, translated] if translated is not None else found

    def _customer(self, client: StripeClient, customer: Any) -> Mapping[str, Any]:
        if isinstance(customer, Mapping):
            return customer
        if not isinstance(customer, str):
            raise Unmapped("names no customer")
        if customer not in self._customers:
            if len(self._customers) >= CUSTOMER_CACHE:
                self._customers.clear()
            self._customers[customer] = client.get(f"/v1/customers/{customer}", {})
        return self._customers[customer]

    # -- records ------------------------------------------------------------------------

    def _subscription(self, subscription: Mapping[str, Any], customer: Any) -> Account:
        if not isinstance(customer, Mapping):
            raise Unmapped("its customer was not expanded")
        return subscription_account(subscription, account_id(customer, self.options), self.options)

    def _invoice(self, invoice: Mapping[str, Any], customer: Any, now: datetime) -> list[Any]:
        if not isinstance(customer, Mapping):
            raise Unmapped("its customer was not expanded")
        account = account_id(customer, self.options)
        if overdue_days(invoice, now) is None:
            return []
        return [invoice_account(invoice, account, now), overdue_event(invoice, account)]

    def _page(self, items: list[tuple[Mapping[str, Any], Any]]) -> SyncPage:
        """Build every item's records; an item that cannot be read is a skip naming it."""
        accounts: list[Account] = []
        events: list[Event] = []
        skipped: list[Skipped] = []
        for item, build in items:
            try:
                records = build()
            except StripeError:
                raise  # the API refused: the whole sync stops, nothing is skipped silently
            except (Unmapped, InputError, KeyError, TypeError) as exc:
                skipped.append(Skipped(record=_name(item), reason=_reason(exc)))
                continue
            accounts += [r for r in records if isinstance(r, Account)]
            events += [r for r in records if isinstance(r, Event)]
        return SyncPage(accounts=accounts, events=events, skipped=skipped)

    def _since(self, cursor: str | None) -> str | None:
        """The event id to read after, or ``None`` for a full read (no cursor, or one older
        than Stripe keeps events)."""
        if cursor is None:
            return None
        try:
            kept = json.loads(cursor)
            event, created = str(kept["event"]), datetime.fromisoformat(kept["created"])
        except (ValueError, KeyError, TypeError):
            raise InputError(
                f"source {self.settings.name!r}: cursor {cursor!r} is not one this source "
                "wrote; run onetomany sync --full to start again"
            ) from None
        age = self.clock.now() - created
        if age > timedelta(days=self.options.event_retention_days):
            log.warning(
                "source %r: the cursor's event %s is %d days old, older than Stripe keeps "
                "events; reading everything again",
                self.settings.name,
                event,
                age.days,
            )
            return None
        return event


def _cursor(event: Mapping[str, Any]) -> str:
    created = datetime.fromtimestamp(int(event["created"]), tz=UTC)
    return json.dumps({"event": event["id"], "created": created.isoformat()})


def _with_cursor(page: SyncPage, cursor: str) -> SyncPage:
    return SyncPage(accounts=page.accounts, events=page.events, skipped=page.skipped, cursor=cursor)


def _name(item: Mapping[str, Any]) -> str:
    kind = item.get("object", "object")
    name = f"stripe {kind} {item.get('id', '?')}"
    customer = item.get("customer")
    if isinstance(customer, Mapping):
        customer = customer.get("id")
    if kind != "customer" and isinstance(customer, str):
        name += f" (customer {customer})"
    return name


def _reason(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"has no {exc.args[0]!r}"
    return str(exc)
