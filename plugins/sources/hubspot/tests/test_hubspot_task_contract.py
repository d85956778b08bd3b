"""The hubspot_task channel keeps the channel contract of ``onetomany.testing``."""

from __future__ import annotations

import pytest
from conftest import MakeChannel, MakeMessage

from onetomany.model import Message
from onetomany.testing import Answer, ChannelContract
from onetomany_hubspot.tasks import HubSpotTaskChannel
from onetomany_hubspot.testing import TOKEN, FakeHubSpot


class HubSpotFake:
    secret = TOKEN

    def __init__(self, fake: FakeHubSpot, make_channel: MakeChannel, make_message: MakeMessage):
        self.fake = fake
        self.make_channel = make_channel
        self.make_message = make_message

    def channel(self) -> HubSpotTaskChannel:
        return self.make_channel()

    def message(self, index: int) -> Message:
        return self.make_message(idempotency_key=f"contract:{index}")

    def answer(self, *answers: Answer) -> None:
        self.fake.script(*(answer.value for answer in answers))

    def received(self) -> int:
        return self.fake.arrived


class TestHubSpotTaskContract(ChannelContract):
    @pytest.fixture
    def provider(  # type: ignore[override]
        self, hubspot: FakeHubSpot, make_channel: MakeChannel, make_message: MakeMessage
    ) -> HubSpotFake:
        return HubSpotFake(hubspot, make_channel, make_message)
