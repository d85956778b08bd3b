"""Fixtures: a local receiver that verifies each signature, and channels allowed to reach it."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from onetomany.delivery.channels import Runtime
from onetomany.model import ChannelKind, Message
from onetomany.model.clock import FrozenClock
from onetomany.testing import channels_of
from onetomany_webhook import WebhookChannel
from onetomany_webhook.testing import FakeReceiver

# The Standard Webhooks specification's own example secret.
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def receiver(clock: FrozenClock) -> Iterator[FakeReceiver]:
    with FakeReceiver(secret=SECRET) as fake:
        fake.now = clock.now().timestamp()
        yield fake
    assert not fake.refused, f"signatures the receiver refused: {fake.refused}"


MakeChannel = Callable[..., WebhookChannel]


@pytest.fixture
def make_channel(receiver: FakeReceiver, clock: FrozenClock) -> Iterator[MakeChannel]:
    defaults: dict[str, Any] = {
        "url": receiver.url,
        "secret": SECRET,
        "allow": ["127.0.0.1"],
        "timeout": 0.5,
    }
    runtime = Runtime(clock=clock)
    with channels_of(
        WebhookChannel, name="alerts", plugin="webhook", defaults=defaults, runtime=runtime
    ) as make:
        yield make


MakeMessage = Callable[..., Message]


@pytest.fixture
def make_message() -> MakeMessage:
    keys = itertools.count(1)

    def make(**fields: Any) -> Message:
        n = next(keys)
        defaults: dict[str, Any] = {
            "idempotency_key": f"acme:renewal_risk:acct-{n}:1",
            "channel": "alerts",
            "kind": ChannelKind.CSM,
            "touch": "renewal_risk",
            "to": "maria@acme.test",
            "subject": "Renewal at risk",
            "text": "Usage fell 40% this month.",
            "data": {"task": {"reason": "usage drop"}},
        }
        return Message(**(defaults | fields))

    return make
