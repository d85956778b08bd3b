"""The ASGI application a host mounts under a prefix of its own backend.

::

    from onetomany.web import SigningKeys, create_app

    app = create_app(engine, keys=SigningKeys.from_env())   # ONETOMANY_WEB_KEYS="k1:..."
    fastapi_app.mount("/onetomany", app)                    # or Flask, Django: docs/web.md

It holds no state of its own: every request runs the engine's inbox methods for the contact
its token names, in a worker thread (the engine is thread-safe for those).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute

from onetomany.engine import Engine
from onetomany.web import (
    inbox_api,
    nps_pages,
    preferences_api,
    segment_api,
    tracking_routes,
    unsubscribe_pages,
    webhook_routes,
    widget,
)
from onetomany.web.context import DEFAULT_MAX_BODY, RouteModule, WebContext
from onetomany.web.tokens import DEFAULT_TTL, ContactTokens, SigningKeys

#: The route modules every app mounts.
ROUTE_MODULES: tuple[RouteModule, ...] = (
    inbox_api.routes,
    preferences_api.routes,
    widget.routes,
    unsubscribe_pages.routes,
    tracking_routes.routes,
    nps_pages.routes,
    webhook_routes.routes,
    segment_api.routes,
)


def create_app(
    engine: Engine,
    *,
    keys: SigningKeys,
    allowed_origins: Iterable[str] = (),
    max_body: int = DEFAULT_MAX_BODY,
    extra_routes: Sequence[RouteModule] = (),
    segment_write_keys: Iterable[str] = (),
    inline_reads: bool | None = None,
) -> Starlette:
    """The web app for ``engine``.

    :param keys: the secrets the host's backend signs contact tokens with
        (:func:`issue_token`); the first (``current``) signs, all verify.
    :param allowed_origins: other origins whose pages may call the API (CORS); by default
        only pages of the host's own origin may. ``"*"`` is refused: it would let any site
        that obtains a token read the inbox from its own pages.
    :param max_body: the largest request body read, in bytes (413 above it).
    :param extra_routes: more route modules (``routes(context) -> [Route, ...]``).
    :param segment_write_keys: the write keys Segment-compatible senders authenticate with
        at ``/v1/identify``, ``/v1/track``, ... (docs/segment.md); none turns ``/v1`` off.
    :param inline_reads: run the inbox list and counts reads on the event loop instead of a
        worker thread; ``None`` (the default) does so on SQLite only, where a read takes well
        under a millisecond and never waits for a lock (docs/web.md, "Deploying").
    """
    origins = list(allowed_origins)
    if "*" in origins:
        raise ValueError("allowed_origins '*' is refused: name the origins that embed the widget")
    write_keys = tuple(segment_write_keys)
    if any(len(key) < 16 for key in write_keys):
        raise ValueError("a Segment write key must have at least 16 characters")
    context = WebContext(
        engine=engine,
        tokens=ContactTokens(keys),
        max_body=max_body,
        segment_write_keys=write_keys,
        inline_reads=inline_reads,
    )
    routes: list[BaseRoute] = []
    for module in (*ROUTE_MODULES, *extra_routes):
        routes.extend(module(context))
    middleware = [
        Middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
            allow_credentials=False,
            max_age=600,
        )
    ]
    app = Starlette(routes=routes, middleware=middleware)
    app.state.onetomany = context
    return app


def issue_token(
    keys: SigningKeys, contact_id: str, *, engine: Engine, ttl: timedelta | None = None
) -> str:
    """A token for ``contact_id`` (the logged-in user), for the host's backend to hand to the
    widget; valid for ``ttl`` (12 hours by default) on the engine's clock."""
    return ContactTokens(keys).issue(contact_id, now=engine.clock.now(), ttl=ttl or DEFAULT_TTL)
