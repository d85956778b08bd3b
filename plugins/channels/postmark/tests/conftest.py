"""Fixtures for the Postmark channel tests: a local fake of Postmark's API, and channels for it.

The fake (``onetomany_postmark.testing.FakePostmark``) listens on 127.0.0.1 on a port the
kernel picked; nothing leaves the machine.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from onetomany.delivery.channels import Runtime
from onetomany.model import ChannelKind, Message
from onetomany.model.clock import FrozenClock
from onetomany.testing import channels_of
from onetomany_postmark import PostmarkChannel
from onetomany_postmark.testing import FakePostmark

TOKEN = "pm-server-token-0d7c1e"


@pytest.fixture
def postmark() -> Iterator[FakePostmark]:
    with FakePostmark(token=TOKEN) as fake:
        yield fake


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


MakeChannel = Callable[..., PostmarkChannel]


@pytest.fixture
def make_channel(postmark: FakePostmark, clock: FrozenClock) -> Iterator[MakeChannel]:
    """A PostmarkChannel for the fake with ``options`` over the test defaults."""
    defaults: dict[str, Any] = {
        "server_token": TOKEN,
        "base_url": postmark.url,
        "sender": "Success Team <success@example.com>",
        "timeout": 0.5,
    }
    runtime = Runtime(clock=clock)
    with channels_of(
        PostmarkChannel, name="email", plugin="postmark", defaults=defaults, runtime=runtime
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
