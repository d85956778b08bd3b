"""Provider webhooks: ``POST /webhooks/<channel>`` (or ``/webhooks/<channel>/<secret>``) for
each program channel whose plugin registered a parser
(:mod:`onetomany.delivery.webhooks`).

The parser authenticates the request and reads its events; this module records them:

* each event once: its id comes from the channel and the provider's event id, so a webhook
  delivered again (a retry, a replay) records nothing new and answers 200, as the provider
  wants, with ``duplicates`` counting it;
* mapped back to the outbox row by the key the channel attached; a request naming a row the
  store does not hold is refused (404) and nothing of it is recorded;
* ``delivered``, ``bounced`` and ``complained`` as ``message_delivered``, ``message_bounced``
  and ``message_complained``; ``opened`` and ``clicked`` as engagement events, which stop the
  ladders waiting on the message;
* a hard bounce and a complaint put the address on the suppression list (source
  ``webhook:<plugin>``);
* an unsubscribe made at the provider (its own link or list) unsubscribes the contact from
  every topic on the channel's kind, with the same source.
* an ``inbound`` event (a message the contact sent) is recorded for each contact with the
  sender's phone number, under the name the parser gives (``whatsapp_inbound``); a number no
  contact has is acknowledged and records nothing.

``GET`` reaches the parser too, for a provider's verification handshake (the parser answers
with :class:`~onetomany.delivery.webhooks.WebhookReply`). The parser runs in a worker thread:
one may fetch what its signature scheme needs (SNS's signing certificate).
"""

from __future__ import annotations

import hashlib
from typing import Any

import attrs
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import BaseRoute, Route

from onetomany.delivery.webhooks import (
    EVENT_NAMES,
    INBOUND,
    ProviderEvent,
    WebhookRefused,
    WebhookReply,
    WebhookRequest,
)
from onetomany.engine import Engine
from onetomany.model import Event
from onetomany.rules.suppression import Reason
from onetomany.store import OutboxRow
from onetomany.store.queries.outbox import outbox_row
from onetomany.store.queries.phones import contacts_with_phone
from onetomany.web.context import HTTPProblem, WebContext, answering, ok

_ENGAGEMENT = {"opened", "clicked"}


@attrs.frozen
class Outcome:
    recorded: int = 0
    duplicates: int = 0


def _event_id(channel: str, event: ProviderEvent) -> str:
    digest = hashlib.sha256(f"{channel}\0{event.id}".encode()).hexdigest()[:40]
    return f"wh-{digest}"


def rows_of(engine: Engine, events: list[ProviderEvent]) -> list[OutboxRow | None]:
    """The outbox row of each event (None for an inbound one); an HTTPProblem (404) naming
    the first key the store does not hold, before anything is recorded."""
    rows: list[OutboxRow | None] = []
    for event in events:
        if event.kind == INBOUND:
            rows.append(None)
            continue
        row = outbox_row(engine.store, event.key) if event.key else None
        if row is None or row.contact_id is None:
            raise HTTPProblem(
                404,
                f"event {event.id[:80]!r} names message {str(event.key)[:120]!r}, which the "
                "store does not hold; nothing was recorded",
            )
        rows.append(row)
    return rows


def record(engine: Engine, channel: str, plugin: str, events: list[ProviderEvent]) -> Outcome:
    """Record ``events`` of ``channel``; see the module's description."""
    rows = rows_of(engine, events)
    recorded = duplicates = 0
    for event, row in zip(events, rows, strict=True):
        if row is None:
            contacts, added = _record_inbound(engine, channel, event)
            recorded += added > 0
            duplicates += contacts > 0 and added == 0
            continue
        properties: dict[str, Any] = {
            **event.properties,
            "provider_event": event.id,
            "idempotency_key": row.idempotency_key,
            "touch": row.touch,
            "channel": row.channel,
        }
        if event.kind == "bounced":
            properties["hard"] = event.hard
        stored = Event(
            name=event.name or EVENT_NAMES[event.kind],
            contact_id=row.contact_id,
            account_id=row.account_id,
            occurred_at=min(event.at, engine.clock.now()),
            properties=properties,
            id=_event_id(channel, event),
        )
        if engine.store.add_events([stored], now=engine.clock.now()) == 0:
            duplicates += 1
            continue
        recorded += 1
        if event.address and (
            event.kind == "complained" or (event.kind == "bounced" and event.hard)
        ):
            reason = Reason.COMPLAINT if event.kind == "complained" else Reason.HARD_BOUNCE
            engine.suppress(
                event.address, reason, source=f"webhook:{plugin}", note=f"event {event.id}"[:200]
            )
        if event.kind == "unsubscribed" and row.contact_id is not None:
            sender = engine.channels.get(channel)
            kind = sender.serves if sender is not None else None
            engine.unsubscribe(row.contact_id, None, kind, source=f"webhook:{plugin}")
    return Outcome(recorded=recorded, duplicates=duplicates)


def _record_inbound(engine: Engine, channel: str, event: ProviderEvent) -> tuple[int, int]:
    """Record ``event`` for each contact with its sender's phone: how many contacts have it,
    and for how many it was new."""
    found = contacts_with_phone(engine.store, event.address) if event.address else []
    stored = [
        Event(
            name=event.name,
            contact_id=contact_id,
            account_id=account_id,
            occurred_at=min(event.at, engine.clock.now()),
            properties={**event.properties, "provider_event": event.id, "channel": channel},
            id=_event_id(channel, event) + (f"-{index}" if index else ""),
        )
        for index, (contact_id, account_id) in enumerate(found)
    ]
    added = engine.store.add_events(stored, now=engine.clock.now()) if stored else 0
    return len(found), added


def routes(context: WebContext) -> list[BaseRoute]:
    engine = context.engine
    parsers = engine.plugins.webhook_parsers()

    @answering
    async def webhook(request: Request) -> JSONResponse | PlainTextResponse:
        name = request.path_params["channel"]
        channel = engine.channels.get(name)
        settings = engine.program.channels.get(name)
        if channel is None or settings is None or settings.plugin not in parsers.names():
            raise HTTPProblem(404, f"no channel {name[:60]!r} takes webhooks in this program")
        parser = parsers.get(settings.plugin).value
        incoming = WebhookRequest(
            headers={k.lower(): v for k, v in request.headers.items()},
            body=await context.body(request),
            secret_path=request.path_params.get("secret", ""),
            now=engine.clock.now(),
            method=request.method,
            query=request.url.query,
        )
        try:
            events = await run_in_threadpool(parser, channel, incoming)
        except WebhookRefused as refused:
            raise HTTPProblem(refused.status, str(refused)) from refused
        except WebhookReply as reply:
            return PlainTextResponse(reply.body)
        outcome = await run_in_threadpool(record, engine, name, settings.plugin, events)
        return ok({"recorded": outcome.recorded, "duplicates": outcome.duplicates})

    return [
        Route("/webhooks/{channel}", webhook, methods=["GET", "POST"]),
        Route("/webhooks/{channel}/{secret}", webhook, methods=["GET", "POST"]),
    ]
