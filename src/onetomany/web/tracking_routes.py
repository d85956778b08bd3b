"""The signed tracking links of an email (:mod:`onetomany.rules.tracking_links`).

=====================  ==================================================================
``GET /c/{token}``     a click: records ``message_clicked`` for the link and redirects
                       (302) to the URL the token signs, and to no other
``GET /o/{token}``     the open pixel: records ``message_opened`` and answers a 1x1 GIF
=====================  ==================================================================

Each event's id comes from the message's key (and the link's position), so a link clicked
twice, or a pixel fetched on every reading, counts once. An open a machine made (a privacy
proxy, a scanner: :mod:`onetomany.rules.machine_opens`) is stored under its own id with
``machine: true`` and the reason: counted apart, it stops no ``not_opened`` ladder. A token
that is tampered with, truncated, of the other kind or signed by a key the program does not
hold is answered 400, and nothing is recorded. A valid token whose message is no longer in
the store still leads to its link, and records nothing.
"""

from __future__ import annotations

import base64
import hashlib

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from onetomany.engine import Engine
from onetomany.rules.machine_opens import machine_open
from onetomany.rules.tracking_links import TrackingTokenError, verify_click, verify_open
from onetomany.store.queries.outbox import outbox_row, sent_at
from onetomany.web.context import WebContext
from onetomany.web.pages import refused

#: The smallest transparent GIF.
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
_NO_CACHE = {"Cache-Control": "no-store, private", "Referrer-Policy": "no-referrer"}


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:40]


def record_click(engine: Engine, key: str, position: int, url: str) -> bool:
    """Store the click of link ``position``; False when no outbox row has ``key``."""
    if outbox_row(engine.store, key) is None:
        return False
    engine.track_engagement(
        key,
        "clicked",
        id=f"click-{_digest(key)}-{position}",
        properties={"position": position, "url": url},
    )
    return True


def record_open(engine: Engine, key: str, user_agent: str) -> bool:
    """Store the open of the message keyed ``key``, flagged when a machine made it; False
    when no outbox row has ``key``."""
    if outbox_row(engine.store, key) is None:
        return False
    reason = machine_open(
        user_agent, sent_at=sent_at(engine.store, key), opened_at=engine.clock.now()
    )
    if reason is None:
        engine.track_engagement(key, "opened", id=f"open-{_digest(key)}")
    else:
        engine.track_engagement(
            key,
            "opened",
            id=f"open-machine-{_digest(key)}",
            properties={"machine": True, "machine_reason": reason},
        )
    return True


def routes(context: WebContext) -> list[BaseRoute]:
    engine = context.engine

    async def click(request: Request) -> Response:
        try:
            claims = verify_click(engine.program.unsubscribe, request.path_params["token"])
        except TrackingTokenError as exc:
            return refused(request, str(exc))
        await run_in_threadpool(record_click, engine, claims.key, claims.position, claims.url)
        return RedirectResponse(claims.url, status_code=302, headers=_NO_CACHE)

    async def opened(request: Request) -> Response:
        try:
            key = verify_open(engine.program.unsubscribe, request.path_params["token"])
        except TrackingTokenError as exc:
            return refused(request, str(exc))
        agent = request.headers.get("user-agent", "")
        await run_in_threadpool(record_open, engine, key, agent)
        return Response(PIXEL, media_type="image/gif", headers=_NO_CACHE)

    return [
        Route("/c/{token}", click, methods=["GET"]),
        Route("/o/{token}", opened, methods=["GET"]),
    ]
