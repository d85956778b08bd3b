"""The web app's cost over a bare endpoint: webhook ingestion and inbox reads.

One uvicorn server on loopback (in a thread of this process) serves a host app that mounts
``onetomany.web.create_app`` at ``/onetomany`` and, beside it, two bare Starlette endpoints
doing the same store work with nothing else; a ``requests.Session`` keep-alive loop calls each:

1. webhook ingestion: N Postmark ``Delivery`` webhooks, each naming another outbox row;
   * app: ``POST /onetomany/webhooks/email/<secret>``: the Postmark plugin's parser (secret
     path check, JSON, replay window), the outbox row looked up, ``message_delivered``
     recorded under an id from the provider's event id;
   * bare: ``POST /bare/webhook``: the JSON read, the same outbox row lookup, the same event
     written with ``Store.add_events``;
2. inbox reads: N reads of a contact's first inbox page (20 of 60 items);
   * app: ``GET /onetomany/inbox`` with the contact's bearer token (verified), the page, the
     counts and the contact's locale and timezone, each item escaped for HTML;
   * bare: ``GET /bare/inbox?contact=c0``: the same store read (one statement for the page,
     the counts and the contact's locale), run where the app runs it (on the event loop on
     SQLite), the items as JSON.

Both run on the same SQLite file, in the same server, taking turns by chunks of 50 requests
(so a change in the machine's load weighs on both alike); each figure is the best of
``--repeat`` runs. The goal: the app within 1.5x of the bare endpoint's time per request.
Run: ``python bench/bench_web.py --n 2000``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import requests
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

import onetomany_postmark
from onetomany import Account, Contact
from onetomany.engine import Engine
from onetomany.model import Event
from onetomany.plugins.settings import PluginSettings
from onetomany.program import Audience, EventTrigger, Program, Touch
from onetomany.store import NewTouch, Store
from onetomany.store.queries.inbox import inbox_view
from onetomany.store.queries.outbox import outbox_row
from onetomany.testing import make_plugins
from onetomany.web import SigningKeys, create_app, issue_token
from onetomany_postmark.wire import key_from_metadata, metadata

SECRET = "bench-webhook-secret-path"
KEYS = SigningKeys.of({"k1": "b" * 40})
INBOX_ITEMS = 60
TEMPLATE = """+++
subject = "Welcome"
+++
<mjml><mj-body><mj-section><mj-column><mj-text>Hi.</mj-text></mj-column></mj-section>
</mj-body></mjml>
"""


def _engine(folder: Path, rows: int) -> Engine:
    templates = folder / "templates"
    templates.mkdir()
    (templates / "welcome.mjml").write_text(TEMPLATE)
    options = {
        "server_token": "bench",
        "base_url": "http://127.0.0.1:9",  # never called: nothing is sent here
        "sender": "Acme <success@acme.test>",
        "webhook_secret_path": SECRET,
    }
    program = Program(
        name="bench",
        touches=(
            Touch(
                name="welcome",
                trigger=EventTrigger(event="signed_up"),
                channel="email",
                template="welcome",
                audience=Audience(every=True),
            ),
        ),
        channels={"email": PluginSettings(name="email", plugin="postmark", options=options)},
        templates_dir=templates,
        base_dir=folder,
    )
    engine = Engine(
        program,
        store=Store(folder / "bench.db"),
        plugins=make_plugins(("postmark", onetomany_postmark)),
    )
    engine.identify(Account(id="a1", name="Northwind"))
    engine.identify(
        *(Contact(id=f"c{i}", account_id="a1", email=f"p{i}@acme.test") for i in range(rows))
    )
    now = engine.clock.now()
    engine.store.enqueue(
        [
            NewTouch(
                idempotency_key=f"bench:welcome:c{i}",
                program="bench",
                touch="welcome",
                channel="email",
                template="welcome",
                contact_id=f"c{i}",
                account_id="a1",
                available_at=now,
            )
            for i in range(rows)
        ],
        now=now,
    )
    for n in range(INBOX_ITEMS):
        engine.store.inbox_add(
            contact_id="c0",
            idempotency_key=f"bench:tip:{n}",
            touch="welcome",
            title=f"Tip {n}",
            body=f"Here is <tip> number {n}.\nSecond line.",
            url="https://acme.test/tips",
            now=now - timedelta(minutes=INBOX_ITEMS - n),
        )
    return engine


def _bare_routes(engine: Engine) -> list[Route]:
    """The baseline: the same store work, no parser, token, limits or escaping."""
    store = engine.store

    def write(document: dict[str, Any]) -> None:
        key = key_from_metadata(document["Metadata"])
        row = outbox_row(store, key or "")
        if row is None or row.contact_id is None:
            raise LookupError(key)
        digest = hashlib.sha256(f"email\0delivery:{document['MessageID']}".encode()).hexdigest()
        event = Event(
            name="message_delivered",
            contact_id=row.contact_id,
            account_id=row.account_id,
            occurred_at=engine.clock.now(),
            properties={"provider_message_id": document["MessageID"], "touch": row.touch},
            id=f"wh-{digest[:40]}",
        )
        store.add_events([event], now=engine.clock.now())

    async def webhook(request: Request) -> JSONResponse:
        await run_in_threadpool(write, json.loads(await request.body()))
        return JSONResponse({"recorded": 1})

    def read(contact: str) -> dict[str, Any]:
        view = inbox_view(store, contact, now=engine.clock.now())
        return {
            "items": [
                {"id": i.id, "title": i.title, "body": i.body, "url": i.url}
                for i in view.page.items
            ],
            "counts": {"unread": view.counts.unread, "unseen": view.counts.unseen},
            "contact": {"locale": view.locale, "timezone": view.timezone},
        }

    async def inbox(request: Request) -> JSONResponse:
        # Inline, as the app reads on SQLite: a statement of a millisecond is cheaper than a
        # hop to a thread and back.
        return JSONResponse(read(request.query_params["contact"]))

    return [
        Route("/bare/webhook", webhook, methods=["POST"]),
        Route("/bare/inbox", inbox, methods=["GET"]),
    ]


def _serve(app: Starlette) -> tuple[str, uvicorn.Server, threading.Thread]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    return f"http://127.0.0.1:{port}", server, thread


def _deliveries(engine: Engine, n: int, run: str) -> list[bytes]:
    at = engine.clock.now().isoformat()
    return [
        json.dumps(
            {
                "RecordType": "Delivery",
                "MessageID": f"{run}-{i}",
                "Recipient": f"p{i}@acme.test",
                "DeliveredAt": at,
                "Metadata": metadata(f"bench:welcome:c{i}"),
            }
        ).encode()
        for i in range(n)
    ]


Call = Callable[[requests.Session, int], requests.Response]


def _timed(session: requests.Session, call: Call, indexes: range) -> float:
    start = time.perf_counter()
    for i in indexes:
        response = call(session, i)
        if response.status_code != 200:
            raise RuntimeError(response.text)
    return time.perf_counter() - start


def _pair(bare: Call, app: Call, n: int, chunk: int = 50) -> tuple[float, float]:
    """Requests per second of ``bare`` and of ``app``, N each, taking turns by chunks of 50
    so that a change in the machine's load weighs on both alike."""
    spent = {"bare": 0.0, "app": 0.0}
    with requests.Session() as session:
        for start in range(0, n, chunk):
            indexes = range(start, min(n, start + chunk))
            turns = (("bare", bare), ("app", app))
            for name, call in turns if (start // chunk) % 2 == 0 else reversed(turns):
                spent[name] += _timed(session, call, indexes)
    return n / spent["bare"], n / spent["app"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2_000, help="requests per run (default 2000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each (default 3)")
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as folder:
        engine = _engine(Path(folder), args.n)
        host = Starlette(
            routes=[*_bare_routes(engine), Mount("/onetomany", create_app(engine, keys=KEYS))]
        )
        url, server, thread = _serve(host)
        token = issue_token(KEYS, "c0", engine=engine)
        json_headers = {"Content-Type": "application/json"}
        bearer = {"Authorization": f"Bearer {token}"}
        best: dict[str, float] = {}
        try:
            for run in range(args.repeat):
                app_bodies = _deliveries(engine, args.n, f"app{run}")
                bare_bodies = _deliveries(engine, args.n, f"bare{run}")
                pairs: dict[str, tuple[Call, Call]] = {
                    "webhook": (
                        lambda s, i, b=bare_bodies: s.post(
                            f"{url}/bare/webhook", data=b[i], headers=json_headers
                        ),
                        lambda s, i, b=app_bodies: s.post(
                            f"{url}/onetomany/webhooks/email/{SECRET}",
                            data=b[i],
                            headers=json_headers,
                        ),
                    ),
                    "inbox": (
                        lambda s, i: s.get(f"{url}/bare/inbox?contact=c0"),
                        lambda s, i: s.get(f"{url}/onetomany/inbox", headers=bearer),
                    ),
                }
                for kind, (bare, app) in pairs.items():
                    rates = _pair(bare, app, args.n)
                    best[f"{kind} bare"] = max(best.get(f"{kind} bare", 0.0), rates[0])
                    best[f"{kind} app"] = max(best.get(f"{kind} app", 0.0), rates[1])
        finally:
            server.should_exit = True
            thread.join(10)
            engine.close()
    load_after = os.getloadavg()
    print(f"requests per run: {args.n}, best of {args.repeat}")
    print(f"load average (1 min) before/after: {load_before[0]:.2f} / {load_after[0]:.2f}")
    for kind in ("webhook", "inbox"):
        bare, app = best[f"{kind} bare"], best[f"{kind} app"]
        print(f"{kind:8} bare endpoint: {bare:7.0f} req/s   mounted app: {app:7.0f} req/s")
        print(f"{kind:8} app time / bare time: {bare / app:.2f}x (goal <= 1.5x)")


if __name__ == "__main__":
    main()
