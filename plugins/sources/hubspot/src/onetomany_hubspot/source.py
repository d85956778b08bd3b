"""The HubSpot source: companies, then contacts, read through the CRM v3 search API in order
of last modification, so that each page's cursor is the newest modification it holds.

**Reading.** Each object type is searched with ``sorts`` ascending on its last-modified
property (``hs_lastmodifieddate`` for companies, ``lastmodifieddate`` for contacts, as HubSpot
documents) and, when a cursor is kept, a ``GTE`` filter on it; pages follow ``paging.next.after``.
HubSpot serves at most 10,000 results of one search: before the next page would pass that
window, the search starts again from the last record's modification time (``GTE`` again, so
records modified at that same instant are read twice, which is harmless: records are
upserted). More than a window's worth modified at one instant cannot be split and stops the
sync with an error saying so.

**Owners.** The owners the token can read are listed first (``/crm/v3/owners``); a company's
``hubspot_owner_id`` becomes its owner's email on the account (its CSM).

**Contacts.** Each page's company associations are read in one batch (associations v4); the
company's account is known from this sync's companies, else looked up.

**Cursor.** ``{"companies": ms, "contacts": ms}``: the newest modification stored of each.
A page with a skipped record keeps the stored cursor where it was (the core's rule), so the
record is read again by the next sync.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any, Final

from onetomany.errors import InputError
from onetomany.model import Account, Contact
from onetomany.plugins.settings import PluginSettings
from onetomany.plugins.sources import Skipped, Source, SyncPage
from onetomany_hubspot.client import HubSpotClient, HubSpotError, MalformedAnswerError
from onetomany_hubspot.mapping import (
    PRIMARY_COMPANY,
    Association,
    Unmapped,
    chosen_company,
    company_account,
    company_account_id,
    contact_value,
)
from onetomany_hubspot.options import HubSpotOptions, source_options

#: The property each object type's last modification is kept in.
MODIFIED: Final[Mapping[str, str]] = {
    "companies": "hs_lastmodifieddate",
    "contacts": "lastmodifieddate",
}
#: What HubSpot's search serves of one query at most.
SEARCH_WINDOW: Final = 10_000
OWNERS_PAGE: Final = 100

Build = Callable[[], Sequence[Account | Contact]]


class HubSpotSource(Source):
    """Accounts (companies and their CSM) and contacts (persona, company) from HubSpot."""

    #: How a wait before a retry is spent (a test records it instead).
    sleep: Callable[[float], None] = staticmethod(time.sleep)
    #: Results one search may page through (HubSpot's limit; a test lowers it with its fake).
    search_window: int = SEARCH_WINDOW

    def __init__(self, settings: PluginSettings) -> None:
        super().__init__(settings)
        self.options: HubSpotOptions = source_options(settings)

    def client(self) -> HubSpotClient:
        return HubSpotClient(
            token=self.options.resolved_token(),
            base_url=self.options.base_url,
            source=self.settings.name,
            sleep=self.sleep,
        )

    def sync(self, *, cursor: str | None = None) -> Iterator[SyncPage]:
        marks = self._marks(cursor)
        client = self.client()
        try:
            owners = self._owners(client)
            accounts: dict[str, str] = {}
            company_props = ["name", "hubspot_owner_id", *self.options.company_traits]
            if self.options.account_property:
                company_props.append(self.options.account_property)
            for companies, mark in self._search(client, "companies", company_props, marks):
                for company in companies:
                    with contextlib.suppress(Unmapped):  # reported when the page is built
                        accounts[str(company["id"])] = company_account_id(company, self.options)
                page = self._page(
                    "company",
                    [
                        (c, partial(_one, company_account, c, self.options, owners))
                        for c in companies
                    ],
                )
                marks["companies"] = mark
                yield _with_cursor(page, marks)
            contact_props = [
                "email",
                "firstname",
                "lastname",
                "phone",
                self.options.role_property,
                *self.options.contact_traits,
            ]
            for contacts, mark in self._search(client, "contacts", contact_props, marks):
                links = self._associations(client, [str(c["id"]) for c in contacts])
                self._add_accounts(client, accounts, links)
                page = self._page(
                    "contact",
                    [
                        (c, partial(self._contact, c, links.get(str(c["id"]), []), accounts))
                        for c in contacts
                    ],
                )
                marks["contacts"] = mark
                yield _with_cursor(page, marks)
        finally:
            client.close()

    # -- reading ----------------------------------------------------------------------------

    def _search(
        self,
        client: HubSpotClient,
        kind: str,
        wanted: list[str],
        marks: Mapping[str, int | None],
    ) -> Iterator[tuple[list[dict[str, Any]], int | None]]:
        """Pages of one object type, oldest modification first, each with its newest one."""
        prop, size = MODIFIED[kind], self.options.page_size
        start, after = marks.get(kind), None
        newest = start
        while True:
            body: dict[str, Any] = {
                "filterGroups": (
                    []
                    if start is None
                    else [
                        {
                            "filters": [
                                {"propertyName": prop, "operator": "GTE", "value": str(start)}
                            ]
                        }
                    ]
                ),
                "sorts": [{"propertyName": prop, "direction": "ASCENDING"}],
                "properties": sorted({*wanted, prop}),
                "limit": size,
            }
            if after is not None:
                body["after"] = after
            path = f"/crm/v3/objects/{kind}/search"
            results, after = _search_page(client.post(path, body), path, self.settings.name)
            for record in results:
                modified = _modified(record, prop)
                newest = modified if newest is None or modified > newest else newest
            yield results, newest
            if after is None or not results:
                return
            if int(after) + size > self.search_window:
                last = _modified(results[-1], prop)
                if start is not None and last <= start:
                    raise HubSpotError(
                        f"source {self.settings.name!r}: more than {self.search_window} {kind} "
                        f"were modified at {_iso(last)}, more than one HubSpot search can "
                        "page through; the sync cannot split them by time"
                    )
                start, after = last, None  # a new search window from the last time read

    def _owners(self, client: HubSpotClient) -> dict[str, str]:
        owners: dict[str, str] = {}
        params: dict[str, Any] = {"limit": OWNERS_PAGE}
        while True:
            answer = client.get("/crm/v3/owners", params)
            results, after = _search_page(answer, "/crm/v3/owners", self.settings.name)
            owners |= {str(o["id"]): str(o["email"]) for o in results if o.get("email")}
            if after is None:
                return owners
            params["after"] = after

    def _associations(
        self, client: HubSpotClient, contacts: list[str]
    ) -> dict[str, list[Association]]:
        if not contacts:
            return {}
        path = "/crm/v4/associations/contacts/companies/batch/read"
        answer = client.post(path, {"inputs": [{"id": c} for c in contacts]})
        found: dict[str, list[Association]] = {}
        for result in answer.get("results") or []:
            try:
                source = str(result["from"]["id"])
                found[source] = [
                    Association(
                        company=str(to["toObjectId"]),
                        primary=any(
                            t.get("typeId") == PRIMARY_COMPANY
                            for t in to.get("associationTypes") or []
                        ),
                    )
                    for to in result.get("to") or []
                ]
            except (KeyError, TypeError) as exc:
                raise MalformedAnswerError(
                    f"source {self.settings.name!r}: POST {path} answered a result without "
                    f"{exc}; nothing of the page was stored"
                ) from None
        return found

    def _add_accounts(
        self,
        client: HubSpotClient,
        accounts: dict[str, str],
        links: Mapping[str, list[Association]],
    ) -> None:
        """The account ids of companies this sync has not read, looked up by company id."""
        missing = sorted({a.company for ls in links.values() for a in ls} - set(accounts))
        if not self.options.account_property:
            accounts |= {company: company for company in missing}
            return
        for chunk in (missing[i : i + 100] for i in range(0, len(missing), 100)):
            body = {
                "filterGroups": [
                    {
                        "filters": [
                            {"propertyName": "hs_object_id", "operator": "IN", "values": chunk}
                        ]
                    }
                ],
                "properties": [self.options.account_property],
                "limit": len(chunk),
            }
            path = "/crm/v3/objects/companies/search"
            results, _ = _search_page(client.post(path, body), path, self.settings.name)
            for company in results:
                with contextlib.suppress(Unmapped):  # the contact is skipped, naming it
                    accounts[str(company["id"])] = company_account_id(company, self.options)

    def _contact(
        self,
        contact: Mapping[str, Any],
        links: Sequence[Association],
        accounts: Mapping[str, str],
    ) -> list[Contact]:
        company = chosen_company(links, self.options)
        account = None
        if company is not None:
            if company not in accounts:
                raise Unmapped(f"its company {company} names no account")
            account = accounts[company]
        return [contact_value(contact, account, self.options)]

    def _page(self, kind: str, items: list[tuple[Mapping[str, Any], Build]]) -> SyncPage:
        """Every item's records; an item that cannot be read is a skip naming it."""
        accounts: list[Account] = []
        contacts: list[Contact] = []
        skipped: list[Skipped] = []
        for item, build in items:
            try:
                records = build()
            except (Unmapped, InputError, KeyError, TypeError) as exc:
                if isinstance(exc, HubSpotError):
                    raise  # HubSpot refused: the sync stops, nothing is skipped silently
                reason = f"has no {exc.args[0]!r}" if isinstance(exc, KeyError) else str(exc)
                skipped.append(
                    Skipped(record=f"hubspot {kind} {item.get('id', '?')}", reason=reason)
                )
                continue
            accounts += [r for r in records if isinstance(r, Account)]
            contacts += [r for r in records if isinstance(r, Contact)]
        return SyncPage(accounts=accounts, contacts=contacts, skipped=skipped)

    def _marks(self, cursor: str | None) -> dict[str, int | None]:
        if cursor is None:
            return {kind: None for kind in MODIFIED}
        try:
            kept = json.loads(cursor)
            return {kind: None if kept[kind] is None else int(kept[kind]) for kind in MODIFIED}
        except (ValueError, KeyError, TypeError):
            raise InputError(
                f"source {self.settings.name!r}: cursor {cursor!r} is not one this source "
                "wrote; run onetomany sync --full to start again"
            ) from None


def _one(build: Callable[..., Account], *args: Any) -> list[Account]:
    return [build(*args)]


def _search_page(
    answer: Mapping[str, Any], path: str, source: str
) -> tuple[list[dict[str, Any]], str | None]:
    """A page's results and the ``after`` of the next one, checked to be as documented."""
    results = answer.get("results")
    paging = answer.get("paging")
    after = None
    if isinstance(paging, Mapping) and isinstance(paging.get("next"), Mapping):
        after = paging["next"].get("after")
    if (
        not isinstance(results, list)
        or not all(isinstance(r, dict) and r.get("id") is not None for r in results)
        or (after is not None and not str(after).isdigit() and path != "/crm/v3/owners")
    ):
        raise MalformedAnswerError(
            f"source {source!r}: {path} answered a page that is not a HubSpot result "
            "page (results with ids, paging.next.after); nothing of it was stored"
        )
    return results, None if after is None else str(after)


def _modified(record: Mapping[str, Any], prop: str) -> int:
    """A record's last modification, in milliseconds since the epoch."""
    value = (record.get("properties") or {}).get(prop) or record.get("updatedAt")
    try:
        text = str(value)
        if text.isdigit():
            return int(text)
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        # Whole seconds and milliseconds apart: a float product would round 1.005 s down.
        return int(when.timestamp()) * 1000 + when.microsecond // 1000
    except ValueError:
        raise MalformedAnswerError(
            f"hubspot record {record.get('id')}: {prop} {value!r} is not a date"
        ) from None


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat()


def _with_cursor(page: SyncPage, marks: Mapping[str, int | None]) -> SyncPage:
    return SyncPage(
        accounts=page.accounts,
        contacts=page.contacts,
        skipped=page.skipped,
        cursor=json.dumps(dict(marks), sort_keys=True),
    )
