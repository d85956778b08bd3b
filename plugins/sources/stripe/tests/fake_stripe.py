"""A local Stripe for the tests: the list endpoints the source calls, served from memory by a
pytest-httpserver, every request validated against Stripe's OpenAPI document first.

It follows Stripe's documented list behaviour: newest first, ``limit`` (1-100, default 10),
``starting_after`` for the next page, ``ending_before`` for the page just newer than an
object, ``has_more``, ``expand[]=data.customer``; errors as Stripe shapes them
(``{"error": {"type", "code", "message"}}``). Knobs make it answer what a real account can:
429s with Retry-After, a forbidden endpoint (a restricted key), an expired event, a
malformed page.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from typing import Any

from pytest_httpserver import HTTPServer
from stripe_openapi import StripeDocument
from werkzeug import Request, Response

KEY = "rk_test_onetomany"
_ids = itertools.count(1)


class FakeStripe:
    def __init__(self, server: HTTPServer) -> None:
        self.document = StripeDocument()
        self.url = server.url_for("/").rstrip("/")
        # Each list newest first, as Stripe returns them.
        self.objects: dict[str, list[dict[str, Any]]] = {
            "customers": [],
            "subscriptions": [],
            "invoices": [],
            "events": [],
        }
        #: Each list's id -> position, rebuilt after an insert (bench_sync lists a million).
        self._positions: dict[str, dict[str, int]] = {}
        self.requests: list[tuple[str, dict[str, list[str]]]] = []
        self.too_many = 0  # answer this many 429s before serving
        self.retry_after = "0"
        self.forbidden: set[str] = set()
        self.expired: set[str] = set()
        self.malformed: set[str] = set()
        #: Requests Stripe's OpenAPI document refuses: the tests' fixture asserts there are none.
        self.invalid: list[str] = []
        server.expect_request(re.compile(r"/v1/.*")).respond_with_handler(self.handle)

    # -- building an account's data -------------------------------------------------------

    def customer(self, id: str, *, email: str | None = None, **metadata: str) -> dict[str, Any]:
        obj = {"id": id, "object": "customer", "email": email, "metadata": metadata}
        self.objects["customers"].insert(0, obj)
        self._positions.pop("customers", None)
        return obj

    def subscription(
        self,
        customer: str,
        *,
        amount: int = 5000,
        currency: str = "usd",
        interval: str = "month",
        interval_count: int = 1,
        quantity: int = 1,
        plan: str = "pro",
        status: str = "active",
        items: list[dict[str, Any]] | None = None,
        created: int = 0,
    ) -> dict[str, Any]:
        """A subscription of one item, or of ``items`` (each a dict of the keyword arguments
        above, from ``amount`` to ``plan``); all are kept, Stripe's list embeds ten."""
        one = dict(
            amount=amount,
            currency=currency,
            interval=interval,
            interval_count=interval_count,
            quantity=quantity,
            plan=plan,
        )
        obj = {
            "id": f"sub_{next(_ids)}",
            "object": "subscription",
            "customer": customer,
            "status": status,
            "created": created,
            "items": {
                "object": "list",
                "data": [_item(**{**one, **item}) for item in (items or [{}])],
                "has_more": False,
            },
        }
        self.objects["subscriptions"].insert(0, obj)
        self._positions.pop("subscriptions", None)
        return obj

    def invoice(self, customer: str, *, due_date: int, status: str = "open") -> dict[str, Any]:
        obj = {
            "id": f"in_{next(_ids)}",
            "object": "invoice",
            "customer": customer,
            "status": status,
            "due_date": due_date,
            "amount_due": 5000,
            "currency": "usd",
        }
        self.objects["invoices"].insert(0, obj)
        self._positions.pop("invoices", None)
        return obj

    def event(
        self, kind: str, obj: dict[str, Any], *, created: int, previous: Any = None
    ) -> dict[str, Any]:
        data: dict[str, Any] = {"object": obj}
        if previous is not None:
            data["previous_attributes"] = previous
        event = {
            "id": f"evt_{next(_ids)}",
            "object": "event",
            "type": kind,
            "created": created,
            "data": data,
        }
        self.objects["events"].insert(0, event)
        self._positions.pop("events", None)
        return event

    # -- serving ----------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        problems = self.document.problems(
            request.method, request.path, request.args.to_dict(flat=False), request.headers
        )
        if problems:
            self.invalid.append(f"{request.method} {request.full_path}: {problems}")
            return _error(400, "invalid_request_error", "parameter_invalid", "; ".join(problems))
        if request.headers.get("Authorization") != f"Bearer {KEY}":
            return _error(401, "invalid_request_error", None, "Invalid API Key provided")
        self.requests.append((request.path, request.args.to_dict(flat=False)))
        if self.too_many:
            self.too_many -= 1
            response = _error(429, "rate_limit_error", "rate_limit", "Too many requests")
            response.headers["Retry-After"] = self.retry_after
            return response
        name = request.path.removeprefix("/v1/").split("/")[0]
        if name in self.forbidden:
            return _error(
                403,
                "invalid_request_error",
                None,
                f"The provided key 'rk_test_***' does not have the required permissions for "
                f"this endpoint on account 'acct_1'. Having the '{name}_read' permission "
                "would allow this request to continue.",
            )
        if name in self.malformed:
            return Response(
                '{"object": "list", "data": [{"no": "id"}]}', 200, mimetype="application/json"
            )
        if request.path == "/v1/customers/search":
            return self._search(request.args)
        if request.path.startswith("/v1/customers/"):
            wanted = request.path.rsplit("/", 1)[1]
            found = [c for c in self.objects["customers"] if c["id"] == wanted]
            if not found:
                return _error(404, "invalid_request_error", "resource_missing", "No such customer")
            return _json(found[0])
        return self._list(name, request.args)

    def _list(self, name: str, args: Any) -> Response:
        limit = int(args.get("limit", 10))
        items = self._filtered(name, args)
        if items is not None:
            ids = {item["id"]: n for n, item in enumerate(items)}
        else:
            items = self.objects[name]
            if name not in self._positions or len(self._positions[name]) != len(items):
                self._positions[name] = {item["id"]: n for n, item in enumerate(items)}
            ids = self._positions[name]
        if "ending_before" in args:
            cursor = args["ending_before"]
            if cursor in self.expired or cursor not in ids:
                return _error(
                    400, "invalid_request_error", "resource_missing", f"No such event: '{cursor}'"
                )
            newer = items[: ids[cursor]]
            page, has_more = newer[-limit:], len(newer) > limit
        else:
            start = ids[args["starting_after"]] + 1 if "starting_after" in args else 0
            page, has_more = items[start : start + limit], len(items) > start + limit
        if "data.customer" in args.getlist("expand[]"):
            customers = {c["id"]: c for c in self.objects["customers"]}
            page = [{**i, "customer": customers.get(i["customer"], i["customer"])} for i in page]
        if name == "subscriptions":
            page = [{**s, "items": _embedded(s["items"]["data"], s["id"])} for s in page]
        return _json({"object": "list", "url": f"/v1/{name}", "has_more": has_more, "data": page})

    def _filtered(self, name: str, args: Any) -> list[dict[str, Any]] | None:
        """The list a request's filters select, or ``None`` when it selects the whole list."""
        if name == "invoices" and "status" in args:
            return [i for i in self.objects[name] if i["status"] == args["status"]]
        if name == "subscription_items":
            wanted = args["subscription"]
            found = [s for s in self.objects["subscriptions"] if s["id"] == wanted]
            return list(found[0]["items"]["data"]) if found else []
        if name != "subscriptions":
            return None
        # Stripe's default leaves canceled subscriptions out; status=all lists every one.
        status = args.get("status")
        shown = {
            None: lambda s: s != "canceled",
            "all": lambda s: True,
            "ended": lambda s: s in ("canceled", "incomplete_expired"),
        }.get(status, lambda s: s == status)
        if status == "all" and "customer" not in args:
            return None
        return [
            s
            for s in self.objects[name]
            if shown(s["status"]) and args.get("customer", s["customer"]) == s["customer"]
        ]

    def _search(self, args: Any) -> Response:
        """Customer search for the clauses the source writes: ``metadata["k"]:"v"`` and
        ``email~"text"``, joined by ``OR``; anything else is refused as Stripe would."""
        clauses = []
        for clause in args["query"].split(" OR "):
            match = _CLAUSE.match(clause)
            if match is None:
                self.invalid.append(f"search query {args['query']!r}")
                return _error(400, "invalid_request_error", "parameter_invalid", "bad query")
            key, value = match.groups()
            clauses.append((_unquoted(key) if key is not None else None, _unquoted(value)))

        def found(customer: dict[str, Any]) -> bool:
            return any(
                customer["metadata"].get(key) == value
                if key is not None
                else str(value).lower() in (customer.get("email") or "").lower()
                for key, value in clauses
            )

        hits = [c for c in self.objects["customers"] if found(c)]
        start, limit = int(args.get("page", 0)), int(args.get("limit", 10))
        more = len(hits) > start + limit
        return _json(
            {
                "object": "search_result",
                "url": "/v1/customers/search",
                "has_more": more,
                "next_page": str(start + limit) if more else None,
                "data": hits[start : start + limit],
            }
        )

    def paths(self) -> Iterator[str]:
        return (path for path, _ in self.requests)


_CLAUSE = re.compile(r'^(?:metadata\["((?:[^"\\]|\\.)*)"\]:|email~)"((?:[^"\\]|\\.)*)"$')


def _unquoted(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _item(
    *, amount: int, currency: str, interval: str, interval_count: int, quantity: int, plan: str
) -> dict[str, Any]:
    return {
        "id": f"si_{next(_ids)}",
        "object": "subscription_item",
        "quantity": quantity,
        "price": {
            "id": f"price_{plan}_{currency}",
            "object": "price",
            "currency": currency,
            "lookup_key": plan,
            "unit_amount": amount,
            "recurring": {"interval": interval, "interval_count": interval_count},
        },
    }


def _embedded(items: list[dict[str, Any]], subscription: str) -> dict[str, Any]:
    """A subscription's ``items`` as Stripe's list embeds them: the first ten."""
    return {
        "object": "list",
        "url": f"/v1/subscription_items?subscription={subscription}",
        "has_more": len(items) > 10,
        "data": items[:10],
    }


def _json(body: Any) -> Response:
    return Response(json.dumps(body), 200, mimetype="application/json")


def _error(status: int, kind: str, code: str | None, message: str) -> Response:
    error = {"type": kind, "message": message, **({"code": code} if code else {})}
    return Response(json.dumps({"error": error}), status, mimetype="application/json")
