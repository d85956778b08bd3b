"""The concurrency table that bench_smtp.py and bench_http.py print.

The engine against the prebuilt-bytes limit at the same number of connections: in one
process (the engine's ``concurrency`` sender threads against as many threads each sending
prebuilt bytes over its own connection), and across worker processes on one PostgreSQL store
(each worker one connection, against as many processes sending prebuilt bytes). PostgreSQL is
the throwaway cluster the tests use (tests/postgres.py: fsync off).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import sqlalchemy as sa

from onetomany.model import ChannelKind
from onetomany.rules.windows import DEFAULT_WINDOWS, SendWindow, WindowSettings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.postgres

#: Connections (sender threads) in one process, and worker processes on PostgreSQL.
CONNECTIONS = (1, 4, 8)
PROCESSES = (1, 2, 4)

#: The benchmarks' send windows: email open every hour of every day, so the quiet-hours policy
#: still judges each row (and costs what it costs) while a run in the evening or at the weekend
#: is not deferred to the next morning by the default 08:00-20:00 weekday window.
ALWAYS_OPEN = WindowSettings(
    windows={**DEFAULT_WINDOWS, ChannelKind.EMAIL: SendWindow(start=0, end=24 * 60)}
)

_T = TypeVar("_T")


def shares(items: Sequence[_T], parts: int) -> list[list[_T]]:
    """``items`` dealt round-robin into ``parts`` lists."""
    return [list(items[i::parts]) for i in range(parts)]


def in_threads(parts: Sequence[Sequence[_T]], send: Callable[[Sequence[_T]], None]) -> float:
    """Messages per second when each part is sent by a thread of its own (``send`` opens its
    own connection); the clock starts once every thread is ready to send."""
    ready = threading.Barrier(len(parts) + 1)

    def run(part: Sequence[_T]) -> None:
        ready.wait()
        send(part)

    threads = [threading.Thread(target=run, args=(part,)) for part in parts]
    for thread in threads:
        thread.start()
    ready.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    return sum(len(part) for part in parts) / (time.perf_counter() - start)


def in_processes(count: int, prepare: Callable[[int, int], Callable[[], int]]) -> float:
    """Messages per second of ``count`` processes: each calls ``prepare(index, count)`` (its
    setup, untimed), waits for the others, then runs what it returned, which sends and says
    how many it sent. The clock runs from the common start to the last one's end."""
    context = multiprocessing.get_context("spawn")
    start_line = context.Barrier(count + 1)
    ends: multiprocessing.Queue[tuple[int, float]] = context.Queue()
    workers = [
        context.Process(target=_worker, args=(prepare, index, count, start_line, ends))
        for index in range(count)
    ]
    for worker in workers:
        worker.start()
    start_line.wait(timeout=300)
    start = time.time()
    done = [ends.get(timeout=600) for _ in workers]
    for worker in workers:
        worker.join(60)
    return sum(sent for sent, _ in done) / (max(end for _, end in done) - start)


def _worker(
    prepare: Callable[[int, int], Callable[[], int]],
    index: int,
    count: int,
    start_line: multiprocessing.synchronize.Barrier,
    ends: multiprocessing.Queue[tuple[int, float]],
) -> None:
    go = prepare(index, count)
    start_line.wait(timeout=300)
    sent = go()
    ends.put((sent, time.time()))


@contextlib.contextmanager
def postgres() -> Iterator[Callable[[], str] | None]:
    """A factory of fresh, empty databases on a throwaway cluster (their URLs), or None when
    PostgreSQL's binaries are missing."""
    from tests.postgres import PostgresUnavailable, running_postgres

    try:
        cluster_context = running_postgres("onetomany_bench")
        cluster = cluster_context.__enter__()
    except PostgresUnavailable as exc:
        print(f"postgresql: skipped ({exc})")
        yield None
        return
    admin = sa.create_engine(cluster.url(), isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)

    def fresh() -> str:
        name = f"bench_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        return cluster.url(name)

    try:
        yield fresh
    finally:
        admin.dispose()
        cluster_context.__exit__(None, None, None)


def print_table(rows: Sequence[tuple[str, float, float]]) -> None:
    """``(setting, engine msg/s, limit msg/s)`` rows, with their ratio against the goal."""
    print(f"{'':40} {'engine':>9} {'limit':>9} {'engine/limit':>13}")
    for setting, ours, limit in rows:
        ratio = ours / limit
        verdict = "" if ratio >= 0.8 else "  (under the 0.8x goal)"
        print(f"{setting:40} {ours:9.0f} {limit:9.0f} {ratio:12.2f}x{verdict}")
