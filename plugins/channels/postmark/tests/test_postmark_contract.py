"""The Postmark channel keeps the channel contract of ``onetomany.testing``."""

from __future__ import annotations

import pytest
from conftest import TOKEN, MakeChannel, MakeMessage

from onetomany.model import Message
from onetomany.testing import Answer, ChannelContract
from onetomany_postmark import PostmarkChannel
from onetomany_postmark.testing import FakePostmark


class PostmarkFake:
    secret = TOKEN

    def __init__(self, fake: FakePostmark, make_channel: MakeChannel, make_message: MakeMessage):
        self.fake = fake
        self.make_channel = make_channel
        self.make_message = make_message

    def channel(self) -> PostmarkChannel:
        return self.make_channel()

    def message(self, index: int) -> Message:
        return self.make_message(
            idempotency_key=f"contract:{index}", to=f"person{index}@customer.example"
        )

    def answer(self, *answers: Answer) -> None:
        self.fake.script(*(answer.value for answer in answers))

    def received(self) -> int:
        return self.fake.arrived


class TestPostmarkContract(ChannelContract):
    @pytest.fixture
    def provider(  # type: ignore[override]
        self, postmark: FakePostmark, make_channel: MakeChannel, make_message: MakeMessage
    ) -> PostmarkFake:
        return PostmarkFake(postmark, make_channel, make_message)
