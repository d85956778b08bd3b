"""Ticks: what one round of time-driven triggers costs per contact, from 10,000 to 1,000,000.

Builds a SQLite store per size (one account per 4 contacts; a login history spread over 60
days, so about a fifth of the accounts have been absent for 30 days or more; sign-ups), as if
the history had been imported the day before and its events already ticked through. A few
accounts sign up in the last hour. The program has an absence touch (no login for 30 days,
paying accounts only, through a named segment) and an event touch on ``signed_up``; its
channel is an outbox folder, but nothing is dispatched: only ``tick`` is timed. Its journey
(stages entered and completed on events and traits, two with ``ideal_days``) is timed apart:
``update_journeys``, which ``run`` calls beside each tick.

Per size it prints:

* the first tick (queues every absence and the new sign-ups) and a steady-state tick (nothing
  new: the cost every round pays; the median of five rounds a minute apart), in wall and CPU
  seconds and CPU microseconds per contact, and how much more a steady round costs at the
  largest size than at the smallest (the goal: within 10x from 10,000 to 1,000,000);
* the first journey round (places every account) and a steady one (the median of five a
  minute apart), in CPU seconds and microseconds per contact, and the same ratio;
* one named segment evaluated over the whole population in SQL, against the Python
  evaluator, ``evaluate()`` over preloaded profiles, timed on a sample of contacts and
  extrapolated per contact (the baseline, measured in the same run). The two must agree on
  the sample.

    .venv/bin/python bench/bench_tick.py                # 10,000, 100,000 and 1,000,000
    .venv/bin/python bench/bench_tick.py --quick        # 2,000 and 20,000
    .venv/bin/python bench/bench_tick.py 50000          # any sizes
    .venv/bin/python bench/bench_tick.py --history      # 1 and 12 months of 100,000 contacts
    .venv/bin/python bench/bench_tick.py --history --quick   # of 10,000 contacts

``--history`` builds a store holding 1, then 12, months of a program's history (events,
sent rows, deliveries and decisions, written set-based as the engine would have written
them) before the same recent 60 days, and times a first and a steady tick and a dispatch of
what the first tick queued: the store must stay as fast after a year as after a month.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import attrs
import sqlalchemy as sa

from onetomany import FrozenClock
from onetomany.engine import EVENT_CURSOR, Engine
from onetomany.plugins.settings import PluginSettings
from onetomany.program import (
    AbsenceTrigger,
    Audience,
    CadenceTrigger,
    EngagementTrigger,
    EventTrigger,
    Program,
    Touch,
)
from onetomany.rules.journeys import Journey, Stage
from onetomany.rules.segments import Profile, SegmentSet
from onetomany.store import Store
from onetomany.store.profiles import load_profiles
from onetomany.store.schema import (
    accounts,
    contacts,
    cursors,
    decisions,
    deliveries,
    events,
    outbox,
)
from onetomany.store.segments import matching_contact_ids
from onetomany.tracking.cadence import start_schedules

R = TypeVar("R")
NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
#: When the profiles were imported: the day before the first round.
IMPORTED = NOW - timedelta(days=1)
#: How long after the first round the steady one runs (a worker's usual interval).
ROUND = timedelta(minutes=1)
#: Steady rounds timed per size (their median is reported).
STEADY_ROUNDS = 5
DAY = 24 * 60  # minutes
CHUNK = 50_000
#: The outbox ids of the winback emails ``build`` stores as sent (above the history's).
WATCHED_IDS = 50_000_000
SAMPLE = 10_000
SEGMENTS = {
    "paying": 'account.plan in ["pro", "enterprise"] and account.mrr >= 100',
    "at_risk": (
        'segment("paying") and account.active_users / account.seats < 0.5 '
        'and count("login", days=30) <= 2 and contact.role in ["sponsor", "admin", "leader"]'
    ),
}
TIMED_SEGMENT = "at_risk"
ROLES = ["sponsor", "admin", "leader", "analyst", None]
TIMEZONES = ["UTC", "Europe/Paris", "America/New_York", "America/Sao_Paulo", "Asia/Jakarta"]
LOCALES = ["en", "fr", "pt-BR", "id"]
TEMPLATE = """\
+++
subject = "Hello {{ contact.first_name }}"
+++
<mjml><mj-body><mj-section><mj-column>
<mj-text>Hello {{ contact.first_name }} from {{ account.name }}.</mj-text>
</mj-column></mj-section></mj-body></mjml>
"""


# -- the population ---------------------------------------------------------------------------


def _account_rows(rng: random.Random, first: int, last: int) -> Iterator[dict[str, Any]]:
    for i in range(first, last):
        seats = rng.randint(1, 200)
        yield {
            "id": f"a{i:07d}",
            "name": f"Account {i}",
            "traits": {
                "plan": rng.choice(["free", "basic", "pro", "enterprise"]),
                "mrr": rng.choice([0, 49, 99, 250, 990, 4900]),
                "seats": seats,
                "active_users": rng.randint(0, seats),
            },
            "updated_at": IMPORTED,
        }


def _contact_rows(rng: random.Random, first: int, last: int) -> Iterator[dict[str, Any]]:
    for k in range(first, last):
        yield {
            "id": f"c{k:07d}",
            "account_id": f"a{k // 4:07d}",
            "name": f"Person{k} Example",
            "email": f"p{k}@acme{k // 4}.test",
            "phone": None,
            "role": rng.choice(ROLES),
            "locale": rng.choice(LOCALES),
            "timezone": rng.choice(TIMEZONES),
            "consent": {},
            "traits": {},
            "updated_at": IMPORTED,
        }


def _event_rows(rng: random.Random, first: int, last: int) -> Iterator[dict[str, Any]]:
    """Per account: a sign-up 60-700 days ago and 0-8 logins in the last 60 days.

    One account in five has been quiet for 30 days or more (its logins are 30-60 days old);
    one in twenty never logged in (never absent from what it never did).
    """
    for i in range(first, last):
        account = f"a{i:07d}"
        yield _event_row(f"s{i}", "signed_up", account, None, rng.randint(60 * DAY, 700 * DAY))
        kind = rng.random()
        if kind < 0.05:
            continue
        low = 30 * DAY + 60 if kind < 0.25 else 0
        for j in range(rng.randint(1, 8)):
            contact = f"c{4 * i + rng.randrange(4):07d}"
            yield _event_row(f"l{i}-{j}", "login", account, contact, rng.randint(low, 60 * DAY))


def _event_row(
    id: str, name: str, account: str, contact: str | None, minutes_ago: int
) -> dict[str, Any]:
    at = NOW - timedelta(minutes=minutes_ago)
    return {
        "id": id,
        "name": name,
        "account_id": account,
        "contact_id": contact,
        "occurred_at": at,
        "received_at": at,
        "properties": {},
    }


def _chunks(rows: Iterator[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def build(store: Store, size: int, seed: int = 7) -> int:
    """``size`` contacts with their accounts and history, in one transaction; returns the
    number of events. The event log counts as already ticked through (its cursor is at the
    end), as after importing a history; the sign-ups of the last hour come after it."""
    rng = random.Random(seed)
    n_accounts = (size + 3) // 4
    with store.engine.begin() as conn:
        # executemany of whole chunks: identify() one profile at a time would take hours.
        for table, rows in (
            (accounts, _account_rows(rng, 0, n_accounts)),
            (contacts, _contact_rows(rng, 0, size)),
            (events, _event_rows(rng, 0, n_accounts)),
        ):
            for chunk in _chunks(rows):
                conn.execute(table.insert(), chunk)
        pending: dict[sa.Table, list[dict[str, Any]]] = {}
        for table, row in _watched_rows(rng, size):
            pending.setdefault(table, []).append(row)
        for table, rows in pending.items():
            for chunk in _chunks(iter(rows)):
                conn.execute(table.insert(), chunk)
        position = conn.scalar(sa.select(sa.func.max(events.c.seq)))
        conn.execute(
            cursors.insert().values(name=EVENT_CURSOR, value=str(position), updated_at=NOW)
        )
        fresh = [
            _event_row(f"new{i}", "signed_up", f"a{i:07d}", None, rng.randint(1, 60))
            for i in rng.sample(range(n_accounts), max(1, n_accounts // 1000))
        ]
        conn.execute(events.insert(), fresh)
        count = int(conn.scalar(sa.select(sa.func.count()).select_from(events)) or 0)
    if store.dialect == "sqlite":
        # Folds the bulk load's write-ahead log into the database now, so that the first
        # tick's small write does not pay for checkpointing hundreds of megabytes.
        with store.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    return count


#: A monthly check-in from each account's sign-up, to its admin or sponsor.
CHECKIN = Touch(
    name="checkin",
    trigger=CadenceTrigger(rrule="FREQ=MONTHLY", anchor="signed_up", by="account"),
    channel="email",
    template="nudge",
    audience=Audience(roles=("admin", "sponsor")),
)


def _sent_email(
    row_id: int, key: str, touch: str, contact: str, account: str, at: datetime
) -> Iterator[tuple[sa.Table, dict[str, Any]]]:
    """An email the program sent at ``at``: its outbox row (sent) and its delivery."""
    yield (
        outbox,
        {
            "id": row_id,
            "idempotency_key": key,
            "program": "bench",
            "touch": touch,
            "channel": "email",
            "template": "nudge",
            "contact_id": contact,
            "account_id": account,
            "event_id": None,
            "payload": {},
            "status": "sent",
            "attempts": 1,
            "available_at": at,
            "created_at": at,
            "updated_at": at,
        },
    )
    yield (
        deliveries,
        {
            "outbox_id": row_id,
            "idempotency_key": key,
            "channel": "email",
            "attempt": 1,
            "status": "sent",
            "provider_message_id": f"<{row_id}@bench>",
            "at": at,
            "provider": "email",
        },
    )


def _watched_rows(rng: random.Random, size: int) -> Iterator[tuple[sa.Table, dict[str, Any]]]:
    """The winback emails already sent: one contact in eight got one in the last 10 days,
    and half of those opened it (the rest are what the ``resend`` touch watches: about one
    crosses its 3 days per minute per 100,000 contacts)."""
    for k in range(0, size, 8):
        row_id = WATCHED_IDS + k
        at = NOW - timedelta(minutes=rng.randint(1, 10 * DAY))
        contact, account = f"c{k:07d}", f"a{k // 4:07d}"
        key = f"bench:winback:{contact}:sent-{row_id}"
        yield from _sent_email(row_id, key, "winback", contact, account, at)
        if rng.random() < 0.5:
            opened = _event_row(
                f"o{k}", "message_opened", account, contact, rng.randint(0, 10 * DAY)
            )
            opened["occurred_at"] = max(opened["occurred_at"], at)
            opened["properties"] = {"idempotency_key": key, "touch": "winback"}
            yield events, opened


def adopt(store: Store, program: Program) -> int:
    """Start the check-in's schedules as ``onetomany run --from-now`` would (each at its
    first occurrence after now), as if the program had been running on this history."""
    touch = program.touch(CHECKIN.name)
    assert isinstance(touch.trigger, CadenceTrigger)
    return start_schedules(
        store, touch, touch.trigger, now=NOW, choose=lambda a, c: a.pick(c), from_now=True
    )


#: Signed up, then onboarded after three logins (ideally within 14 days); expanding to 50
#: seats (within 90); enterprise accounts with eight logins become advocates.
ADOPTION = Journey(
    name="adoption",
    stages=(
        Stage(
            name="onboarding",
            entry='exists(last("signed_up"))',
            complete='count("login") >= 3',
            ideal_days=14,
        ),
        Stage(name="expansion", complete="account.seats >= 50", ideal_days=90),
        Stage(
            name="advocacy",
            entry='account.plan == "enterprise"',
            complete='count("login") >= 8',
        ),
    ),
)


def make_program(folder: Path) -> Program:
    templates = folder / "templates"
    templates.mkdir()
    (templates / "nudge.mjml").write_text(TEMPLATE)
    return Program(
        name="bench",
        touches=(
            Touch(
                name="winback",
                trigger=AbsenceTrigger(event="login", days=30),
                channel="email",
                template="nudge",
                audience=Audience(roles=("sponsor", "admin")),
                segment="paying",
            ),
            Touch(
                name="welcome",
                trigger=EventTrigger(event="signed_up"),
                channel="email",
                template="nudge",
                audience=Audience(roles=("admin", "sponsor")),
            ),
            Touch(
                name="resend",
                trigger=EngagementTrigger(touch="winback", outcome="not_opened", days=3),
                channel="email",
                template="nudge",
            ),
            CHECKIN,
        ),
        channels={
            "email": PluginSettings(
                name="email", plugin="outbox", options={"folder": str(folder / "outbox")}
            )
        },
        segments=SEGMENTS,
        journeys={ADOPTION.name: ADOPTION},
        templates_dir=templates,
        sender="Acme <success@acme.test>",
        base_dir=folder,
    )


# -- the Python baseline ----------------------------------------------------------------------


def sample_profiles(store: Store, size: int, seed: int = 11) -> list[Profile]:
    """``SAMPLE`` random contacts as the Python evaluator sees them (see ``load_profiles``)."""
    ids = sorted(f"c{k:07d}" for k in random.Random(seed).sample(range(size), min(size, SAMPLE)))
    return list(load_profiles(store, ids).values())


def python_ids(segments: SegmentSet, profiles: list[Profile]) -> set[str]:
    return {p.contact.id for p in profiles if segments.evaluate(TIMED_SEGMENT, p, now=NOW)}


def timed(fn: Callable[[], R]) -> tuple[float, R]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def cpu_timed(fn: Callable[[], R]) -> tuple[float, float, R]:
    """Wall and CPU seconds: on a shared machine the CPU time is the steadier of the two."""
    cpu = time.process_time()
    wall, result = timed(fn)
    return wall, time.process_time() - cpu, result


def run(size: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        store = Store(folder / "bench.db")
        program = make_program(folder)
        build_s, n_events = timed(lambda: (build(store, size), adopt(store, program))[0])
        segments = SegmentSet(SEGMENTS)
        clock = FrozenClock(NOW)
        with Engine(program, store=store, clock=clock) as engine:
            first_s, first_cpu, first = cpu_timed(engine.tick)
            rounds = []
            for _ in range(STEADY_ROUNDS):
                clock.advance(ROUND)
                rounds.append(cpu_timed(engine.tick))
            # A round a minute later queues the few absences that began in that minute.
            steady_queued = sum(queued for _, _, queued in rounds)
            # The median round: the first one after a busy round also pays SQLite's
            # checkpoint of what that round wrote.
            steady_s = statistics.median(wall for wall, _, _ in rounds)
            steady_cpu = statistics.median(cpu for _, cpu, _ in rounds)
            # The journey's rounds, after the ticks: their stage events are not ticked.
            _, journey_first_cpu, placed = cpu_timed(engine.update_journeys)
            journey_rounds = []
            for _ in range(STEADY_ROUNDS):
                clock.advance(ROUND)
                journey_rounds.append(cpu_timed(engine.update_journeys)[1])
            sql_s, in_sql = timed(
                lambda: matching_contact_ids(
                    store, segments.expr(TIMED_SEGMENT), now=NOW, segments=segments
                )
            )
            profiles = sample_profiles(store, size)
            py_s, in_py = timed(lambda: python_ids(segments, profiles))
            sampled = {p.contact.id for p in profiles}
            assert in_py == sampled & set(in_sql), "the evaluators disagree on the sample"
    return {
        "contacts": size,
        "events": n_events,
        "build_s": build_s,
        "queued": first,
        "first_s": first_s,
        "first_cpu": first_cpu,
        "steady_s": steady_s,
        "steady_queued": steady_queued,
        "steady_cpu": steady_cpu,
        "journey_steps": len(placed),
        "journey_first_cpu": journey_first_cpu,
        "journey_cpu": statistics.median(journey_rounds),
        "matched": len(in_sql),
        "sql_us": sql_s / size * 1e6,
        "py_us": py_s / len(profiles) * 1e6,
    }


# -- a program with a history ------------------------------------------------------------------

#: Sizes of the history runs: the issue's 100,000-contact program, and ``--quick``.
HISTORY_SIZE, HISTORY_QUICK = 100_000, 10_000
MONTH = 30 * DAY
#: How long the history runs keep decisions: the whole history. With the default 30 days,
#: the first tick would delete every decision of the history at once, which the rounds of
#: those months would have done a day at a time.
HISTORY_DECISIONS = timedelta(days=14 * 30)


def _history_rows(
    rng: random.Random, n_accounts: int, months: int
) -> Iterator[tuple[sa.Table, dict[str, Any]]]:
    """What ``months`` of the program wrote before the recent 60 days, as the engine would
    have written it: a login a week by most accounts, and a monthly touch to every admin
    and sponsor, with its queued row (sent), its delivery and its decision."""
    first = 60 * DAY
    for i in range(n_accounts):
        account = f"a{i:07d}"
        for week in range(months * 30 // 7):
            if rng.random() < 0.8:
                contact = f"c{4 * i + rng.randrange(4):07d}"
                ago = first + week * 7 * DAY + rng.randrange(7 * DAY)
                yield events, _event_row(f"h{i}-{week}", "login", account, contact, ago)
    serial = 0
    for month in range(months):
        at = NOW - timedelta(minutes=first + month * MONTH)
        for k in range(4 * n_accounts):
            if k % 4 > 1:
                continue  # the admin and the sponsor seats of each account
            serial += 1
            contact, key = f"c{k:07d}", f"bench:digest:c{k:07d}:{at:%Y-%m}"
            yield from _sent_email(serial, key, "digest", contact, f"a{k // 4:07d}", at)
            yield (
                decisions,
                {
                    "at": at,
                    "touch": "digest",
                    "contact_id": contact,
                    "idempotency_key": key,
                    "outcome": "queued",
                    "record": {"trigger": "cadence", "checks": []},
                },
            )


def add_history(store: Store, size: int, months: int, seed: int = 13) -> int:
    """Add ``months`` of history (see ``_history_rows``) in one transaction, set-based;
    returns the rows added. Called before :func:`build`, so that the history sits before the
    recent days in the log and the event cursor ``build`` sets is past it, as in a store
    filled over those months (stored after the cursor, every old login would be new to the
    first tick's event triggers)."""
    rng = random.Random(seed)
    pending: dict[sa.Table, list[dict[str, Any]]] = {}
    added = 0
    with store.engine.begin() as conn:
        for table, row in _history_rows(rng, (size + 3) // 4, months):
            rows = pending.setdefault(table, [])
            rows.append(row)
            if len(rows) == CHUNK:
                conn.execute(table.insert(), rows)
                added += len(rows)
                rows.clear()
        for table, rows in pending.items():
            if rows:
                conn.execute(table.insert(), rows)
                added += len(rows)
    if store.dialect == "sqlite":
        with store.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    return added


def run_history(size: int, months: int) -> dict[str, float]:
    """Tick and dispatch on a store holding ``months`` of a ``size``-contact program."""
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        store = Store(folder / "bench.db")
        program = make_program(folder)
        program = attrs.evolve(
            program, retention=attrs.evolve(program.retention, decisions=HISTORY_DECISIONS)
        )
        build_s, _ = timed(
            lambda: (add_history(store, size, months), build(store, size), adopt(store, program))
        )
        with store.engine.connect() as conn:
            counts = {
                t.name: int(conn.scalar(sa.select(sa.func.count()).select_from(t)) or 0)
                for t in (events, outbox, decisions)
            }
        clock = FrozenClock(NOW)
        with Engine(program, store=store, clock=clock) as engine:
            _, first_cpu, queued = cpu_timed(engine.tick)
            rounds = []
            for _ in range(STEADY_ROUNDS):
                clock.advance(ROUND)
                rounds.append(cpu_timed(engine.tick))
            send_s, send_cpu, report = cpu_timed(engine.dispatch)
    return {
        "months": months,
        "build_s": build_s,
        **{f"{k}_rows": v for k, v in counts.items()},
        "queued": queued,
        "first_cpu": first_cpu,
        "steady_cpu": statistics.median(cpu for _, cpu, _ in rounds),
        "sent": report.sent,
        "send_s": send_s,
        "send_cpu": send_cpu,
    }


def main_history(size: int) -> None:
    print(
        f"history: {size:,} contacts after 1 and 12 months of the program (a login a week by "
        "most accounts, a monthly touch to every admin and sponsor: its row, delivery and "
        "decision), then the recent 60 days as above; tick as above, then dispatch what the "
        "first tick queued to an outbox folder; CPU seconds of this process"
    )
    print(
        f"{'months':>6} {'events':>10} {'outbox':>10} {'decisions':>10} {'build s':>8} "
        f"{'queued':>7} {'tick1 cpu':>9} {'tick2 cpu':>9} {'sent':>6} {'dispatch s':>10} "
        f"{'cpu ms/msg':>10}",
        flush=True,
    )
    results = []
    for months in (1, 12):
        r = run_history(size, months)
        results.append(r)
        print(
            f"{months:>6} {r['events_rows']:>10,} {r['outbox_rows']:>10,} "
            f"{r['decisions_rows']:>10,} {r['build_s']:>8.1f} {r['queued']:>7,} "
            f"{r['first_cpu']:>9.3f} {r['steady_cpu']:>9.3f} {r['sent']:>6,} "
            f"{r['send_s']:>10.2f} {r['send_cpu'] / max(r['sent'], 1) * 1e3:>10.2f}",
            flush=True,
        )
    one, twelve = results
    per_message = [r["send_cpu"] / max(r["sent"], 1) for r in results]
    print(
        "12 months / 1 month: "
        f"first tick {twelve['first_cpu'] / one['first_cpu']:.2f}x, "
        f"steady tick {twelve['steady_cpu'] / one['steady_cpu']:.2f}x, "
        f"dispatch per message {per_message[1] / per_message[0]:.2f}x (CPU)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("sizes", type=int, nargs="*", help="contacts per run")
    parser.add_argument("--quick", action="store_true", help="2,000 and 20,000 contacts")
    parser.add_argument(
        "--history",
        action="store_true",
        help=f"tick and dispatch after 1 and 12 months of a {HISTORY_SIZE:,}-contact program "
        f"({HISTORY_QUICK:,} with --quick)",
    )
    args = parser.parse_args()
    if args.history:
        main_history(args.sizes[0] if args.sizes else HISTORY_QUICK if args.quick else HISTORY_SIZE)
        return
    sizes = args.sizes or ([2_000, 20_000] if args.quick else [10_000, 100_000, 1_000_000])
    print("program: an absence touch (no login for 30 days, segment 'paying'), an event")
    print("touch on signed_up, an engagement touch (the absence email not opened in 3 days)")
    print("and a monthly cadence from signed_up; SQLite; tick only (nothing dispatched).")
    print(f"segment timed: {TIMED_SEGMENT} = {SEGMENTS[TIMED_SEGMENT]}")
    print(
        f"Python: evaluate() over {SAMPLE:,} preloaded sample profiles, extrapolated per "
        "contact; SQL: one query over the whole population."
    )
    print("tick columns: wall seconds, CPU seconds of this process, CPU microseconds per contact")
    print(
        f"journey {ADOPTION.name!r}: steps of its first round, then CPU seconds of the first "
        f"and of the median steady round, and CPU microseconds per contact of the steady one"
    )
    print(
        f"tick2: the median of {STEADY_ROUNDS} rounds {ROUND.seconds // 60} minute apart; "
        "queued2: what they queued in all (absences that began meanwhile)"
    )
    print(
        f"{'contacts':>10} {'events':>10} {'build s':>8} {'queued':>7} {'tick1 s':>8} "
        f"{'cpu s':>7} {'us/c':>6} {'tick2 s':>8} {'cpu s':>7} {'us/c':>6} {'queued2':>7} "
        f"{'steps':>7} {'jrny1 s':>8} {'jrny2 s':>8} {'us/c':>6} {'matched':>8} "
        f"{'SQL us/c':>9} {'Py us/c':>8} {'SQL/Py':>7}",
        flush=True,
    )
    smallest: dict[str, float] | None = None
    for size in sizes:
        r = run(size)
        smallest = smallest or r
        print(
            f"{size:>10,} {r['events']:>10,} {r['build_s']:>8.1f} {r['queued']:>7,} "
            f"{r['first_s']:>8.3f} {r['first_cpu']:>7.3f} {r['first_cpu'] / size * 1e6:>6.1f} "
            f"{r['steady_s']:>8.3f} {r['steady_cpu']:>7.3f} {r['steady_cpu'] / size * 1e6:>6.1f} "
            f"{int(r['steady_queued']):>7,} {int(r['journey_steps']):>7,} "
            f"{r['journey_first_cpu']:>8.3f} {r['journey_cpu']:>8.3f} "
            f"{r['journey_cpu'] / size * 1e6:>6.1f} {r['matched']:>8,} "
            f"{r['sql_us']:>9.2f} {r['py_us']:>8.2f} "
            f"{r['sql_us'] / r['py_us']:>7.3f}",
            flush=True,
        )
    if smallest is not None and len(sizes) > 1:
        # The goal: a steady round costs what changed, not the size of the book.
        last, first = int(r["contacts"]), int(smallest["contacts"])
        print(
            f"steady tick at {last:,} contacts / at {first:,}: "
            f"{r['steady_cpu'] / smallest['steady_cpu']:.1f}x CPU, "
            f"{r['steady_s'] / smallest['steady_s']:.1f}x wall (the book is {last / first:.0f}x)"
        )
        print(
            f"steady journey round at {last:,} contacts / at {first:,}: "
            f"{r['journey_cpu'] / smallest['journey_cpu']:.1f}x CPU"
        )


if __name__ == "__main__":
    main()
