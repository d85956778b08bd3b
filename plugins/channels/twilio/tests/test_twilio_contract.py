"""The Twilio channel keeps the channel contract of ``onetomany.testing``."""

from __future__ import annotations

import pytest
from conftest import TOKEN, MakeChannel, MakeMessage

from onetomany.model import Message
from onetomany.testing import Answer, ChannelContract
from onetomany_twilio import TwilioChannel
from onetomany_twilio.testing import FakeTwilio


class TwilioFake:
    secret = TOKEN

    def __init__(self, fake: FakeTwilio, make_channel: MakeChannel, make_message: MakeMessage):
        self.fake = fake
        self.make_channel = make_channel
        self.make_message = make_message

    def channel(self) -> TwilioChannel:
        return self.make_channel()

    def message(self, index: int) -> Message:
        return self.make_message(idempotency_key=f"contract:{index}", to=f"+1415555{index:04d}")

    def answer(self, *answers: Answer) -> None:
        self.fake.script(*(answer.value for answer in answers))

    def received(self) -> int:
        return self.fake.arrived


class TestTwilioContract(ChannelContract):
    @pytest.fixture
    def provider(  # type: ignore[override]
        self, twilio: FakeTwilio, make_channel: MakeChannel, make_message: MakeMessage
    ) -> TwilioFake:
        return TwilioFake(twilio, make_channel, make_message)
