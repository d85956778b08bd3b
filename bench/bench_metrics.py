"""Measuring: the funnels and the HTML report over N deliveries, against the bare SQL.

Builds a SQLite store with N sent messages (a third opened, one in ten clicked, some dead)
over 5 touches, 2,000 contacts and 90 days, then times, in the same run:

* the baseline: one hand-written SQL statement per dimension (touch, channel, week), the
  least any funnel must do: GROUP BY over the outbox left-joined to the events per key;
* ``Engine.metrics`` for the same dimensions (the SQL of store/queries/metrics.py, plus
  the decisions it also reads and the values it builds);
* the whole HTML report (every section, plotly.js inlined).

Prints microseconds per delivery for each and the ratios; the goal is a time per delivery
flat across sizes, and the report within 2x of the SQL alone.

    .venv/bin/python bench/bench_metrics.py --sizes 100000
    .venv/bin/python bench/bench_metrics.py --sizes 100000 1000000   # slow to build

The baseline joins each open or click to its outbox row through the unique index on the
key, groups the flags per row, and joins them back by row id (SQLite builds an automatic
index on the grouped rows). An earlier baseline grouped the events by their key's text and
left-joined the outbox to that: SQLite scanned the grouped rows once per outbox row, 50 times
slower than the engine on 10,000 deliveries, so its ratios said nothing.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from onetomany.engine import Engine
from onetomany.plugins.settings import PluginSettings
from onetomany.program import Program, Touch
from onetomany.store import Store, schema
from onetomany.testing import RecordingChannel, make_plugins

T0 = datetime(2026, 9, 1, tzinfo=UTC)
TOUCHES = ("welcome", "resend", "recap", "nudge", "nps")
BASELINE = """
WITH k AS (
    SELECT o.id AS id, max(e.name = 'message_opened') AS opened,
           max(e.name = 'message_clicked') AS clicked
    FROM events e
    JOIN outbox o ON o.idempotency_key = json_extract(e.properties, '$.idempotency_key')
    WHERE e.name IN ('message_opened', 'message_clicked')
    GROUP BY o.id
)
SELECT {dim} AS value, count(*) AS queued,
       sum(CASE WHEN o.status = 'sent' THEN 1 ELSE 0 END) AS sent,
       sum(coalesce(k.opened, 0)) AS opened, sum(coalesce(k.clicked, 0)) AS clicked
FROM outbox o LEFT JOIN k ON k.id = o.id
GROUP BY {dim}
"""
TEMPLATE = """+++
subject = "Hi"
+++
<mjml><mj-body><mj-section><mj-column><mj-text>Hi</mj-text></mj-column></mj-section></mj-body></mjml>
"""
DIMS = {
    "touch": "o.touch",
    "channel": "o.channel",
    "week": "date(o.created_at, 'weekday 0', '-6 days')",
}


def build(store: Store, n: int) -> None:
    rng = random.Random(7)
    rows, events = [], []
    for i in range(n):
        touch = TOUCHES[i % len(TOUCHES)]
        at = T0 + timedelta(minutes=rng.randrange(90 * 24 * 60))
        key = f"bench:{touch}:{i}"
        rows.append(
            {
                "idempotency_key": key,
                "program": "bench",
                "touch": touch,
                "channel": "email",
                "template": touch,
                "contact_id": f"c{i % 2000}",
                "account_id": f"a{i % 500}",
                "payload": {},
                "status": "dead" if i % 50 == 0 else "sent",
                "attempts": 1,
                "available_at": at,
                "created_at": at,
                "updated_at": at,
            }
        )
        if i % 3 == 0:
            events.append((f"o{i}", "message_opened", key, at))
        if i % 10 == 0:
            events.append((f"k{i}", "message_clicked", key, at))
    with store.write() as conn:
        for start in range(0, len(rows), 50_000):
            conn.execute(sa.insert(schema.outbox), rows[start : start + 50_000])
        event_rows = [
            {
                "id": eid,
                "name": name,
                "contact_id": "c0",
                "occurred_at": at,
                "received_at": at,
                "properties": {"idempotency_key": key},
            }
            for eid, name, key, at in events
        ]
        for start in range(0, len(event_rows), 50_000):
            conn.execute(sa.insert(schema.events), event_rows[start : start + 50_000])


def timed(call: object) -> float:
    start = time.perf_counter()
    call()  # type: ignore[operator]
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    args = parser.parse_args()
    print(f"{'deliveries':>11} {'bare SQL':>10} {'metrics':>10} {'report':>10}  (us/delivery)")
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as folder:
            store = Store(Path(folder) / "bench.db")
            build(store, n)
            (Path(folder) / "templates").mkdir()
            for touch in TOUCHES:
                (Path(folder) / "templates" / f"{touch}.mjml").write_text(TEMPLATE)
            program = Program(
                name="bench",
                touches=[Touch(name=t, trigger=None, channel="email", template=t) for t in TOUCHES],
                channels={"email": PluginSettings(name="email", plugin="recording")},
                base_dir=folder,
                templates_dir=Path(folder) / "templates",
            )
            with Engine(
                program,
                store=store,
                plugins=make_plugins(),
                channels={"email": RecordingChannel()},
            ) as engine:

                def bare(store: Store = store) -> None:
                    with store.engine.connect() as conn:
                        for dim in DIMS.values():
                            conn.execute(sa.text(BASELINE.format(dim=dim))).all()

                bare()  # warm the page cache for both
                sql = min(timed(bare) for _ in range(3))
                ours = min(timed(lambda: engine.metrics(by=list(DIMS))) for _ in range(3))
                report = timed(lambda: engine.report(Path(folder) / "report.html"))
            print(
                f"{n:>11,} {sql / n * 1e6:>10.2f} {ours / n * 1e6:>10.2f} "
                f"{report / n * 1e6:>10.2f}  metrics/SQL {ours / sql:.2f}x, "
                f"report/SQL {report / sql:.2f}x"
            )


if __name__ == "__main__":
    main()
