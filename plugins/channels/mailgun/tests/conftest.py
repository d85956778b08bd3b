"""Fixtures: a local fake of Mailgun's messages API (``onetomany_mailgun.testing``), and
channels and messages pointed at it. Nothing leaves the machine."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from onetomany.delivery.channels import Runtime
from onetomany.model import ChannelKind, Message
from onetomany.model.clock import FrozenClock
from onetomany.testing import channels_of
from onetomany_mailgun import MailgunChannel
from onetomany_mailgun.testing import FakeMailgun

API_KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
DOMAIN = "mg.acme.test"


@pytest.fixture
def mailgun() -> Iterator[FakeMailgun]:
    with FakeMailgun(api_key=API_KEY, domain=DOMAIN) as fake:
        yield fake


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


MakeChannel = Callable[..., MailgunChannel]


@pytest.fixture
def make_channel(mailgun: FakeMailgun, clock: FrozenClock) -> Iterator[MakeChannel]:
    """A MailgunChannel for the fake with ``options`` over the test defaults."""
    defaults: dict[str, Any] = {
        "api_key": API_KEY,
        "domain": DOMAIN,
        "base_url": mailgun.url,
        "sender": "Success Team <success@mg.acme.test>",
        "timeout": 0.5,
    }
    runtime = Runtime(clock=clock)
    with channels_of(
        MailgunChannel, name="email", plugin="mailgun", defaults=defaults, runtime=runtime
    ) as make:
        yield make


MakeMessage = Callable[..., Message]


@pytest.fixture
def make_message() -> MakeMessage:
    keys = itertools.count(1)

    def make(**fields: Any) -> Message:
        n = next(keys)
        defaults: dict[str, Any] = {
            "idempotency_key": f"acme:welcome:contact-{n}:1",
            "channel": "email",
            "kind": ChannelKind.EMAIL,
            "touch": "welcome",
            "to": f"Ana Souza <ana{n}@customer.example>",
            "subject": "Welcome aboard",
            "text": "Hi Ana,\nwelcome aboard.\n",
            "html": "<p>Hi Ana,</p><p>welcome aboard.</p>",
            "headers": {"List-Unsubscribe": "<https://acme.test/u/1>"},
        }
        return Message(**(defaults | fields))

    return make
