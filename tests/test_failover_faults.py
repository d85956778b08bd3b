"""Fault injection against Postmark's local fake, through a failover group of two accounts.

- Both providers answer 30% of calls with 429 or 503 and a Retry-After: every message is
  delivered exactly once, and no outbox key reaches the providers twice.
- The primary is down for a minute of the engine's clock: the group fails over to the
  secondary at once, the primary only sees the calls that open its circuit and its probes, and
  traffic returns to the primary when a probe closes the circuit.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import attrs
import pytest

from onetomany.delivery.circuit import CircuitSettings
from onetomany.delivery.retry import RetryPolicy
from onetomany.delivery.routes import Route
from onetomany.engine import Engine
from onetomany.model import OutboxStatus
from onetomany.plugins.manager import Plugins
from onetomany.plugins.settings import PluginSettings
from onetomany.program import Touch
from onetomany.rules.triggers import EventTrigger
from onetomany.store import Store

from .conftest import make_program
from .test_failover import enqueue

onetomany_postmark = pytest.importorskip("onetomany_postmark")
from onetomany_postmark.testing import FakePostmark  # noqa: E402
from onetomany_postmark.wire import key_from_metadata  # noqa: E402

TOKEN = "pm-token"


@pytest.fixture
def fakes():
    with FakePostmark(token=TOKEN, seed=1) as first, FakePostmark(token=TOKEN, seed=2) as second:
        first.retry_after = second.retry_after = "2"
        yield first, second


def engine_for(tmp_path, clock, fakes, circuit: CircuitSettings) -> Engine:
    def account(name: str, fake: FakePostmark) -> PluginSettings:
        options = {"server_token": TOKEN, "base_url": fake.url, "timeout": 2.0}
        return PluginSettings(name=name, plugin="postmark", options=options, base_dir=tmp_path)

    touch = Touch(
        name="welcome", trigger=EventTrigger(event="signed_up"), channel="email", template="welcome"
    )
    program = make_program(
        tmp_path,
        touch,
        primary=account("primary", fakes[0]),
        secondary=account("secondary", fakes[1]),
    )
    route = Route(name="email", providers=("primary", "secondary"), circuit=circuit)
    program = attrs.evolve(program, routes={"email": route})
    return Engine(
        program,
        store=Store(str(tmp_path / "store.db")),
        clock=clock,
        plugins=Plugins(),
        retry=RetryPolicy(max_attempts=30, initial=1, maximum=10, jitter=0),
        batch_size=25,
    )


def keys_at(*fakes: FakePostmark) -> Counter[str]:
    return Counter(str(key_from_metadata(m.get("Metadata", {}))) for f in fakes for m in f.accepted)


def test_thirty_percent_faults_deliver_everything_exactly_once(tmp_path, frozen_clock, fakes):
    for fake in fakes:
        fake.fail_ratio = 0.3
    engine = engine_for(tmp_path, frozen_clock, fakes, CircuitSettings(failures=5, cooldown=5))
    keys = enqueue(engine, frozen_clock, 120)

    for _ in range(60):
        report = engine.dispatch()
        if not engine.store.outbox_rows(status=OutboxStatus.PENDING) and report.claimed == 0:
            break
        frozen_clock.advance(seconds=3)
    engine.close()

    delivered = keys_at(*fakes)
    assert set(delivered) == set(keys)
    assert max(delivered.values()) == 1  # no key reached a provider twice
    assert all(r.status == OutboxStatus.SENT for r in engine.store.outbox_rows())
    attempts = engine.store.deliveries()
    assert any(d.status == "retrying" for d in attempts)  # the faults were real
    sent_by = Counter(d.provider for d in attempts if d.status == "sent")
    assert sent_by["primary"] > 0 and sent_by["secondary"] > 0
    assert sum(sent_by.values()) == 120


def test_a_provider_down_for_a_minute_fails_over_and_comes_back(tmp_path, frozen_clock, fakes):
    primary, secondary = fakes
    primary.fail_ratio = 1.0  # down: every call answered 503 or 429
    engine = engine_for(
        tmp_path, frozen_clock, fakes, CircuitSettings(failures=3, window=60, cooldown=20)
    )
    start = frozen_clock.now()
    calls_while_down = 0
    for step in range(13):  # a wave of 4 messages every 10 s, for two minutes
        if frozen_clock.now() - start >= timedelta(seconds=60) and primary.fail_ratio:
            calls_while_down = primary.calls
            primary.fail_ratio = 0.0  # back up
        enqueue(engine, frozen_clock, 4, start=step * 4)
        report = engine.dispatch()
        assert report.sent == 4 and report.retrying == 0, report
        frozen_clock.advance(seconds=10)
    engine.close()

    by_time = [
        ((d.at - start).total_seconds(), d.provider)
        for d in engine.store.deliveries()
        if d.status == "sent"
    ]
    assert {p for t, p in by_time if t < 60} == {"secondary"}
    assert {p for t, p in by_time if t >= 60} == {"primary"}
    # While down, the primary saw the call that opened its circuit and one probe per
    # cool-down (at 20 s and 40 s), not one call per message.
    assert calls_while_down == 3
    delivered = keys_at(primary, secondary)
    assert len(delivered) == 52 and max(delivered.values()) == 1
