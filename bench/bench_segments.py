"""Segments: evaluating one representative segment in SQL versus in Python, same population.

Builds N contacts (one account per 4 contacts, ~3 events per account) in a SQLite store,
then times :func:`matching_contact_ids` (one SQL query) against loading every profile and
calling :func:`evaluate` per contact (the baseline, measured in the same run). Prints the
time per contact of each and the ratio SQL/Python (below 1: SQL is faster).

    .venv/bin/python bench/bench_segments.py --sizes 10000 100000
    .venv/bin/python bench/bench_segments.py --million   # adds 1,000,000 (slow)
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import sqlalchemy as sa

from onetomany import Account, Contact, Event
from onetomany.rules.segments import Profile, evaluate, parse
from onetomany.store import Store
from onetomany.store.schema import accounts, contacts, events
from onetomany.store.segments import matching_contact_ids

T = TypeVar("T")
R = TypeVar("R")
NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
SEGMENT = (
    'account.plan in ["pro", "enterprise"] and account.active_users / account.seats < 0.5 '
    'and days_since(account.signed_up_at) > 30 and count("login", days=30) <= 2 '
    'and contact.role in ["sponsor", "leader"]'
)


def build(store: Store, size: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    batch = 20_000
    for start in range(0, size, batch):
        stop = min(size, start + batch)
        accs, people, evs = [], [], []
        for i in range(start // 4, (stop + 3) // 4):
            traits = {
                "plan": rng.choice(["basic", "pro", "enterprise", None]),
                "seats": rng.randint(0, 50),
                "active_users": rng.randint(0, 50),
                "signed_up_at": (NOW - timedelta(days=rng.randint(0, 400))).date().isoformat(),
            }
            accs.append(Account(id=f"a{i}", traits=traits))
            for j in range(rng.randint(0, 6)):
                evs.append(
                    Event(
                        id=f"e{i}-{j}",
                        name=rng.choice(["login", "report"]),
                        account_id=f"a{i}",
                        occurred_at=NOW - timedelta(minutes=rng.randint(0, 60 * 24 * 60)),
                    )
                )
        for k in range(start, stop):
            role = rng.choice(["sponsor", "leader", "analyst", None])
            people.append(Contact(id=f"c{k:07d}", account_id=f"a{k // 4}", role=role))
        store.save_profiles(accounts=accs, contacts=people, events=evs, now=NOW)


def load_profiles(store: Store) -> list[Profile]:
    """Every contact with its account and its account's events, as the Python side needs."""
    with store.engine.connect() as conn:
        by_id = {
            r.id: Account(id=r.id, name=r.name, traits=r.traits)
            for r in conn.execute(sa.select(accounts))
        }
        by_account: dict[str, list[Event]] = defaultdict(list)
        for r in conn.execute(sa.select(events)):
            by_account[r.account_id].append(
                Event(
                    id=r.id,
                    name=r.name,
                    account_id=r.account_id,
                    contact_id=r.contact_id,
                    occurred_at=r.occurred_at,
                )
            )
        return [
            Profile(
                contact=Contact(id=r.id, account_id=r.account_id, role=r.role),
                account=by_id.get(r.account_id),
                events=by_account.get(r.account_id, ()),
            )
            for r in conn.execute(sa.select(contacts))
        ]


def python_ids(profiles: list[Profile]) -> list[str]:
    """The baseline: evaluate the segment for each profile in Python."""
    expr = parse(SEGMENT)
    return sorted(p.contact.id for p in profiles if evaluate(expr, p, now=NOW))


def sql_ids(store: Store) -> list[str]:
    return matching_contact_ids(store, SEGMENT, now=NOW)


def timed(fn: Callable[[T], R], arg: T) -> tuple[float, R]:
    start = time.perf_counter()
    result = fn(arg)
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--million", action="store_true", help="also run 1,000,000 contacts")
    args = parser.parse_args()
    sizes = list(args.sizes) + ([1_000_000] if args.million else [])
    print(f"segment: {SEGMENT}")
    print("SQL: one query over the store. Python: evaluate() per preloaded profile")
    print("(loading the profiles from the store is shown apart, in 'load s').")
    print(
        f"{'contacts':>10} {'matched':>8} {'SQL s':>8} {'Python s':>9} {'load s':>8} "
        f"{'SQL us/c':>9} {'Py us/c':>8} {'SQL/Py':>7}"
    )
    for size in sizes:
        with tempfile.TemporaryDirectory() as folder:
            store = Store(Path(folder) / "bench.db")
            build(store, size)
            sql_s, in_sql = timed(sql_ids, store)
            load_s, profiles = timed(load_profiles, store)
            py_s, in_py = timed(python_ids, profiles)
            assert in_sql == in_py, "the evaluators disagree"
            store.close()
        print(
            f"{size:>10,} {len(in_sql):>8,} {sql_s:>8.3f} {py_s:>9.3f} {load_s:>8.3f} "
            f"{sql_s / size * 1e6:>9.2f} {py_s / size * 1e6:>8.2f} {sql_s / py_s:>7.3f}"
        )


if __name__ == "__main__":
    main()
