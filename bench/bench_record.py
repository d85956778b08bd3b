"""The store's delivery path in a tight loop: CPU per row of claim, the batch's profile read
and ``record_many``.

Each round claims ``--claim`` rows (200, the dispatcher's batch), reads their contacts and
accounts as the dispatcher does, and records one outcome per row (a mix of sent, retrying and
dead), ``--batch`` (20) outcomes per ``record_many`` as the dispatcher records them. Only the
store's calls are timed, with ``time.process_time`` (CPU of this process, so other jobs on the
machine move the figures less than a wall clock would). It prints the
microseconds of CPU per row of each step, best of ``--repeat`` runs.

To compare two versions of the store, run the command once with each on ``PYTHONPATH``, taking
turns, and compare the figures of runs close together:
``PYTHONPATH=OTHER/src .venv/bin/python bench/bench_record.py``.
Run: ``python bench/bench_record.py [--rows 4000] [--url postgresql+psycopg://...]`` (an
empty PostgreSQL database, which each run empties again; SQLite in a temporary file if none).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from onetomany import Account, Contact, Delivery
from onetomany.store import Store
from onetomany.store.store import NewTouch, Outcome

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)


def _fill(store: Store, rows: int) -> None:
    accounts = [Account(id=f"a{i}", name=f"Firm {i}", traits={"plan": "pro"}) for i in range(rows)]
    contacts = [
        Contact(
            id=f"c{i}",
            account_id=f"a{i}",
            name=f"Ana {i}",
            email=f"ana{i}@acme.test",
            role="sponsor",
            traits={"seats": i},
        )
        for i in range(rows)
    ]
    store.save_profiles(accounts=accounts, contacts=contacts, now=NOW)
    store.enqueue(
        [
            NewTouch(
                idempotency_key=f"welcome:c{i}",
                program="bench",
                touch="welcome",
                channel="email",
                template="welcome",
                contact_id=f"c{i}",
                account_id=f"a{i}",
                payload={"n": i},
                available_at=NOW,
            )
            for i in range(rows)
        ],
        now=NOW,
    )


def _outcome(row_id: int, key: str, token: str, i: int) -> Outcome:
    kind = ("sent", "sent", "sent", "retrying", "dead")[i % 5]
    delivery = Delivery(
        outbox_id=row_id,
        idempotency_key=key,
        channel="email",
        attempt=1,
        status=kind,
        at=NOW,
        touch="welcome",
        contact_id=f"c{i}",
        account_id=f"a{i}",
        provider_message_id=f"<{key}@acme.test>" if kind == "sent" else None,
        error=None if kind == "sent" else "421 try again later",
        provider="smtp",
    )
    retry_at = NOW + timedelta(minutes=10) if kind == "retrying" else None
    return Outcome(delivery=delivery, claim_token=token, retry_at=retry_at)


def run(url: str, rows: int, claimed_rows: int, batch: int) -> tuple[float, float, float]:
    """CPU seconds spent in claim, the profile read and record_many over ``rows`` rows."""
    store = Store(url)
    try:
        _fill(store, rows)
        claim = read = record = 0.0
        for _ in range(0, rows, claimed_rows):
            start = time.process_time()
            claimed = store.claim(worker="bench", now=NOW, lease=LEASE, limit=claimed_rows)
            claimed_at = time.process_time()
            contacts = store.get_contacts(r.contact_id for r in claimed if r.contact_id)
            store.get_accounts({c.account_id for c in contacts.values() if c.account_id})
            claim += claimed_at - start
            read += time.process_time() - claimed_at
            outcomes = [
                _outcome(r.id, r.idempotency_key, r.claim_token or "", int(r.contact_id[1:]))
                for r in claimed
                if r.contact_id
            ]
            for first in range(0, len(outcomes), batch):
                start = time.process_time()
                stale = store.record_many(outcomes[first : first + batch])
                record += time.process_time() - start
                assert not stale, stale
        return claim, read, record
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=4000, help="rows per run (default 4000)")
    parser.add_argument("--claim", type=int, default=200, help="rows per claim (default 200)")
    parser.add_argument("--batch", type=int, default=20, help="outcomes per record_many")
    parser.add_argument("--repeat", type=int, default=5, help="runs; the best is shown")
    parser.add_argument("--url", help="a PostgreSQL URL (an empty database); default SQLite")
    args = parser.parse_args()
    if args.url:
        _check_empty(args.url)
    best = [float("inf")] * 3
    for n in range(args.repeat):
        if args.url:
            url = args.url
            _drop_all(url)
            figures = run(url, args.rows, args.claim, args.batch)
        else:
            with tempfile.TemporaryDirectory() as folder:
                figures = run(str(Path(folder) / "bench.db"), args.rows, args.claim, args.batch)
        best = [min(b, f) for b, f in zip(best, figures, strict=True)]
        print(f"run {n + 1}: " + _line(figures, args.rows))
    print("best:  " + _line(tuple(best), args.rows))


def _line(figures: tuple[float, ...], rows: int) -> str:
    claim, read, record = (1e6 * f / rows for f in figures)
    return f"claim {claim:.1f} us/row, profile read {read:.1f} us/row, record {record:.1f} us/row"


def _check_empty(url: str) -> None:
    """Refuse a database that holds tables: each run starts by dropping everything in it."""
    engine = sa.create_engine(url)
    try:
        tables = sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()
    if tables:
        raise SystemExit(f"--url must name an empty database; this one has {len(tables)} tables")


def _drop_all(url: str) -> None:
    """Empty the PostgreSQL database before a run (the store migrates it again)."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()


if __name__ == "__main__":
    main()
