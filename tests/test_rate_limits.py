"""Per-channel rate limits: the ``rate`` setting, the token bucket, and what the dispatcher
does with a row that gets no token (it waits a little, or is deferred; never dropped)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onetomany.delivery.ratelimit import LocalBuckets, RateLimiter
from onetomany.delivery.retry import RetryPolicy
from onetomany.errors import ConfigError, DeliveryDeferred
from onetomany.model import ChannelKind, Message, OutboxStatus
from onetomany.model.clock import FrozenClock
from onetomany.rules.rate_limits import Rate, parse_rate, settle
from onetomany.testing import RecordingChannel

from .test_failover import enqueue, group_engine


@pytest.mark.parametrize(
    ("text", "per_second", "burst", "unit"),
    [
        ("1/s", 1.0, 1.0, "messages"),
        ("80 messages/s", 80.0, 80.0, "messages"),
        ("1 segment/s", 1.0, 1.0, "segments"),
        ("600/min", 10.0, 600.0, "messages"),
        ("0.5/s", 0.5, 1.0, "messages"),
        ("3600 segments / h", 1.0, 3600.0, "segments"),
    ],
)
def test_a_rate_reads_count_unit_and_period(text, per_second, burst, unit):
    rate = parse_rate(text, key="channels.sms.rate")
    assert (rate.per_second, rate.burst, rate.unit) == (per_second, burst, unit)
    assert str(rate) == text


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("fast", "expected a rate such as"),
        (5, "expected a rate such as"),
        ("0/s", "must be positive"),
        ("1 email/s", "unknown unit 'email'"),
        ("1/day", "unknown period 'day'"),
    ],
)
def test_a_bad_rate_names_its_key(value, why):
    with pytest.raises(ConfigError) as caught:
        parse_rate(value, key="channels.sms.rate", file="program.toml")
    assert caught.value.key == "channels.sms.rate" and caught.value.file == "program.toml"
    assert why in caught.value.reason


@settings(max_examples=200, deadline=None)
@given(
    count=st.integers(min_value=1, max_value=20),
    gaps=st.lists(st.floats(min_value=0, max_value=2), min_size=1, max_size=60),
    costs=st.lists(st.integers(min_value=1, max_value=3), min_size=60, max_size=60),
)
def test_a_bucket_never_spends_more_than_its_burst_plus_its_refill(count, gaps, costs):
    """Over any span of T seconds, the tokens granted are at most the bucket plus T * rate,
    plus the excess of the one message that may leave the bucket in debt."""
    rate = Rate(count=count, period=1.0)
    start = datetime(2026, 1, 5, tzinfo=UTC)
    now, tokens, updated = start, None, None
    granted: list[tuple[float, int]] = []
    for gap, cost in zip(gaps, costs, strict=False):
        now += timedelta(seconds=gap)
        tokens, wait = settle(tokens, updated, now, rate, cost)
        updated = now
        if wait == 0:
            granted.append(((now - start).total_seconds(), cost))
        else:
            assert wait > 0 and tokens < min(cost, rate.burst)
    for i in range(len(granted)):
        for j in range(i, len(granted)):
            spent = sum(cost for _, cost in granted[i : j + 1])
            span = granted[j][0] - granted[i][0]
            assert spent <= rate.burst + span * rate.per_second + 2 + 1e-9


def test_a_message_that_costs_more_than_the_bucket_waits_for_a_full_one():
    rate = parse_rate("1 segment/s", key="k")
    now = datetime(2026, 1, 5, tzinfo=UTC)
    assert settle(None, None, now, rate, 3) == (-2.0, 0.0)  # a full bucket lets it through
    left, wait = settle(-2.0, now, now + timedelta(seconds=1), rate, 1)
    assert (left, wait) == (-1.0, 2.0)


def test_the_limiter_counts_sms_segments_on_a_segment_rate():
    clock = FrozenClock()
    limiter = RateLimiter(
        "acme:sms", parse_rate("1 segment/s", key="k"), buckets=LocalBuckets(), clock=clock
    )
    long_text = "x" * 400  # three GSM-7 segments
    sms = Message(
        idempotency_key="k1", channel="sms", kind=ChannelKind.SMS, to="+1", text=long_text
    )
    email = Message(idempotency_key="k2", channel="sms", kind=ChannelKind.EMAIL, to="a@b.c")
    assert limiter.cost(sms) == 3.0 and limiter.cost(email) == 1.0
    started = clock.now()
    limiter.acquire(sms, limiter.deadline())
    limiter.acquire(sms, limiter.deadline())  # waits for the bucket to be full again
    assert clock.now() - started == timedelta(seconds=3)
    with pytest.raises(DeliveryDeferred) as caught:
        limiter.acquire(sms, clock.now() + timedelta(seconds=1))
    assert caught.value.until == clock.now() + timedelta(seconds=3)


def test_a_rate_limited_group_waits_on_the_engine_clock(tmp_path, frozen_clock, store):
    primary, secondary = RecordingChannel(), RecordingChannel()
    engine = group_engine(
        tmp_path, frozen_clock, store, primary, secondary, rate=parse_rate("1/s", key="k")
    )
    enqueue(engine, frozen_clock, 5)
    started = frozen_clock.now()

    report = engine.dispatch()

    assert report.sent == 5 and report.deferred == {}
    assert frozen_clock.now() - started == timedelta(seconds=4)  # one token a second


def test_a_row_without_a_token_is_deferred_without_an_attempt(tmp_path, frozen_clock, store):
    primary, secondary = RecordingChannel(), RecordingChannel()
    engine = group_engine(
        tmp_path, frozen_clock, store, primary, secondary, rate=parse_rate("2/min", key="k")
    )
    engine.dispatcher.retry = RetryPolicy(max_attempts=1)
    enqueue(engine, frozen_clock, 5)

    report = engine.dispatch()

    assert report.sent == 2 and report.deferred == {"rate limit": 3} and report.dead == 0
    waiting = engine.store.outbox_rows(status=OutboxStatus.PENDING)
    assert len(waiting) == 3
    assert all(row.attempts == 0 for row in waiting)  # one attempt allowed, none spent
    assert all(row.available_at == frozen_clock.now() + timedelta(seconds=30) for row in waiting)
    assert "rate limit 2/min of 'acme:email'" in (waiting[0].last_error or "")

    sent = 2
    for _ in range(10):
        frozen_clock.advance(seconds=30)
        sent += engine.dispatch().sent
    assert sent == 5 and len(primary.keys()) == 5
    assert len(engine.store.outbox_rows(status=OutboxStatus.SENT)) == 5


def test_a_plugin_channel_may_have_a_rate_of_its_own(tmp_path, frozen_clock, store):
    import attrs

    from onetomany.delivery.routes import Route
    from onetomany.engine import Engine
    from onetomany.testing import make_plugins

    from .conftest import PEOPLE, make_program

    program = make_program(tmp_path)
    route = Route(name="email", rate=parse_rate("1/min", key="k"))
    program = attrs.evolve(program, routes={"email": route})
    channel = RecordingChannel()
    engine = Engine(
        program,
        store=store,
        clock=frozen_clock,
        plugins=make_plugins(),
        channels={"email": channel},
    )
    engine.identify(*PEOPLE)
    engine.track("signed_up", account_id="a1")
    engine.track("signed_up", account_id="a2")
    assert engine.tick() == 2

    report = engine.dispatch()

    assert engine.channels["email"] is channel  # what the program sees is the plugin's own
    assert report.sent == 1 and report.deferred == {"rate limit": 1}
    assert engine.store.deliveries()[0].provider == "email"
