"""A rate limit on PostgreSQL is one limit for every worker: two workers taking tokens from
one bucket at once never spend more than the bucket allows (tests start their own cluster)."""

from __future__ import annotations

import threading
import uuid
from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onetomany.delivery.ratelimit import RateLimiter, StoreBuckets
from onetomany.model import ChannelKind, Message
from onetomany.model.clock import SystemClock
from onetomany.rules.rate_limits import parse_rate
from onetomany.store import Store
from onetomany.store.queries.rate_buckets import level

MESSAGE = Message(idempotency_key="k", channel="sms", kind=ChannelKind.SMS, to="+15005550006")


class GrantClock(SystemClock):
    """The wall clock, remembering per thread the last time it told: the time a grant was
    made, since the bucket reads the clock once it holds the bucket's lock."""

    def __init__(self) -> None:
        self.local = threading.local()

    def now(self) -> datetime:
        self.local.last = super().now()
        return self.local.last


def run_workers(
    pg_url: str, rate_text: str, per_worker: int, workers: int = 2, bucket: str = "acme:sms"
) -> list[float]:
    """Each worker (its own store, so its own connections) takes ``per_worker`` tokens;
    returns the grant times in seconds, sorted."""
    rate = parse_rate(rate_text, key="channels.sms.rate")
    stores = [Store(pg_url) for _ in range(workers)]
    clock = GrantClock()
    grants: list[datetime] = []
    lock = threading.Lock()
    failures: list[BaseException] = []

    def work(store: Store) -> None:
        limiter = RateLimiter(bucket, rate, buckets=StoreBuckets(store), clock=clock)
        try:
            for _ in range(per_worker):
                limiter.acquire(MESSAGE, limiter.deadline())
                with lock:
                    grants.append(clock.local.last)
        except BaseException as exc:  # reported below, not lost in the thread
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for store in stores:
        store.close()
    assert not failures, failures
    start = min(grants)
    return sorted((g - start).total_seconds() for g in grants)


def assert_within_limit(times: list[float], burst: float, per_second: float) -> None:
    for i in range(len(times)):
        for j in range(i, len(times)):
            granted = j - i + 1
            allowed = burst + (times[j] - times[i]) * per_second
            assert granted <= allowed + 1e-6, (i, j, times[i], times[j])


def test_two_workers_share_one_bucket_on_postgresql(pg_url):
    times = run_workers(pg_url, "20/s", per_worker=25)

    assert len(times) == 50
    assert_within_limit(times, burst=20, per_second=20)
    # The limit bound: 30 tokens beyond the first 20 take at least a second and a half.
    assert times[-1] >= 30 / 20 - 1e-3
    store = Store(pg_url)
    try:
        assert level(store, "acme:sms") is not None
    finally:
        store.close()


@pytest.mark.slow
@settings(
    max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(count=st.integers(min_value=5, max_value=40), workers=st.integers(min_value=2, max_value=3))
def test_the_limit_holds_for_any_rate_and_number_of_workers(pg_url, count, workers):
    bucket = f"acme:sms:{uuid.uuid4().hex}"  # a fresh, full bucket per example
    times = run_workers(
        pg_url, f"{count}/s", per_worker=count // workers + 3, workers=workers, bucket=bucket
    )
    assert_within_limit(times, burst=count, per_second=count)


def test_two_dispatching_engines_share_the_limit_and_send_each_row_once(pg_url, tmp_path):
    """Two workers (engines with their own stores) dispatch one rate-limited channel at once,
    taking turns at the shared bucket: every row is sent once, none lost, one attempt each."""
    import attrs

    from onetomany.delivery.routes import Route
    from onetomany.engine import Engine
    from onetomany.model import OutboxStatus
    from onetomany.testing import RecordingChannel, make_plugins

    from .conftest import make_program
    from .test_failover import enqueue
    from .test_parallel_delivery import NoonClock

    program = attrs.evolve(
        make_program(tmp_path),
        routes={"email": Route(name="email", rate=parse_rate("20/s", key="k"))},
    )
    channels = [RecordingChannel(), RecordingChannel()]
    engines = [
        Engine(
            program,
            store=Store(pg_url),
            clock=NoonClock(),  # real time, inside the send window at any hour
            plugins=make_plugins(),
            channels={"email": channel},
            batch_size=10,
        )
        for channel in channels
    ]
    keys = enqueue(engines[0], NoonClock(), 60)

    def drain(engine: Engine) -> None:
        for _ in range(40):
            if not engine.dispatch().claimed and not engine.store.outbox_rows(
                status=OutboxStatus.PENDING
            ):
                return

    threads = [threading.Thread(target=drain, args=(e,)) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    try:
        sent = [m.idempotency_key for channel in channels for m in channel.sent]
        assert sorted(sent) == sorted(keys)  # each row once, none lost
        assert all(channel.sent for channel in channels)  # both workers sent
        rows = engines[0].store.outbox_rows()
        assert {r.status for r in rows} == {OutboxStatus.SENT}
        assert {r.attempts for r in rows} == {1}
    finally:
        for engine in engines:
            engine.close()
