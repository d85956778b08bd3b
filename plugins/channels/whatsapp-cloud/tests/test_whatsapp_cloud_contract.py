"""The WhatsAppCloud channel keeps the channel contract of ``onetomany.testing``."""

from __future__ import annotations

import pytest
from conftest import TOKEN, MakeChannel, MakeMessage

from onetomany.model import Message
from onetomany.testing import Answer, ChannelContract
from onetomany_whatsapp_cloud import WhatsAppCloudChannel
from onetomany_whatsapp_cloud.testing import FakeWhatsAppCloud


class WhatsAppCloudFake:
    secret = TOKEN

    def __init__(
        self, fake: FakeWhatsAppCloud, make_channel: MakeChannel, make_message: MakeMessage
    ):
        self.fake = fake
        self.make_channel = make_channel
        self.make_message = make_message

    def channel(self) -> WhatsAppCloudChannel:
        return self.make_channel()

    def message(self, index: int) -> Message:
        return self.make_message(idempotency_key=f"contract:{index}", to=f"+5511912{index:06d}")

    def answer(self, *answers: Answer) -> None:
        self.fake.script(*(answer.value for answer in answers))

    def received(self) -> int:
        return self.fake.arrived


class TestWhatsAppCloudContract(ChannelContract):
    @pytest.fixture
    def provider(  # type: ignore[override]
        self, cloud: FakeWhatsAppCloud, make_channel: MakeChannel, make_message: MakeMessage
    ) -> WhatsAppCloudFake:
        return WhatsAppCloudFake(cloud, make_channel, make_message)
