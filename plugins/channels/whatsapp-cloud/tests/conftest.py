"""Fixtures: a local fake of Meta's WhatsApp Cloud API, and channels and messages for it."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from onetomany.delivery.channels import Runtime
from onetomany.model import ChannelKind, Message
from onetomany.model.clock import FrozenClock
from onetomany.plugins.settings import PluginSettings
from onetomany_whatsapp_cloud import WhatsAppCloudChannel
from onetomany_whatsapp_cloud.testing import PHONE_NUMBER_ID, FakeWhatsAppCloud

TOKEN = "EAAGm0PX4ZCpsBA-cloud-token-77"


@pytest.fixture
def cloud() -> Iterator[FakeWhatsAppCloud]:
    with FakeWhatsAppCloud(token=TOKEN) as fake:
        fake.templates = {"day_recap": 2, "welcome": 0}
        yield fake


MakeChannel = Callable[..., WhatsAppCloudChannel]


@pytest.fixture
def make_channel(cloud: FakeWhatsAppCloud) -> Iterator[MakeChannel]:
    channels: list[WhatsAppCloudChannel] = []

    def make(**options: Any) -> WhatsAppCloudChannel:
        defaults: dict[str, Any] = {
            "phone_number_id": PHONE_NUMBER_ID,
            "access_token": TOKEN,
            "base_url": cloud.url,
            "timeout": 0.5,
        }
        settings = PluginSettings(
            name="whatsapp", plugin="whatsapp_cloud", options=defaults | options, origin="p.toml"
        )
        channel = WhatsAppCloudChannel(settings, runtime=Runtime(clock=FrozenClock()))
        channels.append(channel)
        return channel

    yield make
    for channel in channels:
        channel.close()


MakeMessage = Callable[..., Message]


@pytest.fixture
def make_message() -> MakeMessage:
    keys = itertools.count(1)

    def make(**fields: Any) -> Message:
        n = next(keys)
        defaults: dict[str, Any] = {
            "idempotency_key": f"acme:day_recap:ct-{n}:1",
            "channel": "whatsapp",
            "kind": ChannelKind.WHATSAPP,
            "touch": "day_recap",
            "to": f"+551191234{n % 10000:04d}",
            "data": {
                "whatsapp_template": "day_recap",
                "whatsapp_language": "pt_BR",
                "whatsapp_parameters": ["Ana", "3 relatórios"],
            },
        }
        return Message(**(defaults | fields))

    return make
