"""track() and inbox reads on a request path: latency at 200 requests/s from 8 threads,
with and without a worker dispatching, on SQLite and PostgreSQL.

Eight threads share an open-loop schedule of 200 calls a second (25 each, evenly spaced); a
call's latency runs from when it was due, not from when its thread got to it, so a stall
shows in every call that waited behind it. Each arm calls either

* ``Engine.track(...)`` (the SDK), or
* the baseline: a bare SQLAlchemy Core ``INSERT`` of the same event row in its own
  transaction, on the same engine and connection settings (what a host would write by hand);
* or, for the inbox, ``GET /onetomany/inbox`` over HTTP: the web app mounted in a host app
  that uvicorn serves on loopback from processes of its own, as a host deploys it
  (``uvicorn --factory bench_track:host_app --workers N``, uvicorn's default h11 and
  asyncio), with the contact's bearer token, one keep-alive ``http.client`` connection per
  thread of this process (the load generator), reading the first page of a 30-item inbox.

The worker is a separate process that dispatches a queue of welcome emails to an outbox
folder (render + send + record, as ``onetomany run`` does) for the whole arm; its
throughput is printed beside the latencies. PostgreSQL is the throwaway cluster the tests
use (tests/postgres.py: fsync off); it is skipped when its binaries are missing.

    .venv/bin/python bench/bench_track.py              # 15 s per arm
    .venv/bin/python bench/bench_track.py --seconds 5  # quicker
    .venv/bin/python bench/bench_track.py --sqlite     # SQLite only
    .venv/bin/python bench/bench_track.py --only inbox --web-workers 2   # the inbox arm only
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import multiprocessing as mp
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.postgres

from starlette.applications import Starlette
from starlette.routing import Mount

from onetomany import Account, Contact
from onetomany.engine import Engine
from onetomany.model import Event
from onetomany.plugins.settings import PluginSettings
from onetomany.program import Audience, EventTrigger, Program, Touch
from onetomany.store import Store
from onetomany.store.schema import events
from onetomany.store.store import NewTouch, _event_row
from onetomany.web import SigningKeys, create_app, issue_token

KEYS = SigningKeys.of({"k1": "t" * 40})
INBOX_ITEMS = 30
RATE = 200.0
THREADS = 8
CONTACTS = 2_000
TEMPLATE = """\
+++
subject = "Welcome {{ contact.first_name }}"
+++
<mjml><mj-body><mj-section><mj-column>
<mj-text>Hello {{ contact.first_name }} from {{ account.name }}.</mj-text>
<mj-button href="https://acme.test/start">Start</mj-button>
</mj-column></mj-section></mj-body></mjml>
"""


def make_program(folder: Path, url: str) -> Program:
    templates = folder / "templates"
    templates.mkdir(exist_ok=True)
    (templates / "welcome.mjml").write_text(TEMPLATE)
    return Program(
        name="bench",
        store_url=url,
        touches=(
            Touch(
                name="welcome",
                trigger=EventTrigger(event="signed_up"),
                channel="email",
                template="welcome",
                audience=Audience(roles=("admin",)),
            ),
        ),
        channels={
            "email": PluginSettings(
                name="email", plugin="outbox", options={"folder": str(folder / "outbox")}
            )
        },
        templates_dir=templates,
        sender="Acme <success@acme.test>",
        base_dir=folder,
    )


def populate(engine: Engine) -> None:
    accounts = [Account(id=f"a{i}", traits={"name": f"Account {i}"}) for i in range(CONTACTS // 4)]
    contacts = [
        Contact(
            id=f"c{i}",
            account_id=f"a{i // 4}",
            email=f"c{i}@example.test",
            role="admin",
            traits={"first_name": f"C{i}"},
        )
        for i in range(CONTACTS)
    ]
    engine.identify(*accounts, *contacts)


def queue_mail(store: Store, count: int) -> None:
    now = datetime.now(UTC)
    touches = [
        NewTouch(
            idempotency_key=f"bench:{uuid.uuid4().hex}",
            program="bench",
            touch="welcome",
            channel="email",
            template="welcome",
            contact_id=f"c{i % CONTACTS}",
            account_id=f"a{(i % CONTACTS) // 4}",
            available_at=now,
        )
        for i in range(count)
    ]
    for start in range(0, len(touches), 1000):
        store.enqueue(touches[start : start + 1000], now=now)
    if store.dialect == "sqlite":
        # The queue's write-ahead log (tens of megabytes) goes into the database now, not
        # during the first arm, as a queue filled over hours would have been.
        with store.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def worker(folder: str, url: str, stop: Any, sent: Any) -> None:
    """The dispatching worker, in its own process: sends until told to stop."""
    with Engine(make_program(Path(folder), url)) as engine:
        while not stop.is_set():
            report = engine.dispatch(limit=50)
            with sent.get_lock():
                sent.value += report.sent
            if not report.sent:
                time.sleep(0.05)


@contextlib.contextmanager
def dispatching(folder: Path, url: str, store: Store, seconds: float) -> Iterator[Any]:
    # More than a worker sends in all three arms: up to 1,650 a second on an idle 2-core
    # machine (a queue of 1,000 per arm-second ran dry before the third arm).
    queue_mail(store, int(seconds * 3 * 2500))
    ctx = mp.get_context("spawn")
    stop, sent = ctx.Event(), ctx.Value("i", 0)
    proc = ctx.Process(target=worker, args=(str(folder), url, stop, sent))
    proc.start()
    deadline = time.monotonic() + 60
    while sent.value == 0 and time.monotonic() < deadline:  # wait until it really sends
        time.sleep(0.1)
    try:
        yield sent
    finally:
        stop.set()
        proc.join(60)


def load(call: Callable[[int], None], seconds: float) -> list[float]:
    """Run ``call`` at RATE calls a second from THREADS threads; latencies in ms from when
    each call was due."""
    per_thread = RATE / THREADS
    count = int(seconds * per_thread)
    start = time.perf_counter() + 0.2
    results: list[list[float]] = [[] for _ in range(THREADS)]

    def run(k: int) -> None:
        out = results[k]
        for i in range(count):
            due = start + (i + k / THREADS) / per_thread
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            call(k * count + i)
            out.append((time.perf_counter() - due) * 1000)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [x for r in results for x in r]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


def sdk_call(engine: Engine, tag: str) -> Callable[[int], None]:
    def call(i: int) -> None:
        engine.track(
            "page_viewed",
            account_id=f"a{(i % CONTACTS) // 4}",
            contact_id=f"c{i % CONTACTS}",
            properties={"path": "/settings", "arm": tag},
        )

    return call


def bare_call(store: Store, tag: str) -> Callable[[int], None]:
    insert = events.insert()

    def call(i: int) -> None:
        event = Event(
            name="page_viewed",
            account_id=f"a{(i % CONTACTS) // 4}",
            contact_id=f"c{i % CONTACTS}",
            properties={"path": "/settings", "arm": tag},
            occurred_at=datetime.now(UTC),
        )
        with store.engine.begin() as conn:
            conn.execute(insert, _event_row(event, event.occurred_at))

    return call


def seed_inboxes(engine: Engine) -> dict[str, str]:
    """INBOX_ITEMS items in the inboxes of THREADS * 4 contacts: their bearer headers."""
    readers = [f"c{i}" for i in range(THREADS * 4)]
    now = datetime.now(UTC)
    for contact in readers:
        for n in range(INBOX_ITEMS):
            engine.store.inbox_add(
                contact_id=contact,
                idempotency_key=f"bench:{contact}:tip:{n}",
                touch="welcome",
                title=f"Tip {n}",
                body=f"Here is <tip> number {n}.",
                url="https://acme.test/tips",
                now=now,
            )
    return {c: f"Bearer {issue_token(KEYS, c, engine=engine)}" for c in readers}


def inbox_call(port: int, bearers: dict[str, str]) -> Callable[[int], None]:
    """Reads of contacts' inboxes through the mounted app, over HTTP: one keep-alive
    ``http.client`` connection per thread (a client that costs little next to the server)."""
    readers = list(bearers)
    local = threading.local()

    def call(i: int) -> None:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request(
            "GET", "/onetomany/inbox", headers={"Authorization": bearers[readers[i % len(readers)]]}
        )
        answer = conn.getresponse()
        answer.read()
        if answer.status != 200:
            raise RuntimeError(f"GET /onetomany/inbox answered {answer.status}")

    return call


def host_app() -> Starlette:
    """The host's app as a server process builds it (``uvicorn --factory``): the engine on
    the store and folder the benchmark names in the environment, its web app at /onetomany."""
    engine = Engine(make_program(Path(os.environ["BENCH_FOLDER"]), os.environ["BENCH_STORE"]))
    inline = {"inline": True, "threads": False}.get(os.environ.get("BENCH_READS", ""))
    app = create_app(engine, keys=KEYS, inline_reads=inline)
    return Starlette(routes=[Mount("/onetomany", app)])


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of process ``pid`` and its children so far (Linux /proc)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return float("nan")
    total = 0
    for each in (pid, *map(int, children)):
        fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def serving(folder: Path, url: str, workers: int) -> Iterator[tuple[int, int]]:
    """The host app served by uvicorn in processes of its own, as a host deploys it (the
    command below, ``--workers`` processes sharing the port): yields the port and the
    server's process id."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        sys.executable, "-m", "uvicorn", "--factory", "bench_track:host_app",
        "--app-dir", str(Path(__file__).resolve().parent),
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
        "--log-level", "warning", "--no-access-log", "--lifespan", "off",
    ]  # fmt: skip
    env = {**os.environ, "BENCH_FOLDER": str(folder), "BENCH_STORE": url}
    server = subprocess.Popen(command, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the uvicorn server did not start") from None
                time.sleep(0.1)
        # Every worker process has built its app once the port answers a request or two.
        warm = inbox_call(port, {"c0": "Bearer x"})
        for _ in range(workers * 4):
            with contextlib.suppress(RuntimeError):
                warm(0)
        yield port, server.pid
    finally:
        server.terminate()
        server.wait(30)


def backend(
    name: str, url: str, seconds: float, web_workers: int, only: tuple[str, ...] = ()
) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with Engine(make_program(folder, url)) as engine:
            populate(engine)
            bearers = seed_inboxes(engine)
            with serving(folder, url, web_workers) as (port, pid):
                read_inbox = inbox_call(port, bearers)
                rows.extend(
                    arms(
                        name,
                        folder,
                        url,
                        engine,
                        read_inbox,
                        seconds,
                        only,
                        lambda: cpu_seconds(pid),
                    )
                )
    return rows


def arms(
    name: str,
    folder: Path,
    url: str,
    engine: Engine,
    read_inbox: Callable[[int], None],
    seconds: float,
    only: tuple[str, ...],
    server_cpu: Callable[[], float],
) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for with_worker in (False, True):
        ctx: Any = (
            dispatching(folder, url, engine.store, seconds)
            if with_worker
            else contextlib.nullcontext(None)
        )
        with ctx as sent:
            for label, call in (
                ("bare insert", bare_call(engine.store, label_tag(with_worker))),
                ("track()", sdk_call(engine, label_tag(with_worker))),
                ("inbox (HTTP)", read_inbox),
            ):
                if only and not any(word in label for word in only):
                    continue
                before = sent.value if sent is not None else 0
                began, cpu_before = time.perf_counter(), server_cpu()
                latencies = load(call, seconds)
                took = time.perf_counter() - began
                if call is read_inbox:
                    # CPU per request, unlike latency, hardly moves with the machine's load.
                    cpu = (server_cpu() - cpu_before) * 1000 / len(latencies)
                    print(f"  (server CPU per inbox request: {cpu:.2f} ms)", flush=True)
                rate = ((sent.value - before) / took) if sent is not None else 0.0
                if sent is not None and not rate:
                    print("  (the worker sent nothing in this arm: its queue ran dry)")
                rows.append(row(name, with_worker, label, latencies, rate))
                print(format_row(rows[-1]), flush=True)
    return rows


def label_tag(with_worker: bool) -> str:
    return "worker" if with_worker else "idle"


def row(
    name: str, with_worker: bool, label: str, latencies: list[float], rate: float
) -> tuple[str, ...]:
    return (
        name,
        "dispatching" if with_worker else "idle",
        label,
        f"{len(latencies):,}",
        f"{statistics.median(latencies):.2f}",
        f"{percentile(latencies, 95):.2f}",
        f"{percentile(latencies, 99):.2f}",
        f"{max(latencies):.1f}",
        f"{rate:.0f}" if with_worker else "-",
    )


HEADER = ("store", "worker", "call", "calls", "p50 ms", "p95 ms", "p99 ms", "max ms", "sent/s")
WIDTHS = (10, 12, 12, 7, 7, 7, 7, 7, 7)


def format_row(values: tuple[str, ...]) -> str:
    return " ".join(
        f"{v:<{w}}" if i < 3 else f"{v:>{w}}"
        for i, (v, w) in enumerate(zip(values, WIDTHS, strict=True))
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each arm")
    parser.add_argument("--sqlite", action="store_true", help="SQLite only")
    parser.add_argument(
        "--web-workers", type=int, default=1, help="uvicorn worker processes serving the app"
    )
    parser.add_argument(
        "--only", action="append", default=[], help="run only the arms whose name has this"
    )
    args = parser.parse_args()
    only = tuple(args.only)
    print(f"{RATE:.0f} calls/s from {THREADS} threads, {args.seconds:g} s per arm; latency from")
    print("when each call was due. Worker: a second process dispatching to an outbox folder.")
    print(format_row(HEADER), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        backend("sqlite", f"sqlite:///{tmp}/track.db", args.seconds, args.web_workers, only)
    if args.sqlite:
        return
    from tests.postgres import PostgresUnavailable, running_postgres

    try:
        with running_postgres("onetomany_bench") as cluster:
            backend("postgresql", cluster.url(), args.seconds, args.web_workers, only)
    except PostgresUnavailable as exc:
        print(f"postgresql: skipped ({exc})")


if __name__ == "__main__":
    main()
