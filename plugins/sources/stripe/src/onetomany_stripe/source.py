"""The Stripe source: a full read of customers, subscriptions and open invoices, then
incremental reads through the Events API.

**Full sync.** The newest event is noted first, then every customer, subscription (of every
status: a canceled one must clear what it brought) and open invoice is listed page by page
(each subscription and invoice with its customer expanded, so no lookup is needed). An
account's billing is the sum over all its subscriptions, which Stripe lists in no account
order, so it is kept per account while subscriptions are read and stored once they all are.
The last page carries the cursor: the event noted at the start, so whatever changed during
the read is read again from the events (harmless: records are upserted, event ids stored
once).

**Incremental sync.** Events newer than the cursor are listed oldest first (``ending_before``
walks towards the present) and each page's cursor is its newest event. When the cursor is
older than Stripe keeps events (30 days), or Stripe says the event is gone, the sync falls
back to a full read, with a warning. A subscription event re-reads all the subscriptions of
its account (of every customer mapped to it, found with Stripe's customer search), so the
sums stay whole.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from onetomany.errors import InputError
from onetomany.model import Account, Event
from onetomany.model.clock import Clock, SystemClock
from onetomany.model.pages import account_columns, checked_accounts
from onetomany.plugins.settings import PluginSettings
from onetomany.plugins.sources import Skipped, Source, SyncPage
from onetomany_stripe.client import ExpiredCursorError, StripeClient, StripeError
from onetomany_stripe.mapping import (
    Subscription,
    Unmapped,
    account_id,
    billing_event,
    billing_traits,
    customer_account,
    customer_columns,
    customer_fields,
    invoice_account,
    overdue_days,
    overdue_event,
    read_subscription,
    search_queries,
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
            yield self._customer_page(customers)
        expand = {"expand[]": "data.customer"}
        billing: dict[str, list[Subscription]] = {}
        unread: set[str] = set()
        every = {"status": "all", **expand}
        for subscriptions in client.pages("/v1/subscriptions", every, limit=size):
            yield self._page(
                [(s, lambda s=s: self._collect(client, s, billing, unread)) for s in subscriptions]
            )
        accounts = sorted(set(billing) - unread)
        for start in range(0, len(accounts), size):
            yield self._page(
                [
                    ({"object": "account", "id": a}, lambda a=a: [self._billed(a, billing[a])])
                    for a in accounts[start : start + size]
                ]
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
            billed: set[str] = set()
            page = self._page(
                [(e, lambda e=e, b=billed: self._event(client, e, now, b)) for e in events]
            )
            yield _with_cursor(page, _cursor(events[-1]))
            if not body["has_more"]:
                return
            params["ending_before"] = events[-1]["id"]

    def _event(
        self, client: StripeClient, event: Mapping[str, Any], now: datetime, billed: set[str]
    ) -> list[Any]:
        """An event's records; ``billed`` holds the accounts whose subscriptions this page has
        read again already."""
        kind = str(event.get("type", ""))
        obj = (event.get("data") or {}).get("object") or {}
        if kind.startswith("customer.") and obj.get("object") == "customer":
            return [customer_account(obj, self.options)]
        if obj.get("object") not in ("subscription", "invoice"):
            return []
        customer = self._customer(client, obj.get("customer"))
        account = account_id(customer, self.options)
        found: list[Account | Event] = []
        if obj["object"] == "subscription" and account not in billed:
            found.append(self._billed(account, self._account_subscriptions(client, customer)))
            billed.add(account)
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

    def _collect(
        self,
        client: StripeClient,
        subscription: Mapping[str, Any],
        billing: dict[str, list[Subscription]],
        unread: set[str],
    ) -> list[Any]:
        """Keep one subscription of a full read for its account's sums (stored at the end)."""
        customer = subscription["customer"]
        if not isinstance(customer, Mapping):
            raise Unmapped("its customer was not expanded")
        account = account_id(customer, self.options)
        try:
            read = self._read(client, subscription)
        except (Unmapped, InputError, KeyError, TypeError) as exc:
            # A sum missing one subscription would be wrong: the account keeps what it had.
            unread.add(account)
            kept = f"account {account!r} keeps its plan, seats and MRR"
            raise Unmapped(f"{_reason(exc)}; {kept}") from exc
        billing.setdefault(account, []).append(read)
        return []

    def _account_subscriptions(
        self, client: StripeClient, customer: Mapping[str, Any]
    ) -> list[Subscription]:
        """Every subscription of every customer mapped to ``customer``'s account. Stripe's
        search lags writes by about a minute, so the event's own customer is always read."""
        account = account_id(customer, self.options)
        customers = {str(customer["id"])}
        for query in search_queries(account, self.options):
            for page in client.search("/v1/customers/search", query, limit=100):
                customers.update(c["id"] for c in page if _maps_to(c, account, self.options))
        found = []
        for cid in sorted(customers):
            every = {"customer": cid, "status": "all"}
            for page in client.pages("/v1/subscriptions", every, limit=100):
                found += [self._read(client, s) for s in page]
        return found

    def _read(self, client: StripeClient, subscription: Mapping[str, Any]) -> Subscription:
        """A subscription with all its items: past the ten Stripe embeds, the rest are listed."""
        embedded = subscription["items"]
        items: list[Mapping[str, Any]] = list(embedded["data"])
        if embedded.get("has_more") and items:
            rest = {"subscription": subscription["id"], "starting_after": items[-1]["id"]}
            for page in client.pages("/v1/subscription_items", rest, limit=100):
                items += page
        return read_subscription(subscription, items, self.options)

    def _billed(self, account: str, subscriptions: Sequence[Subscription]) -> Account:
        return Account(id=account, traits=billing_traits(subscriptions))

    def _invoice(self, invoice: Mapping[str, Any], customer: Any, now: datetime) -> list[Any]:
        if not isinstance(customer, Mapping):
            raise Unmapped("its customer was not expanded")
        account = account_id(customer, self.options)
        if overdue_days(invoice, now) is None:
            return []
        return [invoice_account(invoice, account, now), overdue_event(invoice, account)]

    def _customer_page(self, customers: list[Mapping[str, Any]]) -> SyncPage:
        """A page of customers' accounts: checked together when every customer maps to one
        (the common case), else one by one, each that cannot be read skipped by name."""
        columns = customer_columns(customers, self.options)
        accounts = account_columns(columns) if columns is not None else None
        if accounts is None:
            try:
                fields = [customer_fields(c, self.options) for c in customers]
            except (Unmapped, KeyError, TypeError):
                fields = []
            accounts = checked_accounts(fields)
        if accounts is not None:
            return SyncPage(accounts=accounts)
        return self._page([(c, lambda c=c: [customer_account(c, self.options)]) for c in customers])

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


def _maps_to(customer: Mapping[str, Any], account: str, options: StripeOptions) -> bool:
    try:
        return account_id(customer, options) == account
    except Unmapped:
        return False


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
