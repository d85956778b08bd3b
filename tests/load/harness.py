"""The load and fault run: worker processes on PostgreSQL against a faulty provider.

:func:`run` queues ``touches`` welcome emails (one per contact), starts ``workers`` worker
processes (:mod:`tests.load.worker`, each an :class:`~onetomany.Engine` dispatching in a
loop, as ``onetomany run`` does) against a local Postmark (``FakePostmark``) that answers
``fault_ratio`` of its calls with a 429 or a 503 carrying ``Retry-After``, SIGKILLs a random
worker every few seconds and starts a new one in its place (as systemd would), and restarts
the PostgreSQL server once, mid-run. It ends when every row is final, and reports:

* lost: rows whose message the provider never accepted (must be 0);
* duplicates: messages the provider accepted more than once for one outbox key; at most
  the in-flight rows of the killed workers (a claimed batch each), and each copy carries the
  row's key, so a provider that honours keys would drop it;
* throughput: distinct messages accepted per second of the run.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import attrs
import sqlalchemy as sa

from onetomany import Account, Contact
from onetomany.model import OutboxStatus
from onetomany.store import Store
from onetomany.store.schema import outbox
from onetomany.store.store import NewTouch
from onetomany_postmark.testing import FakePostmark
from onetomany_postmark.wire import key_from_metadata

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "load-token"
#: Rows a worker claims at once: what one SIGKILL can leave sent but not recorded.
BATCH = 20
#: How long a killed worker's rows stay claimed before another worker takes them.
LEASE_SECONDS = 5.0
_PROFILE_CHUNK = 2_000
TEMPLATE = """\
+++
subject = "Welcome {{ contact.first_name }}"
+++
<mjml><mj-body><mj-section><mj-column>
<mj-text>Hello {{ contact.first_name }} from {{ account.name }}.</mj-text>
</mj-column></mj-section></mj-body></mjml>
"""


@attrs.frozen(kw_only=True)
class Settings:
    touches: int
    workers: int = 4
    fault_ratio: float = 0.3
    #: Seconds between two SIGKILLs (each a random worker).
    kill_every: float = 4.0
    #: Shares of the touches accepted when the database restarts (once each).
    restart_at: tuple[float, ...] = (0.4,)
    timeout: float = 900.0
    seed: int = 17


@attrs.frozen(kw_only=True)
class Report:
    touches: int
    accepted: int
    lost: int
    duplicates: int
    #: Keys accepted twice or more, with every copy's key as the provider saw it.
    duplicate_keys: tuple[str, ...]
    #: The outbox rows of the first lost messages: status, attempts, last error.
    lost_rows: tuple[str, ...]
    kills: int
    restarts: int
    #: Provider calls, and those answered 429/503 with Retry-After.
    calls: int
    faults: int
    seconds: float
    crashed: int

    @property
    def throughput(self) -> float:
        return (self.accepted - self.duplicates) / self.seconds if self.seconds else 0.0

    @property
    def duplicate_bound(self) -> int:
        return self.kills * BATCH

    def lines(self) -> list[str]:
        return [
            f"touches {self.touches:,}: lost {self.lost}, duplicates {self.duplicates} "
            f"(bound {self.duplicate_bound}: {self.kills} SIGKILLs x {BATCH} in flight)",
            f"provider calls {self.calls:,}, {self.faults:,} answered 429/503 with Retry-After; "
            f"database restarts {self.restarts}; workers that exited on their own {self.crashed}",
            f"{self.seconds:.1f} s, {self.throughput:.0f} messages/s",
        ]


def queue(store: Store, count: int) -> None:
    """``count`` contacts (four to an account) and one welcome email due now for each."""
    now = datetime.now(UTC)
    for start in range(0, count, _PROFILE_CHUNK):
        ids = range(start, min(count, start + _PROFILE_CHUNK))
        store.save_profiles(
            accounts=[Account(id=f"a{i // 4}", traits={"name": f"Account {i // 4}"}) for i in ids],
            contacts=[
                Contact(
                    id=f"c{i}",
                    account_id=f"a{i // 4}",
                    email=f"c{i}@example.test",
                    role="admin",
                    traits={"first_name": f"C{i}"},
                )
                for i in ids
            ],
            now=now,
        )
        store.enqueue(
            [
                NewTouch(
                    idempotency_key=f"load:welcome:c{i}",
                    program="load",
                    touch="welcome",
                    channel="email",
                    template="welcome",
                    contact_id=f"c{i}",
                    account_id=f"a{i // 4}",
                    available_at=now,
                )
                for i in ids
            ],
            now=now,
        )


def _unfinished(store: Store) -> int:
    with store.read() as conn:
        return int(
            conn.scalar(
                sa.select(sa.func.count())
                .select_from(outbox)
                .where(outbox.c.status.in_([OutboxStatus.PENDING, OutboxStatus.CLAIMED]))
            )
            or 0
        )


class _Workers:
    def __init__(self, url: str, provider: str, folder: Path, log: Path) -> None:
        self.argv = [sys.executable, "-m", "tests.load.worker", url, provider, str(folder)]
        self.log = log.open("ab")
        self.procs: list[subprocess.Popen[bytes]] = []
        self.crashed = 0

    def start(self) -> None:
        self.procs.append(
            subprocess.Popen(self.argv, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        )

    def kill_one(self, rng: random.Random) -> None:
        victim = rng.choice(self.procs)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        self.procs.remove(victim)
        self.start()

    def replace_exited(self) -> None:
        for proc in list(self.procs):
            if proc.poll() is not None:
                self.crashed += 1
                self.procs.remove(proc)
                self.start()

    def stop(self) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.log.close()


def run(url: str, restart: Callable[[], None], settings: Settings, folder: Path) -> Report:
    """One load and fault run against the store at ``url``; ``restart`` restarts its server."""
    rng = random.Random(settings.seed)
    (folder / "templates").mkdir(parents=True, exist_ok=True)
    (folder / "templates" / "welcome.mjml").write_text(TEMPLATE)
    store = Store(url)
    queue(store, settings.touches)
    with FakePostmark(token=TOKEN, seed=settings.seed) as provider:
        provider.fail_ratio = settings.fault_ratio
        workers = _Workers(url, provider.url, folder, folder / "workers.log")
        kills = restarts = 0
        started = time.monotonic()
        try:
            for _ in range(settings.workers):
                workers.start()
            next_kill = started + settings.kill_every
            while _unfinished(store):
                now = time.monotonic()
                if now - started > settings.timeout:
                    raise TimeoutError(
                        f"{_unfinished(store)} rows still unfinished after {settings.timeout} s; "
                        f"see {folder / 'workers.log'}"
                    )
                due = settings.restart_at[restarts : restarts + 1]
                if due and len(provider.accepted) >= due[0] * settings.touches:
                    restart()
                    restarts += 1
                if now >= next_kill:
                    workers.kill_one(rng)
                    kills += 1
                    next_kill = now + settings.kill_every * rng.uniform(0.5, 1.5)
                workers.replace_exited()
                time.sleep(0.2)
            seconds = time.monotonic() - started
        finally:
            workers.stop()
        keys = Counter(key_from_metadata(m.get("Metadata", {})) for m in provider.accepted)
        # A call failed as one counts one arrival (see FakePostmark.answer).
        faults = provider.arrived - len(provider.accepted)
        calls = provider.calls
    wanted = {f"load:welcome:c{i}" for i in range(settings.touches)}
    missing = sorted(wanted - set(keys))
    with store.read() as conn:
        lost_rows = tuple(
            f"{row.idempotency_key}: {row.status}, {row.attempts} attempt(s), {row.last_error}"
            for row in conn.execute(
                sa.select(outbox).where(outbox.c.idempotency_key.in_(missing[:50]))
            )
        )
    store.close()
    doubled = tuple(sorted(k for k, n in keys.items() if n > 1 and k is not None))
    return Report(
        touches=settings.touches,
        accepted=sum(keys.values()),
        lost=len(missing),
        lost_rows=lost_rows,
        duplicates=sum(keys[k] - 1 for k in doubled),
        duplicate_keys=doubled,
        kills=kills,
        restarts=restarts,
        calls=calls,
        faults=faults,
        seconds=seconds,
        crashed=workers.crashed,
    )


def touches_from_env(default: int) -> int:
    """``$ONETOMANY_LOAD_TOUCHES`` (the full form sets 50,000), else ``default``."""
    return int(os.environ.get("ONETOMANY_LOAD_TOUCHES", default))
