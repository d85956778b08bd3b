"""A local stand-in for HubSpot's CRM v3 API, for tests and demos: never a CRM.

:class:`FakeHubSpot` is an HTTP/1.1 server on loopback (standard library) that answers the
calls the ``hubspot`` source and the ``hubspot_task`` channel make, as HubSpot documents them:

- ``POST /crm/v3/objects/{companies,contacts}/search``: ``filterGroups`` (``GTE``, ``LTE``,
  ``EQ``, ``IN``), one ascending or descending sort, ``properties``, ``limit`` (at most 200)
  and ``after``; answers ``{"total", "results": [{"id", "properties", "createdAt",
  "updatedAt", "archived"}], "paging": {"next": {"after"}}}``. Past the search window
  (10,000 results, :attr:`FakeHubSpot.window`) it answers 400, as HubSpot does;
- ``POST /crm/v4/associations/contacts/companies/batch/read``;
- ``GET /crm/v3/owners`` (``limit``, ``after``, ``email``);
- ``POST /crm/v3/objects/tasks``: a task with ``hs_timestamp`` and an association to a
  company it knows, answered 201; scripted answers (:meth:`FakeHubSpot.script`):
  ``"accept"``, ``"transient"`` (429 with HubSpot's rate-limit headers), ``"permanent"``
  (400 ``VALIDATION_ERROR``), ``"no_answer"`` (read the request and hang up).

Errors carry HubSpot's body ``{"status": "error", "message", "correlationId", "category"}``;
a private app without a scope (:attr:`FakeHubSpot.missing_scopes`) gets 403
``MISSING_SCOPES`` naming it in ``errors[0].context.requiredGranularScopes``; the first
:attr:`FakeHubSpot.too_many` calls get 429 with ``X-HubSpot-RateLimit-*`` headers. Every
request that breaks the documented shape is refused with 400 and recorded in
:attr:`FakeHubSpot.refused`.
"""

from __future__ import annotations

import itertools
import json
import threading
import uuid
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["FakeHubSpot"]

TOKEN = "pat-na1-00000000-fake-0000-0000-000000000000"  # noqa: S105 - the fake's own
SCOPES = {
    "companies": "crm.objects.companies.read",
    "contacts": "crm.objects.contacts.read",
    "owners": "crm.objects.owners.read",
    "tasks": "crm.objects.contacts.write",
}
_MODIFIED = {"companies": "hs_lastmodifieddate", "contacts": "lastmodifieddate"}
_OPERATORS = {"EQ", "NEQ", "GT", "GTE", "LT", "LTE", "IN", "HAS_PROPERTY"}
Answer = tuple[int, object, dict[str, str]]


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _ms(value: Any) -> int | None:
    text = str(value)
    if text.isdigit():
        return int(text)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return int(when.timestamp()) * 1000 + when.microsecond // 1000
    except ValueError:
        return None


class FakeHubSpot:
    """HubSpot's companies, contacts, associations, owners and tasks on ``127.0.0.1``."""

    def __init__(self, *, token: str = TOKEN, port: int = 0) -> None:
        self.token = token
        #: Objects by type, then by id: ``{"id", "properties", "createdAt", "updatedAt"}``.
        self.objects: dict[str, dict[str, dict[str, Any]]] = {"companies": {}, "contacts": {}}
        #: Contact id -> [(company id, primary?)].
        self.links: dict[str, list[tuple[str, bool]]] = {}
        self.owners: list[dict[str, Any]] = []
        self.tasks: list[dict[str, Any]] = []
        self.window = 10_000
        self.too_many = 0
        self.daily_limit = False
        self.missing_scopes: set[str] = set()
        #: Paths answered with a page that is not HubSpot's shape.
        self.malformed: set[str] = set()
        self.requests: list[tuple[str, str, Any]] = []
        self.refused: list[str] = []
        #: Task requests that arrived (the contract counts attempts by it).
        self.arrived = 0
        self._script: deque[str] = deque()
        self._ids = itertools.count(1001)
        self._clock = itertools.count(1_764_547_200_000, 1000)  # 2025-12-01, a second apart
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self._server.daemon_threads = True

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeHubSpot:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeHubSpot:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def script(self, *answers: str) -> None:
        """How the next task requests are answered, in order; then ``accept``."""
        self._script.extend(answers)

    # -- the CRM's data ---------------------------------------------------------------------

    def owner(self, email: str, *, first: str = "", last: str = "") -> str:
        ident = str(next(self._ids))
        self.owners.append(
            {
                "id": ident,
                "email": email,
                "firstName": first,
                "lastName": last,
                "userId": int(ident),
                "archived": False,
            }
        )
        return ident

    def company(self, *, modified: int | None = None, id: str | None = None, **props: Any) -> str:
        return self._put("companies", id, modified, props)

    def contact(
        self,
        *,
        companies: tuple[str, ...] = (),
        primary: str | None = None,
        modified: int | None = None,
        id: str | None = None,
        **props: Any,
    ) -> str:
        """A contact associated with ``companies``; the primary one is ``primary``, else the
        first (``primary=""``: none, as when the primary company was deleted)."""
        ident = self._put("contacts", id, modified, props)
        first = primary if primary is not None else (companies[0] if companies else None)
        self.links[ident] = [(c, c == first) for c in companies]
        return ident

    def _put(
        self, kind: str, ident: str | None, modified: int | None, props: Mapping[str, Any]
    ) -> str:
        ident = ident or str(next(self._ids))
        at = modified if modified is not None else next(self._clock)
        old = self.objects[kind].get(ident)
        record = {
            "id": ident,
            "properties": {
                **(old["properties"] if old else {}),
                **{k: None if v is None else str(v) for k, v in props.items()},
                "hs_object_id": ident,
                _MODIFIED[kind]: _iso(at),
            },
            "createdAt": old["createdAt"] if old else _iso(at),
            "updatedAt": _iso(at),
            "archived": False,
        }
        self.objects[kind][ident] = record
        return ident

    # -- answering --------------------------------------------------------------------------

    def answer(self, method: str, target: str, headers: Mapping[str, str], raw: bytes) -> Answer:
        """``(status, body, headers)``; status 0: hang up."""
        split = urlsplit(target)
        path, query = split.path, {k: v[-1] for k, v in parse_qs(split.query).items()}
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return self._refuse(f"{method} {path}: the body is not JSON")
        with self._lock:
            self.requests.append((method, path, body if body is not None else query))
        if headers.get("Authorization") != f"Bearer {self.token}":
            return _error(401, "INVALID_AUTHENTICATION", "Authentication credentials not found.")
        kind = self._kind(path)
        if kind is None:
            return _error(404, "OBJECT_NOT_FOUND", f"no route for {method} {path}")
        if SCOPES[kind] in self.missing_scopes:
            return _missing_scope(SCOPES[kind])
        if kind == "tasks":
            return self._task(body)
        if self.daily_limit or self.too_many:
            return self._limited()
        if path in self.malformed:
            return 200, {"results": [{"no": "id"}], "paging": {"next": {"after": "x"}}}, {}
        if path == "/crm/v3/owners" and method == "GET":
            return self._owners(query)
        if path.endswith("/search") and method == "POST":
            return self._search(kind, body)
        if path == "/crm/v4/associations/contacts/companies/batch/read" and method == "POST":
            return self._associations(body)
        return _error(405, "VALIDATION_ERROR", f"{method} is not allowed on {path}")

    def _kind(self, path: str) -> str | None:
        if path == "/crm/v3/owners":
            return "owners"
        if path == "/crm/v3/objects/tasks":
            return "tasks"
        for kind in ("companies", "contacts"):
            if path == f"/crm/v3/objects/{kind}/search":
                return kind
        if path == "/crm/v4/associations/contacts/companies/batch/read":
            return "contacts"
        return None

    def _limited(self) -> Answer:
        with self._lock:
            self.too_many = max(0, self.too_many - 1)
        policy = "DAILY" if self.daily_limit else "TEN_SECONDLY_ROLLING"
        headers = {
            "X-HubSpot-RateLimit-Max": "190",
            "X-HubSpot-RateLimit-Remaining": "0",
            "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
            "X-HubSpot-RateLimit-Daily": "1000000",
            "X-HubSpot-RateLimit-Daily-Remaining": "0" if self.daily_limit else "999000",
        }
        body = {
            "status": "error",
            "message": "You have reached your daily limit."
            if self.daily_limit
            else "You have reached your ten_secondly_rolling limit.",
            "errorType": "RATE_LIMIT",
            "correlationId": str(uuid.uuid4()),
            "policyName": policy,
        }
        return 429, body, headers

    def _refuse(self, reason: str) -> Answer:
        with self._lock:
            self.refused.append(reason)
        return _error(400, "VALIDATION_ERROR", reason)

    def _owners(self, query: Mapping[str, str]) -> Answer:
        owners = [o for o in self.owners if "email" not in query or o["email"] == query["email"]]
        limit = int(query.get("limit", "100"))
        if not 1 <= limit <= 500:
            return self._refuse(f"owners: limit {limit} is not 1 to 500")
        start = int(query.get("after", "0"))
        page = owners[start : start + limit]
        answer: dict[str, Any] = {"results": page}
        if start + limit < len(owners):
            answer["paging"] = {"next": {"after": str(start + limit)}}
        return 200, answer, {}

    def _search(self, kind: str, body: Any) -> Answer:
        if not isinstance(body, dict):
            return self._refuse(f"{kind} search: the body is not an object")
        limit, after = body.get("limit", 10), body.get("after", "0")
        if not isinstance(limit, int) or not 1 <= limit <= 200:
            return self._refuse(f"{kind} search: limit {limit!r} is not 1 to 200")
        if not str(after).isdigit():
            return self._refuse(f"{kind} search: after {after!r} is not a number")
        start = int(after)
        if start + limit > self.window:
            return _error(400, "VALIDATION_ERROR", f"Cannot page beyond {self.window} results")
        found = list(self.objects[kind].values())
        groups = body.get("filterGroups") or []
        if groups:
            try:
                found = [r for r in found if any(_matches(r, g) for g in groups)]
            except ValueError as exc:
                return self._refuse(f"{kind} search: {exc}")
        for sort in reversed(body.get("sorts") or []):
            prop = str(sort["propertyName"])
            found.sort(key=partial(_sort_key, prop), reverse=sort.get("direction") == "DESCENDING")
        wanted = set(body.get("properties") or ["hs_object_id"]) | {"hs_object_id", "createdate"}
        page = [
            {**r, "properties": {k: v for k, v in r["properties"].items() if k in wanted}}
            for r in found[start : start + limit]
        ]
        answer: dict[str, Any] = {"total": len(found), "results": page}
        if start + limit < len(found):
            answer["paging"] = {"next": {"after": str(start + limit)}}
        return 200, answer, {}

    def _associations(self, body: Any) -> Answer:
        inputs = body.get("inputs") if isinstance(body, dict) else None
        if not isinstance(inputs, list) or not inputs or len(inputs) > 1000:
            return self._refuse("associations batch read: inputs must hold 1 to 1000 ids")
        results = []
        for item in inputs:
            ident = str(item.get("id"))
            links = self.links.get(ident) or []
            if not links:
                continue
            results.append(
                {
                    "from": {"id": ident},
                    "to": [
                        {
                            "toObjectId": int(company),
                            "associationTypes": [
                                *(
                                    [
                                        {
                                            "category": "HUBSPOT_DEFINED",
                                            "typeId": 1,
                                            "label": "Primary",
                                        }
                                    ]
                                    if primary
                                    else []
                                ),
                                {"category": "HUBSPOT_DEFINED", "typeId": 279, "label": None},
                            ],
                        }
                        for company, primary in links
                    ],
                }
            )
        return (
            200,
            {
                "status": "COMPLETE",
                "results": results,
                "startedAt": _iso(0),
                "completedAt": _iso(0),
            },
            {},
        )

    def _task(self, body: Any) -> Answer:
        with self._lock:
            self.arrived += 1
            scripted = self._script.popleft() if self._script else "accept"
        if scripted == "no_answer":
            return 0, None, {}
        if scripted == "transient":
            return self._limited()
        if scripted == "permanent":
            return _error(400, "VALIDATION_ERROR", "Property values were not valid")
        props = body.get("properties") if isinstance(body, dict) else None
        if not isinstance(props, dict) or not props.get("hs_timestamp"):
            return self._refuse("task: properties.hs_timestamp is required")
        if _ms(props["hs_timestamp"]) is None:
            return self._refuse(f"task: hs_timestamp {props['hs_timestamp']!r} is not a date")
        owner = props.get("hubspot_owner_id")
        if owner is not None and owner not in {o["id"] for o in self.owners}:
            return _error(400, "VALIDATION_ERROR", f"{owner} is not a valid owner id")
        for link in body.get("associations") or []:
            target = str((link.get("to") or {}).get("id"))
            types = [t.get("associationTypeId") for t in link.get("types") or []]
            if types != [192] or target not in self.objects["companies"]:
                return _error(
                    400,
                    "VALIDATION_ERROR",
                    f"association to {target} with types {types} is not valid",
                )
        ident = str(next(self._ids))
        task = {"id": ident, "properties": props, "associations": body.get("associations") or []}
        with self._lock:
            self.tasks.append(task)
        now = _iso(next(self._clock))
        return (
            201,
            {
                "id": ident,
                "properties": props,
                "createdAt": now,
                "updatedAt": now,
                "archived": False,
            },
            {},
        )


def _sort_key(prop: str, record: Mapping[str, Any]) -> tuple[int, int]:
    return _ms(record["properties"].get(prop)) or 0, int(record["id"])


def _matches(record: Mapping[str, Any], group: Mapping[str, Any]) -> bool:
    return all(_holds(record, f) for f in group.get("filters") or [])


def _holds(record: Mapping[str, Any], rule: Mapping[str, Any]) -> bool:
    operator = rule.get("operator")
    if operator not in _OPERATORS:
        raise ValueError(f"operator {operator!r} is not one HubSpot knows")
    value = record["properties"].get(rule.get("propertyName"))
    if operator == "HAS_PROPERTY":
        return value is not None
    if operator == "IN":
        values = rule.get("values")
        if not isinstance(values, list):
            raise ValueError("IN needs values, a list")
        return str(value) in [str(v) for v in values]
    wanted = rule.get("value")
    if operator in ("EQ", "NEQ"):
        return bool((str(value) == str(wanted)) == (operator == "EQ"))
    have, limit = _ms(value), _ms(wanted)
    if have is None or limit is None:
        return False
    return {"GT": have > limit, "GTE": have >= limit, "LT": have < limit, "LTE": have <= limit}[
        str(operator)
    ]


def _error(status: int, category: str, message: str) -> Answer:
    return (
        status,
        {
            "status": "error",
            "message": message,
            "correlationId": str(uuid.uuid4()),
            "category": category,
        },
        {},
    )


def _missing_scope(scope: str) -> Answer:
    body = {
        "status": "error",
        "message": (
            "This app hasn't been granted all required scopes to make this call. Read more "
            "about required scopes here: https://developers.hubspot.com/scopes."
        ),
        "correlationId": str(uuid.uuid4()),
        "errors": [
            {
                "message": "One or more of the following scopes are required.",
                "context": {"requiredGranularScopes": [scope]},
            }
        ],
        "links": {"scopes": "https://developers.hubspot.com/scopes"},
        "category": "MISSING_SCOPES",
    }
    return 403, body, {}


def _handler(fake: FakeHubSpot) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            status, body, extra = fake.answer(
                self.command, self.path, dict(self.headers.items()), raw
            )
            if status == 0:
                self.close_connection = True  # read it all, answer nothing
                return
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json;charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        do_GET = _serve
        do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
