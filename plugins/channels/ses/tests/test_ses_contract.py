"""The SES channel keeps the channel contract of ``onetomany.testing``."""

from __future__ import annotations

import pytest
from ses_support import SECRET_ACCESS_KEY, MakeChannel, MakeMessage

from onetomany.model import Message
from onetomany.testing import Answer, ChannelContract
from onetomany_ses import SesChannel
from onetomany_ses.testing import FakeSes


class SesFake:
    secret = SECRET_ACCESS_KEY

    def __init__(self, fake: FakeSes, make_channel: MakeChannel, make_message: MakeMessage):
        self.fake = fake
        self.make_channel = make_channel
        self.make_message = make_message

    def channel(self) -> SesChannel:
        return self.make_channel()

    def message(self, index: int) -> Message:
        return self.make_message(
            idempotency_key=f"contract:{index}", to=f"person{index}@customer.example"
        )

    def answer(self, *answers: Answer) -> None:
        self.fake.script(*(answer.value for answer in answers))

    def received(self) -> int:
        return self.fake.arrived


class TestSesContract(ChannelContract):
    @pytest.fixture
    def provider(  # type: ignore[override]
        self, ses: FakeSes, make_channel: MakeChannel, make_message: MakeMessage
    ) -> SesFake:
        return SesFake(ses, make_channel, make_message)
