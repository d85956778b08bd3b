"""The Mailgun channel keeps the channel contract of ``onetomany.testing``."""

from __future__ import annotations

import pytest
from conftest import API_KEY, MakeChannel, MakeMessage

from onetomany.model import Message
from onetomany.testing import Answer, ChannelContract
from onetomany_mailgun import MailgunChannel
from onetomany_mailgun.testing import FakeMailgun


class MailgunFake:
    secret = API_KEY

    def __init__(self, fake: FakeMailgun, make_channel: MakeChannel, make_message: MakeMessage):
        self.fake = fake
        self.make_channel = make_channel
        self.make_message = make_message

    def channel(self) -> MailgunChannel:
        return self.make_channel()

    def message(self, index: int) -> Message:
        return self.make_message(
            idempotency_key=f"contract:{index}", to=f"person{index}@customer.example"
        )

    def answer(self, *answers: Answer) -> None:
        self.fake.script(*(answer.value for answer in answers))

    def received(self) -> int:
        return self.fake.arrived


class TestMailgunContract(ChannelContract):
    @pytest.fixture
    def provider(  # type: ignore[override]
        self, mailgun: FakeMailgun, make_channel: MakeChannel, make_message: MakeMessage
    ) -> MailgunFake:
        return MailgunFake(mailgun, make_channel, make_message)
