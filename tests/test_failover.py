"""Failover groups: a channel name over ordered providers, each behind a circuit breaker.

A transient failure or an open circuit sends the row through the next provider; a permanent
error and an unknown outcome do not; the provider used is recorded on the delivery and counted
in the dispatch report. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from onetomany.delivery.circuit import Circuit, CircuitSettings, State
from onetomany.delivery.retry import RetryPolicy
from onetomany.delivery.routes import Route
from onetomany.engine import Engine
from onetomany.errors import (
    ConfigErrors,
    PermanentDeliveryError,
    TransientDeliveryError,
    UnknownOutcomeError,
)
from onetomany.model import ChannelKind, OutboxStatus
from onetomany.model.clock import FrozenClock
from onetomany.plugins.settings import PluginSettings
from onetomany.program import Touch
from onetomany.rules.triggers import EventTrigger
from onetomany.store import NewTouch
from onetomany.testing import RecordingChannel, make_plugins

from .conftest import make_program

DOWN = TransientDeliveryError("api.test: 503 Service Unavailable", retry_after=20.0)
GONE = PermanentDeliveryError("api.test: 406 inactive recipient")
LOST = UnknownOutcomeError("api.test: ReadTimeout: no answer")
CIRCUIT = CircuitSettings(failures=3, window=60, cooldown=30)


def group_engine(tmp_path, clock, store, primary, secondary, *, circuit=CIRCUIT, rate=None):
    touch = Touch(
        name="welcome", trigger=EventTrigger(event="signed_up"), channel="email", template="welcome"
    )
    program = make_program(
        tmp_path,
        touch,
        primary=PluginSettings(name="primary", plugin="recording"),
        secondary=PluginSettings(name="secondary", plugin="recording"),
    )
    route = Route(name="email", providers=("primary", "secondary"), circuit=circuit, rate=rate)
    program = type(program)(**{**_fields(program), "routes": {"email": route}})
    return Engine(
        program,
        store=store,
        clock=clock,
        plugins=make_plugins(),
        channels={"primary": primary, "secondary": secondary},
        retry=RetryPolicy(max_attempts=5, initial=10, maximum=60, jitter=0),
    )


def _fields(program):
    import attrs

    return {f.name: getattr(program, f.name) for f in attrs.fields(type(program)) if f.init}


def enqueue(engine: Engine, clock, count: int, *, start: int = 0) -> list[str]:
    from onetomany import Account, Contact

    ids = [f"c{i}" for i in range(start, start + count)]
    engine.identify(
        Account(id="a1", name="Northwind"),
        *(Contact(id=c, account_id="a1", email=f"{c}@northwind.test", role="admin") for c in ids),
    )
    engine.store.enqueue(
        [
            NewTouch(
                idempotency_key=f"k-{c}",
                program="acme",
                touch="welcome",
                channel="email",
                template="welcome",
                contact_id=c,
                account_id="a1",
                available_at=clock.now(),
            )
            for c in ids
        ],
        now=clock.now(),
    )
    return [f"k-{c}" for c in ids]


@pytest.fixture
def pair():
    return RecordingChannel(), RecordingChannel()


def test_a_transient_failure_fails_over_and_the_provider_is_recorded(
    tmp_path, frozen_clock, store, pair
):
    primary, secondary = pair
    primary.failures = [DOWN, None]
    engine = group_engine(tmp_path, frozen_clock, store, primary, secondary)
    enqueue(engine, frozen_clock, 2)

    report = engine.dispatch()

    assert report.sent == 2 and report.retrying == 0
    assert report.by_provider == {"secondary": 1, "primary": 1}
    assert secondary.keys() == ["k-c0"] and primary.keys() == ["k-c1"]
    providers = {d.idempotency_key: d.provider for d in engine.store.deliveries()}
    assert providers == {"k-c0": "secondary", "k-c1": "primary"}
    assert [d.channel for d in engine.store.deliveries()] == ["email", "email"]


def test_a_permanent_error_does_not_fail_over(tmp_path, frozen_clock, store, pair):
    primary, secondary = pair
    primary.failures = [GONE]
    engine = group_engine(tmp_path, frozen_clock, store, primary, secondary)
    enqueue(engine, frozen_clock, 1)

    report = engine.dispatch()

    assert report.dead == 1 and secondary.attempts == []
    [delivery] = engine.store.deliveries()
    assert delivery.status == "dead" and delivery.provider == "primary"
    assert "406" in (delivery.error or "")


def test_an_unknown_outcome_does_not_fail_over(tmp_path, frozen_clock, store, pair):
    primary, secondary = pair
    primary.failures = [LOST]
    engine = group_engine(tmp_path, frozen_clock, store, primary, secondary)
    enqueue(engine, frozen_clock, 1)

    report = engine.dispatch()

    # The first provider may have delivered it: a copy through another would be a duplicate.
    assert report.unknown == 1 and secondary.attempts == []
    [row] = engine.store.outbox_rows()
    assert row.status == OutboxStatus.UNKNOWN
    assert engine.store.deliveries()[0].provider == "primary"


def test_when_every_provider_fails_the_row_is_retried_naming_each(
    tmp_path, frozen_clock, store, pair
):
    primary, secondary = pair
    primary.failures = [DOWN]
    secondary.failures = [TransientDeliveryError("smtp.test: 451 try later", retry_after=5.0)]
    engine = group_engine(tmp_path, frozen_clock, store, primary, secondary)
    enqueue(engine, frozen_clock, 1)

    report = engine.dispatch()

    assert report.retrying == 1 and report.sent == 0
    [delivery] = engine.store.deliveries()
    assert delivery.status == "retrying" and delivery.provider == "secondary"
    assert "primary: api.test: 503" in (delivery.error or "")
    assert "secondary: smtp.test: 451" in (delivery.error or "")
    [row] = engine.store.outbox_rows()
    assert row.attempts == 1 and row.status == OutboxStatus.PENDING

    frozen_clock.advance(seconds=30)
    assert engine.dispatch().by_provider == {"primary": 1}


def test_an_open_circuit_skips_the_primary_until_its_probe_succeeds(
    tmp_path, frozen_clock, store, pair
):
    primary, secondary = pair
    primary.failures = [DOWN] * 4
    engine = group_engine(tmp_path, frozen_clock, store, primary, secondary)
    enqueue(engine, frozen_clock, 6)

    first = engine.dispatch()

    # Three failures opened the circuit: the last three rows never tried the primary.
    assert first.by_provider == {"secondary": 6}
    assert len(primary.attempts) == 3

    frozen_clock.advance(seconds=31)  # cool-down over: one probe, which fails (still down)
    enqueue(engine, frozen_clock, 2, start=6)
    second = engine.dispatch()
    assert second.by_provider == {"secondary": 2} and len(primary.attempts) == 4

    frozen_clock.advance(seconds=31)  # the provider is back: the probe closes the circuit
    enqueue(engine, frozen_clock, 3, start=8)
    third = engine.dispatch()
    assert third.by_provider == {"primary": 3}
    assert len(primary.attempts) == 7


def test_a_group_whose_providers_serve_different_kinds_is_refused(tmp_path, frozen_clock, store):
    with pytest.raises(ConfigErrors) as caught:
        group_engine(
            tmp_path,
            frozen_clock,
            store,
            RecordingChannel(),
            RecordingChannel(kind=ChannelKind.SMS),
        )
    [error] = caught.value.errors
    assert error.key == "channels.email.providers"
    assert "primary (email), secondary (sms)" in error.reason


# -- the circuit on its own ------------------------------------------------------------------


def test_the_circuit_opens_on_failures_within_its_window_only():
    clock = FrozenClock()
    circuit = Circuit(CircuitSettings(failures=3, window=60, cooldown=30), clock)
    for _ in range(2):
        circuit.failed()
        clock.advance(seconds=40)
    circuit.failed()  # the first failure is 80 s old: two in the window
    assert circuit.state is State.CLOSED and circuit.allows()
    circuit.failed()
    assert circuit.state is State.OPEN and not circuit.allows()


def test_a_half_open_circuit_lets_one_probe_through():
    clock = FrozenClock()
    circuit = Circuit(CircuitSettings(failures=1, window=60, cooldown=30), clock)
    circuit.failed()
    clock.advance(seconds=29)
    assert not circuit.allows()
    clock.advance(seconds=1)
    assert circuit.allows()  # the probe
    assert circuit.state is State.HALF_OPEN and not circuit.allows()
    circuit.failed()
    assert circuit.state is State.OPEN and not circuit.allows()
    clock.advance(timedelta(seconds=30))
    assert circuit.allows()
    circuit.succeeded()
    assert circuit.state is State.CLOSED and circuit.allows() and circuit.allows()


def test_explain_and_the_timeline_name_the_provider(tmp_path, frozen_clock, store, pair):
    from onetomany.cli.explain import explain, render

    primary, secondary = pair
    primary.failures = [DOWN]
    engine = group_engine(tmp_path, frozen_clock, store, primary, secondary)
    enqueue(engine, frozen_clock, 1)
    engine.dispatch()

    explanation = explain(engine, "c0", "welcome")
    [row] = explanation.recipient("c0").rows
    assert row.provider == "secondary"
    assert any(", via secondary" in line for line in render(explanation))
    assert explanation.as_dict()["recipients"][0]["rows"][0]["provider"] == "secondary"

    deliveries = [e for e in engine.timeline("c0").entries if e.kind == "delivery"]
    assert [e.text for e in deliveries] == ["sent welcome by email via secondary"]
    assert deliveries[0].details["provider"] == "secondary"


def test_when_every_circuit_is_open_the_row_waits_for_the_first_probe(
    tmp_path, frozen_clock, store, pair
):
    primary, secondary = pair
    primary.failures = [DOWN]
    secondary.failures = [DOWN]
    circuit = CircuitSettings(failures=1, window=60, cooldown=300)
    engine = group_engine(tmp_path, frozen_clock, store, primary, secondary, circuit=circuit)
    enqueue(engine, frozen_clock, 1)
    assert engine.dispatch().retrying == 1  # both failed: both circuits open

    enqueue(engine, frozen_clock, 1, start=1)
    report = engine.dispatch()

    assert report.retrying == 1 and len(primary.attempts) == len(secondary.attempts) == 1
    latest = engine.store.deliveries()[-1]
    assert "primary: circuit open until" in (latest.error or "")
    assert "secondary: circuit open until" in (latest.error or "")
    [row] = [r for r in engine.store.outbox_rows() if r.idempotency_key == "k-c1"]
    # Retried no sooner than the first circuit lets a probe through.
    assert row.available_at >= frozen_clock.now() + timedelta(seconds=300)
