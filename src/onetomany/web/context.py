"""What every route module of the web app shares: the engine, the tokens, the settings, and
the few request helpers (the contact a request speaks for, a JSON body read within limits,
error answers).

A route module is a function ``routes(context) -> list of Starlette routes``; the app mounts
the modules listed in :data:`onetomany.web.app.ROUTE_MODULES` plus any the host passes, so the
unsubscribe endpoints and the provider webhooks each arrive later as one more module.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qs

import attrs
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute

from onetomany.engine import Engine
from onetomany.errors import InputError
from onetomany.web.tokens import ContactTokens, TokenError

T = TypeVar("T")

#: The largest request body the app reads; a longer one is refused with 413, unread.
DEFAULT_MAX_BODY = 16 * 1024


class HTTPProblem(Exception):
    """An answer other than success: its status and a message that names what is wrong."""

    def __init__(
        self,
        status: int,
        message: str,
        headers: dict[str, str] | None = None,
        *,
        payload: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.payload = payload or {}

    def response(self) -> JSONResponse:
        return JSONResponse(
            {"error": self.message, **self.payload},
            status_code=self.status,
            headers=_NO_STORE | self.headers,
        )


_NO_STORE = {"Cache-Control": "no-store"}


@attrs.frozen(kw_only=True)
class WebContext:
    """The engine the app serves, the contact tokens it accepts, and its limits."""

    engine: Engine
    tokens: ContactTokens
    max_body: int = DEFAULT_MAX_BODY
    #: The write keys Segment-compatible calls authenticate with (none: ``/v1`` is off).
    segment_write_keys: tuple[str, ...] = ()
    #: Run the inbox's reads on the event loop rather than in a worker thread: on SQLite
    #: (the default there) a read never waits for a lock (WAL) and takes well under a
    #: millisecond, less than handing it to a thread, and a request then never waits for
    #: the GIL behind another thread. On PostgreSQL a read waits on the network: threads.
    #: ``None``: inline on SQLite, in threads on other databases.
    inline_reads: bool | None = None

    async def read(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)``, a store read: on the event loop or in a worker thread
        (:attr:`inline_reads`)."""
        inline = self.inline_reads
        if inline is None:
            inline = self.engine.store.dialect == "sqlite"
        if inline:
            return function(*args)
        return await run_in_threadpool(function, *args)

    def contact_id(self, request: Request) -> str:
        """The contact the request's ``Authorization: Bearer`` token names, or a 401."""
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise HTTPProblem(
                401,
                "an Authorization: Bearer <token> header is required (the host's backend "
                "issues the token)",
                {"WWW-Authenticate": 'Bearer realm="onetomany"'},
            )
        try:
            return self.tokens.contact_id(token.strip(), now=self.engine.clock.now())
        except TokenError as exc:
            raise HTTPProblem(
                401, str(exc), {"WWW-Authenticate": 'Bearer error="invalid_token"'}
            ) from exc

    async def body(self, request: Request, *, limit: int | None = None) -> bytes:
        """The request's body, read up to ``limit`` (``max_body``) bytes (413 above it,
        unread)."""
        most = self.max_body if limit is None else limit
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > most:
            raise HTTPProblem(413, f"the body has {declared} bytes; at most {most}")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > most:
                raise HTTPProblem(413, f"the body is longer than {most} bytes")
        return bytes(body)

    async def form_body(self, request: Request) -> dict[str, list[str]]:
        """The request's ``application/x-www-form-urlencoded`` fields (empty body: ``{}``),
        read within ``max_body``: what an HTML form and RFC 8058's one-click POST send."""
        body = await self.body(request)
        if not body:
            return {}
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/x-www-form-urlencoded":
            raise HTTPProblem(
                415, f"the body must be application/x-www-form-urlencoded, not {kind[:60]!r}"
            )
        try:
            return parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
        except (UnicodeDecodeError, ValueError) as exc:
            raise HTTPProblem(400, f"the form body does not read: {exc}"[:200]) from exc

    async def json_body(self, request: Request) -> dict[str, Any]:
        """The request's JSON object body (empty: ``{}``), read up to ``max_body`` bytes.

        Only ``application/json`` is read: a cross-site HTML form cannot send it without a
        CORS preflight, which is one of the app's CSRF defences (docs/web.md)."""
        body = await self.body(request)
        if not body:
            return {}
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/json":
            raise HTTPProblem(415, f"the body must be application/json, not {kind[:60]!r}")
        try:
            value = json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise HTTPProblem(400, f"the body is not valid JSON: {exc}"[:200]) from exc
        if not isinstance(value, dict):
            raise HTTPProblem(400, f"the body must be a JSON object, not {type(value).__name__}")
        return value


def ok(value: Any, status: int = 200) -> JSONResponse:
    """A JSON answer nobody caches (it is one contact's)."""
    return JSONResponse(value, status_code=status, headers=_NO_STORE)


Handler = Callable[[Request], Any]


def answering(handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
    """Turn HTTPProblem and InputError (bad input the engine names) into JSON answers."""

    async def endpoint(request: Request) -> Any:
        try:
            return await handler(request)
        except HTTPProblem as problem:
            return problem.response()
        except InputError as exc:
            return HTTPProblem(400, str(exc)).response()

    endpoint.__name__ = getattr(handler, "__name__", "endpoint")
    return endpoint


RouteModule = Callable[[WebContext], Sequence[BaseRoute]]
