"""Fixtures: the local fake HubSpot, sources and task channels pointed at it."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from onetomany.delivery.channels import Runtime
from onetomany.model import ChannelKind, Message
from onetomany.model.clock import FrozenClock
from onetomany.plugins.settings import PluginSettings
from onetomany_hubspot import HubSpotSource
from onetomany_hubspot.tasks import HubSpotTaskChannel
from onetomany_hubspot.testing import TOKEN, FakeHubSpot

MakeSource = Callable[..., HubSpotSource]
MakeChannel = Callable[..., HubSpotTaskChannel]
MakeMessage = Callable[..., Message]


@pytest.fixture
def hubspot() -> Iterator[FakeHubSpot]:
    with FakeHubSpot() as fake:
        yield fake
    assert fake.refused == [], "requests HubSpot's documented API refuses"


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def make_source(hubspot: FakeHubSpot, tmp_path: Path, waits: list[float]) -> MakeSource:
    """A source named ``crm`` on the fake, its waits recorded instead of slept."""

    def make(**options: Any) -> HubSpotSource:
        options.setdefault("token", TOKEN)
        options.setdefault("base_url", hubspot.url)
        source = HubSpotSource(
            PluginSettings(name="crm", plugin="hubspot", options=options, base_dir=tmp_path)
        )
        source.sleep = waits.append
        return source

    return make


@pytest.fixture
def make_channel(hubspot: FakeHubSpot) -> Iterator[MakeChannel]:
    channels: list[HubSpotTaskChannel] = []

    def make(**options: Any) -> HubSpotTaskChannel:
        defaults: dict[str, Any] = {"token": TOKEN, "base_url": hubspot.url, "timeout": 0.5}
        settings = PluginSettings(
            name="csm", plugin="hubspot_task", options=defaults | options, origin="program.toml"
        )
        channel = HubSpotTaskChannel(settings, runtime=Runtime(clock=FrozenClock()))
        channels.append(channel)
        return channel

    yield make
    for channel in channels:
        channel.close()


@pytest.fixture
def make_message(hubspot: FakeHubSpot) -> MakeMessage:
    """CSM task messages for account = a company of the fake, owned by ana@vendor.test."""
    owner = "ana@vendor.test"
    hubspot.owner(owner, first="Ana")
    company = hubspot.company(name="Northwind")
    keys = itertools.count(1)

    def make(**fields: Any) -> Message:
        n = next(keys)
        task = {
            "owner": owner,
            "account": {"id": company, "name": "Northwind"},
            "contact": {
                "id": "ct-1",
                "name": "Bo Li",
                "email": "bo@northwind.test",
                "role": "admin",
            },
            "reason": "'welcome' was not opened within 3 days",
            "ladder": [
                {"touch": "welcome", "channel": "email", "sent_at": "2026-03-01T09:00:00+00:00"}
            ],
            "queued_at": "2026-03-07T09:00:00+00:00",
        }
        defaults: dict[str, Any] = {
            "idempotency_key": f"acme:welcome_call:ct-{n}:1",
            "channel": "csm",
            "kind": ChannelKind.CSM,
            "touch": "welcome_call",
            "to": owner,
            "account_id": company,
            "subject": "Call Northwind's admin",
            "text": "Bo has not opened the welcome emails. Offer a setup call.",
            "data": {"task": task},
            "created_at": datetime(2026, 3, 7, 9, tzinfo=UTC),
        }
        return Message(**(defaults | fields))

    return make
