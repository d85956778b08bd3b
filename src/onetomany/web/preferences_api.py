"""The contact's own preferences, for the widget's preferences panel (or the host's own UI),
by the same bearer token as the inbox API and through the same policy API as the preference
page of an email (:meth:`Engine.unsubscribe` / :meth:`Engine.resubscribe`).

================================  ==========================================================
``GET  /inbox/preferences``       ``{"topics": [{"name", "description", "transactional",
                                  "subscribed"}], "channels": [{"kind", "subscribed"}]}``
``POST /inbox/preferences``       ``{"topics": {"tips": false}, "channels": {"sms": true}}``:
                                  only the names given change; answers the new state
================================  ==========================================================

A transactional topic (always sent), a topic or channel the program does not offer, or a
value other than true/false is refused with 400 naming it, before anything changes.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from onetomany.engine import Engine
from onetomany.rules.topics import Preferences
from onetomany.web.context import HTTPProblem, WebContext, answering, ok
from onetomany.web.unsubscribe_pages import channel_kinds, channel_on

#: The source each change is recorded with (consent keeps who said what, where).
SOURCE = "inbox"


def preferences_json(preferences: Preferences, kinds: list[str]) -> dict[str, Any]:
    return {
        "topics": [
            {
                "name": name,
                "description": topic.description,
                "transactional": topic.transactional,
                "subscribed": topic.transactional or preferences.allows(name),
            }
            for name, topic in preferences.topics.items()
        ],
        "channels": [{"kind": kind, "subscribed": channel_on(preferences, kind)} for kind in kinds],
    }


def _wanted(body: dict[str, Any], field: str, offered: set[str]) -> dict[str, bool]:
    given = body.get(field, {})
    if not isinstance(given, dict):
        raise HTTPProblem(400, f'"{field}" must be an object of name: true/false')
    unknown = sorted(set(given) - offered)
    if unknown:
        raise HTTPProblem(
            400,
            f'"{field}" names {", ".join(repr(u[:60]) for u in unknown)}, which the contact '
            f"cannot change (offered: {', '.join(sorted(offered)) or 'none'}); nothing changed",
        )
    for name, value in given.items():
        if not isinstance(value, bool):
            raise HTTPProblem(400, f'"{field}.{name}" must be true or false; nothing changed')
    return dict(given)


def apply(
    engine: Engine, contact_id: str, topics: dict[str, bool], channels: dict[str, bool]
) -> Preferences:
    """Make the contact's answers say ``topics`` and ``channels`` (names already checked)."""
    preferences = engine.preferences(contact_id)
    for kind, wanted in channels.items():
        if wanted != channel_on(preferences, kind):
            change = engine.resubscribe if wanted else engine.unsubscribe
            change(contact_id, None, kind, source=SOURCE)
    preferences = engine.preferences(contact_id)
    for name, wanted in topics.items():
        if wanted != preferences.allows(name):
            change = engine.resubscribe if wanted else engine.unsubscribe
            change(contact_id, name, source=SOURCE)
    return engine.preferences(contact_id)


def routes(web: WebContext) -> list[BaseRoute]:
    """The preference routes, bound to ``web``'s engine and tokens."""
    engine = web.engine
    kinds = [str(kind) for kind in channel_kinds(engine)]

    async def show(request: Request) -> JSONResponse:
        contact = web.contact_id(request)
        preferences = await run_in_threadpool(engine.preferences, contact)
        return ok(preferences_json(preferences, kinds))

    async def change(request: Request) -> JSONResponse:
        contact = web.contact_id(request)
        body = await web.json_body(request)
        optional = {n for n, t in engine.program.topics.items() if not t.transactional}
        topics = _wanted(body, "topics", optional)
        channels = _wanted(body, "channels", set(kinds))
        preferences = await run_in_threadpool(apply, engine, contact, topics, channels)
        return ok(preferences_json(preferences, kinds))

    return [
        Route("/inbox/preferences", answering(show), methods=["GET"]),
        Route("/inbox/preferences", answering(change), methods=["POST"]),
    ]
