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
"""

from __future__ import annotations

import hashlib
from typing import Any

import attrs
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from onetomany.delivery.webhooks import EVENT_NAMES, ProviderEvent, WebhookRefused, WebhookRequest
from onetomany.engine import Engine
from onetomany.model import Event
from onetomany.rules.suppression import Reason
from onetomany.store import OutboxRow
from onetomany.store.queries.outbox import outbox_row
from onetomany.web.context import HTTPProblem, WebContext, answering, ok

_ENGAGEMENT = {"opened", "clicked"}


@attrs.frozen
class Outcome:
    recorded: int = 0
    duplicates: int = 0


def _event_id(channel: str, event: ProviderEvent) -> str:
    digest = hashlib.sha256(f"{channel}\0{event.id}".encode()).hexdigest()[:40]
    return f"wh-{digest}"


def rows_of(engine: Engine, events: list[ProviderEvent]) -> list[OutboxRow]:
    """The outbox row of each event; an HTTPProblem (404) naming the first key the store does
    not hold, before anything is recorded."""
    rows = []
    for event in events:
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
            name=EVENT_NAMES[event.kind],
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


def routes(context: WebContext) -> list[BaseRoute]:
    engine = context.engine
    parsers = engine.plugins.webhook_parsers()

    @answering
    async def webhook(request: Request) -> JSONResponse:
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
        )
        try:
            events = parser(channel, incoming)
        except WebhookRefused as refused:
            raise HTTPProblem(refused.status, str(refused)) from refused
        outcome = await run_in_threadpool(record, engine, name, settings.plugin, events)
        return ok({"recorded": outcome.recorded, "duplicates": outcome.duplicates})

    return [
        Route("/webhooks/{channel}", webhook, methods=["POST"]),
        Route("/webhooks/{channel}/{secret}", webhook, methods=["POST"]),
    ]
