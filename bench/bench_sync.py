"""Sync: the SQL source and the Stripe source streaming into a store, each against a bare
SQLAlchemy Core loop reading the same records.

**SQL.** Builds a host SQLite database of N contacts (``users``: id, company, name, email,
role, a trait, a change time), then, each in a fresh subprocess so peak memory is its own:

- ``onetomany``: ``Engine.sync()`` of a program whose ``sql`` source reads them (1,000 rows a
  page, each page one transaction: merged into the stored profiles, with the cursor);
- ``baseline``: the same rows read with ``stream_results`` / ``yield_per`` and inserted into
  the store's ``contacts`` table with one Core ``insert`` per 1,000 rows, one transaction each
  (no validation, no merge with what is stored).

**Stripe.** Serves N customers (each naming its account in ``metadata``) from the plugin's
test fake (``plugins/sources/stripe/tests/fake_stripe.py``: Stripe's list API, every request
checked against Stripe's OpenAPI document) on loopback, in this process; then, each in a
fresh subprocess:

- ``onetomany``: ``Engine.sync()`` of a program whose ``stripe`` source does a full read
  (customers 100 a page, Stripe's largest, each page one transaction);
- ``baseline``: a bare ``requests.Session`` loop over the same pages (``starting_after``)
  inserting each customer's account row into the store's ``accounts`` table, one Core
  ``insert`` and one transaction per page.

Prints records per second of each (by wall clock and by the process's CPU time, steadier on
a busy machine; the fake's own serving time is in the wall clock of both, in the CPU time of
neither), the ratio onetomany / baseline (goal: at least 0.7), and each run's peak RSS (goal:
the largest run within 1.2x of the smallest, per source).

    .venv/bin/python bench/bench_sync.py                    # 100,000 records, both sources
    .venv/bin/python bench/bench_sync.py --million          # adds 1,000,000 (slow)
    .venv/bin/python bench/bench_sync.py --sources stripe   # one source only
    .venv/bin/python bench/bench_sync.py --repeat 5         # best of 5 of each run

Each run is measured ``--repeat`` times (3 by default; once at 1,000,000), baseline and
onetomany in turn, and the best of each is shown: on a machine shared with other work, a burst
of load then lands on neither run more than the other.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa

# Imported here, before any timing: both runs pay for them the same, outside the measure.
from onetomany.engine import Engine
from onetomany.model.clock import FrozenClock
from onetomany.plugins.manager import Plugins
from onetomany.plugins.settings import PluginSettings
from onetomany.plugins.syncing import SyncReport
from onetomany.program import Program
from onetomany.store import Store
from onetomany.store.schema import accounts, contacts

PAGE = 1000
STRIPE_PAGE = 100
STRIPE_TESTS = Path(__file__).resolve().parent.parent / "plugins/sources/stripe/tests"
T0 = datetime(2026, 1, 1)
QUERY = "SELECT id, company_id, full_name, email, job, seats, changed_at FROM users"


def build_host(path: Path, size: int) -> None:
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE users (id TEXT PRIMARY KEY, company_id TEXT, full_name TEXT, "
                "email TEXT, job TEXT, seats INTEGER, changed_at TIMESTAMP)"
            )
        )
        insert = sa.text(
            "INSERT INTO users VALUES (:id, :company_id, :full_name, :email, :job, :seats, "
            ":changed_at)"
        )
        for start in range(0, size, 50_000):
            conn.execute(
                insert,
                [
                    {
                        "id": f"u{i:07d}",
                        "company_id": f"c{i // 4:07d}",
                        "full_name": f"Person {i}",
                        "email": f"person{i}@example.test",
                        "job": ("sponsor", "admin", "analyst")[i % 3],
                        "seats": i % 50,
                        "changed_at": T0 + timedelta(seconds=i),
                    }
                    for i in range(start, min(size, start + 50_000))
                ],
            )
    engine.dispose()


def run_onetomany(host: Path, store_path: Path) -> int:
    options = {
        "url": f"sqlite:///{host}",
        "page_size": PAGE,
        "contacts": {
            "query": QUERY,
            "cursor": "changed_at",
            "columns": {"account_id": "company_id", "name": "full_name", "role": "job"},
        },
    }
    return engine_sync("sql", options, store_path).contacts


def engine_sync(plugin: str, options: dict[str, Any], store_path: Path) -> SyncReport:
    """``Engine.sync()`` of a program with one source of ``plugin``, into a new store."""
    program = Program(
        name="bench",
        sources={"bench": PluginSettings(name="bench", plugin=plugin, options=options)},
        base_dir=store_path.parent,
        templates_dir=store_path.parent,
    )
    clock = FrozenClock(datetime(2026, 12, 1, tzinfo=UTC))
    with Engine(program, store=Store(store_path), clock=clock, plugins=Plugins()) as engine:
        [report] = engine.sync()
    return report


def run_baseline(host: Path, store_path: Path) -> int:
    # The store's own engine: the same schema, WAL mode and pragmas as onetomany's run.
    store = Store(store_path)
    target = store.engine
    source = sa.create_engine(f"sqlite:///{host}")
    count = 0
    now = datetime(2026, 12, 1, tzinfo=UTC)
    with source.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=PAGE).execute(sa.text(QUERY))
        for rows in result.mappings().partitions(PAGE):
            batch = [
                {
                    "id": r["id"],
                    "account_id": r["company_id"],
                    "name": r["full_name"],
                    "email": r["email"],
                    "phone": None,
                    "role": r["job"],
                    "locale": "en",
                    "timezone": "UTC",
                    "consent": {},
                    "traits": {"seats": r["seats"]},
                    "updated_at": now,
                }
                for r in rows
            ]
            with target.begin() as out:
                out.execute(sa.insert(contacts), batch)
            count += len(batch)
    source.dispose()
    store.close()
    return count


def run_stripe(url: str, store_path: Path) -> int:
    sys.path.insert(0, str(STRIPE_TESTS))
    from fake_stripe import KEY

    options = {"api_key": KEY, "base_url": url, "page_size": STRIPE_PAGE}
    return engine_sync("stripe", options, store_path).accounts


def run_stripe_baseline(url: str, store_path: Path) -> int:
    sys.path.insert(0, str(STRIPE_TESTS))
    from fake_stripe import KEY

    store = Store(store_path)
    target = store.engine
    now = datetime(2026, 12, 1, tzinfo=UTC)
    count = 0
    params: dict[str, Any] = {"limit": STRIPE_PAGE}
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {KEY}"
        while True:
            response = session.get(f"{url}/v1/customers", params=params, timeout=30)
            response.raise_for_status()
            body = response.json()
            batch = [
                {
                    "id": c["metadata"]["account_id"],
                    "name": "",
                    "traits": {"stripe_customer_id": c["id"]},
                    "updated_at": now,
                }
                for c in body["data"]
            ]
            if batch:
                with target.begin() as out:
                    out.execute(sa.insert(accounts), batch)
            count += len(batch)
            if not body["has_more"]:
                break
            params["starting_after"] = body["data"][-1]["id"]
    store.close()
    return count


RUNS = {
    "sql-onetomany": run_onetomany,
    "sql-baseline": run_baseline,
    "stripe-onetomany": run_stripe,
    "stripe-baseline": run_stripe_baseline,
}


def child(mode: str, where: str, folder: Path) -> None:
    """One measured run, in its own process: prints JSON with the records, seconds, peak RSS.

    ``where`` is the host database (SQL) or the fake's URL (Stripe)."""
    store_path = folder / f"{mode}.db"
    run: Any = RUNS[mode]
    source = Path(where) if mode.startswith("sql") else where
    # The bundled plugins' modules imported before timing, as the modules above are (about
    # 0.35 s of CPU, a sixth of a 100,000-record run): the measured run still finds and
    # loads the plugins, once they are imported.
    Plugins()
    started, cpu_started = time.perf_counter(), time.process_time()
    count = run(source, store_path)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    print(
        json.dumps(
            {"records": count, "seconds": seconds, "cpu": cpu, "peak_mib": peak_kib() / 1024}
        )
    )


def peak_kib() -> int:
    """This process's own peak RSS. Not ``ru_maxrss``: Linux carries that across ``exec``, so
    a child started by this script would report the parent's size (a million fake Stripe
    customers) instead of its own. ``VmHWM`` belongs to the memory of the running image."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def measure(mode: str, where: str, folder: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, where, str(folder)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def best_of(
    repeat: int, source: str, where: str, folder: Path
) -> tuple[dict[str, float], dict[str, float]]:
    """The baseline's and onetomany's best runs of ``repeat`` each, taken in turn (each run
    into a new store): least seconds, least CPU, and the largest peak memory."""
    runs: dict[str, list[dict[str, float]]] = {"baseline": [], "onetomany": []}
    for n in range(repeat):
        for run in runs:
            into = folder / f"{run}-{n}"
            into.mkdir()
            runs[run].append(measure(f"{source}-{run}", where, into))
    return _best(runs["baseline"]), _best(runs["onetomany"])


def _best(runs: list[dict[str, float]]) -> dict[str, float]:
    return {
        "records": runs[0]["records"],
        "seconds": min(r["seconds"] for r in runs),
        "cpu": min(r["cpu"] for r in runs),
        "peak_mib": max(r["peak_mib"] for r in runs),
    }


@contextlib.contextmanager
def stripe_fake(size: int) -> Iterator[str]:
    """The plugin's Stripe fake serving ``size`` customers on loopback; yields its URL."""
    sys.path.insert(0, str(STRIPE_TESTS))
    from fake_stripe import FakeStripe
    from pytest_httpserver import HTTPServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # not a line per request
    server = HTTPServer(host="127.0.0.1")
    server.start()
    try:
        fake = FakeStripe(server)
        # Newest first, as Stripe lists them; built at once (the fake's helpers insert one
        # at a time at the front, which is quadratic at a million).
        fake.objects["customers"] = [
            {
                "id": f"cus_{i:07d}",
                "object": "customer",
                "email": f"billing{i}@example.test",
                "metadata": {"account_id": f"acct{i:07d}"},
            }
            for i in reversed(range(size))
        ]
        yield fake.url
        assert fake.invalid == [], fake.invalid[:3]
    finally:
        server.clear()
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--million", action="store_true", help="also 1,000,000 records")
    parser.add_argument(
        "--sources", nargs="+", choices=["sql", "stripe"], default=["sql", "stripe"]
    )
    parser.add_argument("--dir", help="where the databases go (default: the system temp dir)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each, the best shown")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, where, folder = args.child
        child(mode, where, Path(folder))
        return
    sizes = [*args.sizes, *([1_000_000] if args.million else [])]
    print(
        f"{'source':>7} {'records':>10} {'run':>10} {'records/s':>11} {'ratio':>6} "
        f"{'per CPU s':>10} {'ratio':>6} {'peak RSS':>10}"
    )
    for source in args.sources:
        peaks = []
        for size in sizes:
            with tempfile.TemporaryDirectory(prefix="bench-sync-", dir=args.dir) as scratch:
                folder = Path(scratch)
                repeat = args.repeat if size < 1_000_000 else 1
                if source == "sql":
                    host = folder / "host.db"
                    build_host(host, size)
                    base, ours = best_of(repeat, "sql", str(host), folder)
                else:
                    with stripe_fake(size) as url:
                        base, ours = best_of(repeat, "stripe", url, folder)
            assert base["records"] == ours["records"] == size, (base, ours)
            rate_base, rate_ours = size / base["seconds"], size / ours["seconds"]
            cpu_base, cpu_ours = size / base["cpu"], size / ours["cpu"]
            print(
                f"{source:>7} {size:>10,} {'baseline':>10} {rate_base:>11,.0f} {'':>6} "
                f"{cpu_base:>10,.0f} {'':>6} {base['peak_mib']:>7.0f} MiB"
            )
            print(
                f"{source:>7} {size:>10,} {'onetomany':>10} {rate_ours:>11,.0f} "
                f"{rate_ours / rate_base:>6.2f} {cpu_ours:>10,.0f} {cpu_ours / cpu_base:>6.2f} "
                f"{ours['peak_mib']:>7.0f} MiB",
                flush=True,
            )
            peaks.append(ours["peak_mib"])
        if len(peaks) > 1:
            print(f"{source}: peak RSS, largest run / smallest: {max(peaks) / min(peaks):.2f}")


if __name__ == "__main__":
    main()
