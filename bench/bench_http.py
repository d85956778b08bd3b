"""HTTP delivery throughput: the engine through the Postmark plugin against a raw Session loop.

Each run sends N emails to the same local sink speaking Postmark's API
(``onetomany_postmark.testing.FakePostmark``), which runs in a separate process on loopback:

1. raw, the baseline: a ``requests.Session`` keep-alive loop posting N prebuilt JSON bodies
   to ``POST /email``, one by one with ``session.post`` (the bodies the engine's messages
   make, built beforehand);
2. raw prepared (extra row): the same loop as requests' "Prepared Requests" write it, a
   request prepared once and the environment's settings read once, each body sent by
   ``Session.send`` on a copy: what the engine's channels do (``PreparedSession``);
3. engine, single path: N touches queued in the outbox and dispatched through the Postmark
   plugin with ``batch_size = 1`` (each message through ``POST /email``): claim, render,
   JSON, HTTP, a delivery and an event recorded per message, retries on;
4. engine, batch path: the same with ``POST /email/batch`` (``record_every = 500``, so the
   dispatcher hands the channel 500 messages at a time and Postmark takes them in one call);
5. raw batch (extra row): the prebuilt bodies posted 500 to a call.

It prints each throughput and the ratios against the raw single loop; the goals are the
single path at least 0.8x the raw loop (``session.post``), the batch path several times it.
Each figure is the best of ``--repeat`` runs (3 by default), the runs taking turns.

Then the concurrency table (bench/concurrency.py): the single path at 1, 4 and 8 connections
(the engine's ``concurrency`` sender threads on SQLite, against as many threads each posting
its share of the prebuilt bodies over a Session of its own), and across 1, 2 and 4 worker
processes on one PostgreSQL store (each worker one sender thread, against as many processes
posting prebuilt bodies); the goal is at least 0.8x at every concurrency.
Run: ``make bench`` or ``python bench/bench_http.py --n 2000``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import requests

from onetomany import Account, Contact
from onetomany.engine import Engine
from onetomany.model import OutboxStatus
from onetomany.plugins.settings import PluginSettings
from onetomany.program import Audience, EventTrigger, Program, Touch
from onetomany.store import NewTouch, Store
from onetomany.testing import RecordingChannel
from onetomany_postmark.wire import body

sys.path.insert(0, str(Path(__file__).resolve().parent))
import concurrency  # the table's machinery, beside this file

TEMPLATE = Path(__file__).with_name("welcome.mjml")
SENDER = "Acme Success <success@acme.test>"
TOKEN = "bench-server-token"


def _program(folder: Path, options: dict[str, Any]) -> Program:
    templates = folder / "templates"
    templates.mkdir(exist_ok=True)
    if not (templates / "welcome.mjml").exists():  # worker processes share the folder
        (templates / "welcome.mjml").write_text(TEMPLATE.read_text())
    return Program(
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
        sender=SENDER,
        constants={"product": "Acme Analytics", "help_url": "https://help.acme.test"},
        unsubscribe_url="https://app.acme.test/u?c={contact_id}",
        base_dir=folder,
        windows=concurrency.ALWAYS_OPEN,  # the policy runs; a run at night is not deferred
    )


def _queued(
    folder: Path, n: int, url: str, per_call: int, store: str | None = None, **engine: Any
) -> Engine:
    """An engine whose outbox holds N welcome emails, due now (in ``store``, by default a
    SQLite file in ``folder``)."""
    options = {"server_token": TOKEN, "base_url": url, "batch_size": per_call}
    live = Engine(_program(folder, options), store=Store(store or folder / "bench.db"), **engine)
    live.identify(Account(id="a1", name="Northwind", traits={"plan": "pro"}))
    live.identify(
        *(
            Contact(id=f"c{i}", account_id="a1", name=f"Person{i} Example", email=f"p{i}@acme.test")
            for i in range(n)
        )
    )
    now = live.clock.now()
    live.store.enqueue(
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
            for i in range(n)
        ],
        now=now,
    )
    return live


def prebuilt_bodies(n: int, url: str) -> list[dict[str, Any]]:
    """The JSON bodies of the N messages the engine sends, built beforehand (its messages are
    composed by a recording channel, then written as the plugin writes them)."""
    recorder = RecordingChannel()
    with tempfile.TemporaryDirectory() as folder:
        live = _queued(Path(folder), n, url, 1, channels={"email": recorder})
        with live:
            live.dispatch()
    return [body(m, sender=m.sender or SENDER, stream="outbound") for m in recorder.sent]


def payloads_of(bodies: list[dict[str, Any]]) -> list[bytes]:
    return [json.dumps(b, separators=(",", ":")).encode() for b in bodies]


def _session() -> requests.Session:
    session = requests.Session()
    session.headers.update(
        {
            "Accept": "application/json",
            "Content-Type": "application/json",
            "X-Postmark-Server-Token": TOKEN,
        }
    )
    return session


def _post_all(url: str, payloads: Sequence[bytes]) -> None:
    """The raw loop: each payload posted in turn over one kept-alive Session."""
    with _session() as session:
        for payload in payloads:
            response = session.post(url + "/email", data=payload, timeout=10)
            if response.status_code != 200 or response.json()["ErrorCode"] != 0:
                raise RuntimeError(response.text)


def raw_single(url: str, bodies: list[dict[str, Any]]) -> float:
    payloads = payloads_of(bodies)
    start = time.perf_counter()
    _post_all(url, payloads)
    return len(payloads) / (time.perf_counter() - start)


def raw_prepared(url: str, bodies: list[dict[str, Any]]) -> float:
    """The raw loop with the request prepared once and copied per body, the environment's
    settings (proxies, CA bundle) read once, each copy sent with ``Session.send``."""
    payloads = payloads_of(bodies)
    start = time.perf_counter()
    with _session() as session:
        template = session.prepare_request(requests.Request("POST", url + "/email"))
        assert template.url is not None
        settings = session.merge_environment_settings(template.url, {}, None, None, None)
        for payload in payloads:
            request = template.copy()
            request.prepare_body(payload, None)
            response = session.send(request, timeout=10, allow_redirects=False, **settings)
            if response.status_code != 200 or response.json()["ErrorCode"] != 0:
                raise RuntimeError(response.text)
    return len(payloads) / (time.perf_counter() - start)


def raw_threads(url: str, payloads: list[bytes], connections: int) -> float:
    """The limit at ``connections``: as many threads, each posting its share over its own
    Session."""
    return concurrency.in_threads(
        concurrency.shares(payloads, connections), functools.partial(_post_all, url)
    )


def raw_batch(url: str, bodies: list[dict[str, Any]]) -> float:
    payloads = [
        json.dumps(bodies[i : i + 500], separators=(",", ":")).encode()
        for i in range(0, len(bodies), 500)
    ]
    with requests.Session() as session:
        session.headers.update(
            {"Content-Type": "application/json", "X-Postmark-Server-Token": TOKEN}
        )
        start = time.perf_counter()
        for payload in payloads:
            response = session.post(url + "/email/batch", data=payload, timeout=30)
            if response.status_code != 200:
                raise RuntimeError(response.text)
        return len(bodies) / (time.perf_counter() - start)


def engine(url: str, n: int, *, per_call: int, record_every: int, connections: int = 0) -> float:
    with tempfile.TemporaryDirectory() as folder:
        live = _queued(Path(folder), n, url, per_call, record_every=record_every, batch_size=500)
        with live:
            start = time.perf_counter()
            report = live.dispatch(concurrency=connections)
            elapsed = time.perf_counter() - start
            assert report.sent == n, report
            assert not live.store.outbox_rows(status=OutboxStatus.PENDING)
    return n / elapsed


# -- worker processes on PostgreSQL -----------------------------------------------------------


def _raw_process(url: str, payload_file: str, index: int, count: int) -> Callable[[], int]:
    payloads = [line.encode() for line in Path(payload_file).read_text().splitlines()]
    mine = concurrency.shares(payloads, count)[index]

    def go() -> int:
        _post_all(url, mine)
        return len(mine)

    return go


def _engine_process(folder: str, url: str, store: str, index: int, count: int) -> Callable[[], int]:
    options = {"server_token": TOKEN, "base_url": url, "batch_size": 1}
    live = Engine(_program(Path(folder), options), store=Store(store), batch_size=50)

    def go() -> int:
        with live:
            return live.dispatch(concurrency=1).sent

    return go


def processes_table(url: str, n: int, payloads: list[bytes], repeat: int) -> None:
    """The single path across worker processes on one PostgreSQL store, each worker one
    connection, against as many processes posting prebuilt bodies."""
    with concurrency.postgres() as fresh, tempfile.TemporaryDirectory() as folder:
        if fresh is None:
            return
        payload_file = Path(folder) / "payloads.jsonl"
        payload_file.write_text("\n".join(p.decode() for p in payloads))
        rows = []
        for count in concurrency.PROCESSES:
            ours = limit = 0.0
            for _ in range(repeat):
                raw = functools.partial(_raw_process, url, str(payload_file))
                limit = max(limit, concurrency.in_processes(count, raw))
                store = fresh()
                _queued(Path(folder), n, url, 1, store=store).close()
                work = functools.partial(_engine_process, folder, url, store)
                ours = max(ours, concurrency.in_processes(count, work))
            rows.append((f"PostgreSQL, {count} worker process(es)", ours, limit))
        concurrency.print_table(rows)


def threads_table(url: str, n: int, payloads: list[bytes], repeat: int) -> None:
    """The single path at 1, 4 and 8 connections in one process (SQLite store)."""
    rows = []
    settings = [(0, 1), *((c, c) for c in concurrency.CONNECTIONS)]
    for threads, connections in settings:
        ours = limit = 0.0
        for _ in range(repeat):
            limit = max(limit, raw_threads(url, payloads, connections))
            ours = max(ours, engine(url, n, per_call=1, record_every=20, connections=threads))
        label = "in-line" if threads == 0 else f"{threads} sender thread(s)"
        rows.append((f"{connections} connection(s), {label}", ours, limit))
    concurrency.print_table(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2_000, help="emails per run (default 2000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each (default 3)")
    parser.add_argument(
        "--table-only", action="store_true", help="print only the concurrency table"
    )
    parser.add_argument(
        "--sqlite", action="store_true", help="leave out the PostgreSQL worker processes"
    )
    args = parser.parse_args()
    sink = subprocess.Popen(
        [sys.executable, "-m", "onetomany_postmark.testing", "--token", TOKEN],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert sink.stdout is not None
        url = sink.stdout.readline().strip()
        bodies = prebuilt_bodies(args.n, url)
        best: dict[str, float] = {}
        runs = {
            "raw": lambda: raw_single(url, bodies),
            "raw prepared": lambda: raw_prepared(url, bodies),
            "single": lambda: engine(url, args.n, per_call=1, record_every=20),
            "batch": lambda: engine(url, args.n, per_call=500, record_every=500),
            "raw batch": lambda: raw_batch(url, bodies),
        }
        for _ in range(0 if args.table_only else args.repeat):
            for name, run in runs.items():
                best[name] = max(best.get(name, 0.0), run())
        print(f"load average before the table: {os.getloadavg()[0]:.2f}")
        print(f"concurrency table: single path (POST /email), best of {args.repeat}")
        threads_table(url, args.n, payloads_of(bodies), args.repeat)
        if not args.sqlite:
            processes_table(url, args.n, payloads_of(bodies), args.repeat)
        print(f"load average after the table: {os.getloadavg()[0]:.2f}")
        if args.table_only:
            return
    finally:
        sink.terminate()
        sink.wait(10)
    size = sum(len(json.dumps(b)) for b in bodies) / len(bodies)
    print(f"emails per run: {args.n} (JSON body {size / 1024:.1f} KB), best of {args.repeat}")
    print(f"load average before/after: {os.getloadavg()[0]:.2f}")
    print(f"raw Session loop, POST /email (baseline):   {best['raw']:8.0f} msg/s")
    print(f"raw prepared loop (Session.send, env once): {best['raw prepared']:8.0f} msg/s")
    print(f"engine, single path (POST /email):          {best['single']:8.0f} msg/s")
    print(f"engine, batch path (POST /email/batch):     {best['batch']:8.0f} msg/s")
    print(f"raw Session loop, POST /email/batch:        {best['raw batch']:8.0f} msg/s")
    print(f"engine single / raw single: {best['single'] / best['raw']:.2f}x (goal >= 0.8x)")
    print(f"engine single / raw prepared: {best['single'] / best['raw prepared']:.2f}x")
    print(f"engine batch / raw single:  {best['batch'] / best['raw']:.2f}x (goal: several)")
    print(f"engine batch / raw batch:   {best['batch'] / best['raw batch']:.2f}x")


if __name__ == "__main__":
    main()
