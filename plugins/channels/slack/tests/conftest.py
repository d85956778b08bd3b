"""Fixtures: a local Slack fake whose every chat.postMessage request is validated against
Slack's web API document (``openapi/``, trimmed), and channels and tasks pointed at it."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from openapi_core import OpenAPI

from onetomany import testing
from onetomany.delivery.channels import Runtime
from onetomany.model import ChannelKind, Message
from onetomany.model.clock import FrozenClock
from onetomany.plugins.settings import PluginSettings
from onetomany_slack import SlackChannel
from onetomany_slack.testing import FakeSlack

TOKEN = "xoxb-17-slack-bot-token-9c2e"
SPEC = Path(__file__).parent / "openapi" / "slack_web_openapi.chat_postMessage.json"
SERVER = "https://slack.com"


@pytest.fixture(scope="session")
def openapi() -> OpenAPI:
    return OpenAPI.from_file_path(str(SPEC))


def openapi_check(spec: OpenAPI) -> Callable[[str, str, Mapping[str, str], bytes], None]:
    """A FakeSlack check that refuses any request Slack's document does not allow."""
    return testing.openapi_check(spec, SERVER)


@pytest.fixture
def slack(openapi: OpenAPI) -> Iterator[FakeSlack]:
    with FakeSlack(token=TOKEN, check=openapi_check(openapi)) as fake:
        yield fake
    assert not fake.refused, f"requests Slack's OpenAPI document refuses: {fake.refused}"


MakeChannel = Callable[..., SlackChannel]


@pytest.fixture
def make_channel(slack: FakeSlack) -> Iterator[MakeChannel]:
    channels: list[SlackChannel] = []

    def make(**options: Any) -> SlackChannel:
        defaults: dict[str, Any] = {"token": TOKEN, "base_url": slack.api_url, "timeout": 0.5}
        if "webhook_url" in options:
            defaults.pop("token")
        settings = PluginSettings(
            name="csm", plugin="slack", options=defaults | options, origin="program.toml"
        )
        channel = SlackChannel(settings, runtime=Runtime(clock=FrozenClock()))
        channels.append(channel)
        return channel

    yield make
    for channel in channels:
        channel.close()


MakeMessage = Callable[..., Message]

LADDER = [
    {
        "key": "acme:welcome:ct-1",
        "touch": "welcome",
        "channel": "email",
        "sent_at": "2026-03-01T09:00:00+00:00",
    },
    {
        "key": "acme:welcome_resend:ct-1",
        "touch": "welcome_resend",
        "channel": "email",
        "sent_at": "2026-03-04T09:00:00+00:00",
    },
]


@pytest.fixture
def make_message() -> MakeMessage:
    keys = itertools.count(1)

    def make(**fields: Any) -> Message:
        n = next(keys)
        task = {
            "owner": "U024BE7LH",
            "account": {"id": "acct-9", "name": "Northwind <Traders>"},
            "contact": {
                "id": "ct-1",
                "name": "Ana Souza",
                "email": "ana@northwind.test",
                "phone": None,
                "role": "admin",
            },
            "reason": "'welcome' sent 2026-03-04 09:00 UTC was not opened within 3 days",
            "ladder": LADDER,
            "queued_at": "2026-03-07T09:00:00+00:00",
        }
        defaults: dict[str, Any] = {
            "idempotency_key": f"acme:welcome_call:ct-{n}:1",
            "channel": "csm",
            "kind": ChannelKind.CSM,
            "touch": "welcome_call",
            "to": "U024BE7LH",
            "subject": "Call Northwind's admin",
            "text": "Ana has not opened the welcome emails. Offer a setup call.",
            "data": {"task": task},
            "created_at": datetime(2026, 3, 7, 9, tzinfo=UTC),
        }
        return Message(**(defaults | fields))

    return make
