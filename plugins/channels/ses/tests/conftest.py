"""Fixtures for the SES channel tests: a local fake of SES v2's API, and channels for it.

The fake (``onetomany_ses.testing.FakeSes``) listens on 127.0.0.1 on a port the kernel picked;
the credentials are dummies and nothing leaves the machine.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from ses_support import ACCESS_KEY_ID, MakeChannel, MakeMessage, ses_options

from onetomany.delivery.channels import Runtime
from onetomany.model import ChannelKind, Message
from onetomany.model.clock import FrozenClock
from onetomany.plugins.settings import PluginSettings
from onetomany_ses import SesChannel
from onetomany_ses.testing import FakeSes


@pytest.fixture
def ses() -> Iterator[FakeSes]:
    with FakeSes(access_key_id=ACCESS_KEY_ID) as fake:
        yield fake


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def make_channel(ses: FakeSes, clock: FrozenClock) -> Iterator[MakeChannel]:
    """An SesChannel for the fake with ``options`` over the test defaults."""
    channels: list[SesChannel] = []

    def make(**options: Any) -> SesChannel:
        settings = PluginSettings(
            name="email",
            plugin="ses",
            options=ses_options(ses.url, **options),
            origin="program.toml",
        )
        channel = SesChannel(settings, runtime=Runtime(clock=clock))
        channels.append(channel)
        return channel

    yield make
    for channel in channels:
        channel.close()


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
