"""The in-app inbox API: what the widget (or the host's own UI) calls for one contact.

Every route reads the contact from the request's token (:meth:`WebContext.contact_id`) and
passes it to the engine, which touches that contact's items only: an item id of another
contact answers 404, as an id that does not exist does.

==========================  ===========================================================
``GET  /inbox``             a page of a tab: ``?tab=inbox|unread|archived&topic=&limit=&after=``
``GET  /inbox/counts``      ``{"unread": n, "unseen": n}`` (the bell; cheap enough to poll)
``POST /inbox/seen``        the list was shown: every visible item is seen
``POST /inbox/read``        ``{"ids": [..]}`` or ``{"all": true}``: mark read
``POST /inbox/{id}/read``   mark one read (a ``message_opened`` event)
``POST /inbox/{id}/click``  a click-through (``message_clicked``); answers the URL to open
``POST /inbox/{id}/archive`` / ``unarchive``
``POST /inbox/{id}/snooze`` ``{"until": "2026-12-09T09:00"}`` (no offset: the contact's
                            timezone); the item comes back unread then
==========================  ===========================================================

Bodies: ``body`` as stored, ``body_format`` the touch's (``text`` unless it says ``body =
"markdown"`` or ``"html"``), and ``body_html``: escaped text (line breaks as ``<br>``), so a page
that inserts it as HTML shows a ``<script>`` as text, or the markdown or HTML sanitised
(:mod:`onetomany.web.bodies`). A URL that is not http(s) or relative is not handed out (no
``javascript:`` links).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from onetomany.store import InboxItem
from onetomany.store.queries import inbox as inbox_q
from onetomany.store.queries.inbox import TABS, InboxCounts, Position
from onetomany.web.bodies import body_html
from onetomany.web.context import HTTPProblem, WebContext, answering, ok


def safe_url(url: str | None) -> str | None:
    """``url`` if a browser may follow it from the inbox (http, https, or relative)."""
    if not url:
        return None
    cleaned = url.strip()
    try:
        scheme = urlsplit(cleaned).scheme.lower()
    except ValueError:
        return None
    if scheme in ("http", "https") or (not scheme and not cleaned.startswith("//")):
        # A relative URL with a control character could still turn into a scheme in a browser.
        return cleaned if cleaned.isprintable() else None
    return None


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def item_json(item: InboxItem, body_format: str = "text") -> dict[str, Any]:
    """What the API shows of an item: no other contact's data, bodies escaped or sanitised
    (``body_format``: the touch's, :func:`onetomany.web.bodies.body_html`)."""
    return {
        "id": item.id,
        "touch": item.touch,
        "topic": item.topic,
        "title": item.title,
        "body": item.body,
        "body_format": body_format,
        "body_html": body_html(item.body, body_format),
        "url": safe_url(item.url),
        "created_at": _time(item.created_at),
        "shown_at": _time(item.shown_at),
        "read": item.read_at is not None,
        "read_at": _time(item.read_at),
        "seen": item.seen_at is not None,
        "archived": item.archived_at is not None,
        "snoozed_until": _time(item.snoozed_until),
    }


def counts_json(counts: InboxCounts) -> dict[str, int]:
    return {"unread": counts.unread, "unseen": counts.unseen}


def _item_id(request: Request) -> int:
    raw = request.path_params["item_id"]
    if not raw.isdigit() or len(raw) > 19:
        raise HTTPProblem(404, f"no inbox item {raw[:40]!r}")
    return int(raw)


def _limit(text: str | None) -> int:
    if text is None:
        return 20
    if not text.isdigit():
        raise HTTPProblem(400, f"limit {text[:40]!r} is not a whole number")
    return int(text)


def routes(web: WebContext) -> list[BaseRoute]:
    """The inbox routes, bound to ``web``'s engine and tokens."""
    engine = web.engine
    # The touch's body format; a touch no longer in the program shows its items as text.
    formats = {touch.name: touch.body for touch in engine.program.touches}

    async def list_items(request: Request) -> JSONResponse:
        contact = web.contact_id(request)
        query = request.query_params
        tab = query.get("tab", "inbox")
        if tab not in TABS:
            raise HTTPProblem(400, f"tab {tab[:40]!r} is not one of {', '.join(TABS)}")
        after = Position.parse(query["after"]) if query.get("after") else None

        limit = _limit(query.get("limit"))
        topic = query.get("topic") or None

        def read() -> dict[str, Any]:
            # One statement for the page, the counts and the contact's locale (one snapshot).
            view = inbox_q.inbox_view(
                engine.store,
                contact,
                now=engine.clock.now(),
                tab=tab,
                topic=topic,
                limit=limit,
                after=after,
            )
            page = view.page
            return {
                "items": [item_json(item, formats.get(item.touch, "text")) for item in page.items],
                "next": str(page.next) if page.next is not None else None,
                "counts": counts_json(view.counts),
                "contact": {"locale": view.locale, "timezone": view.timezone},
            }

        return ok(await web.read(read))

    async def counts(request: Request) -> JSONResponse:
        contact = web.contact_id(request)
        return ok(counts_json(await web.read(engine.inbox_counts, contact)))

    async def seen(request: Request) -> JSONResponse:
        contact = web.contact_id(request)
        await web.json_body(request)
        changed = await run_in_threadpool(engine.mark_seen, contact)
        return await _changed(contact, changed)

    async def read_many(request: Request) -> JSONResponse:
        contact = web.contact_id(request)
        body = await web.json_body(request)
        if body.get("all") is True:
            ids = None
        elif isinstance(body.get("ids"), list):
            ids = body["ids"]
        else:
            raise HTTPProblem(400, 'give "ids": [item ids] or "all": true')
        changed = await run_in_threadpool(engine.mark_read, contact, ids)
        return await _changed(contact, changed)

    async def read_one(request: Request) -> JSONResponse:
        contact, item_id = web.contact_id(request), _item_id(request)
        await web.json_body(request)
        await _exists(contact, item_id)
        changed = await run_in_threadpool(engine.mark_read, contact, [item_id])
        return await _changed(contact, changed)

    async def click(request: Request) -> JSONResponse:
        contact, item_id = web.contact_id(request), _item_id(request)
        await web.json_body(request)
        item = await run_in_threadpool(engine.click, contact, item_id)
        if item is None:
            raise HTTPProblem(404, f"no inbox item {item_id}")
        return ok({"url": safe_url(item.url)})

    def archiving(archived: bool) -> Any:
        async def endpoint(request: Request) -> JSONResponse:
            contact, item_id = web.contact_id(request), _item_id(request)
            await web.json_body(request)
            await _exists(contact, item_id)
            changed = await run_in_threadpool(
                lambda: engine.archive(contact, [item_id], archived=archived)
            )
            return await _changed(contact, changed)

        endpoint.__name__ = "archive" if archived else "unarchive"
        return endpoint

    async def snooze(request: Request) -> JSONResponse:
        contact, item_id = web.contact_id(request), _item_id(request)
        body = await web.json_body(request)
        text = body.get("until")
        if not isinstance(text, str):
            raise HTTPProblem(400, '"until" is required: an ISO 8601 time, e.g. 2026-12-09T09:00')
        try:
            until = datetime.fromisoformat(text)
        except ValueError as exc:
            raise HTTPProblem(400, f'"until" {text[:60]!r} is not an ISO 8601 time') from exc
        at = await run_in_threadpool(engine.snooze, contact, item_id, until)
        if at is None:
            raise HTTPProblem(404, f"no inbox item {item_id}")
        counts = await run_in_threadpool(engine.inbox_counts, contact)
        return ok({"until": at.isoformat(), "counts": counts_json(counts)})

    async def _exists(contact: str, item_id: int) -> None:
        if await run_in_threadpool(engine.inbox_item, contact, item_id) is None:
            raise HTTPProblem(404, f"no inbox item {item_id}")

    async def _changed(contact: str, changed: int) -> JSONResponse:
        counts = await run_in_threadpool(engine.inbox_counts, contact)
        return ok({"changed": changed, "counts": counts_json(counts)})

    item = "/inbox/{item_id}"
    return [
        Route("/inbox", answering(list_items), methods=["GET"]),
        Route("/inbox/counts", answering(counts), methods=["GET"]),
        Route("/inbox/seen", answering(seen), methods=["POST"]),
        Route("/inbox/read", answering(read_many), methods=["POST"]),
        Route(f"{item}/read", answering(read_one), methods=["POST"]),
        Route(f"{item}/click", answering(click), methods=["POST"]),
        Route(f"{item}/archive", answering(archiving(True)), methods=["POST"]),
        Route(f"{item}/unarchive", answering(archiving(False)), methods=["POST"]),
        Route(f"{item}/snooze", answering(snooze), methods=["POST"]),
    ]
