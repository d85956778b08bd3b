"""The signed webhook channel keeps the channel contract of ``onetomany.testing``."""

from __future__ import annotations

import pytest
from conftest import SECRET, MakeChannel, MakeMessage

from onetomany.model import Message
from onetomany.testing import Answer, ChannelContract
from onetomany_webhook import WebhookChannel
from onetomany_webhook.testing import FakeReceiver


class ReceiverFake:
    secret = SECRET

    def __init__(self, fake: FakeReceiver, make_channel: MakeChannel, make_message: MakeMessage):
        self.fake = fake
        self.make_channel = make_channel
        self.make_message = make_message

    def channel(self) -> WebhookChannel:
        return self.make_channel()

    def message(self, index: int) -> Message:
        return self.make_message(idempotency_key=f"contract:{index}")

    def answer(self, *answers: Answer) -> None:
        self.fake.script(*(answer.value for answer in answers))

    def received(self) -> int:
        return self.fake.arrived


class TestWebhookContract(ChannelContract):
    @pytest.fixture
    def provider(  # type: ignore[override]
        self, receiver: FakeReceiver, make_channel: MakeChannel, make_message: MakeMessage
    ) -> ReceiverFake:
        return ReceiverFake(receiver, make_channel, make_message)
