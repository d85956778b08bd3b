"""The Slack channel keeps the channel contract of ``onetomany.testing``."""

from __future__ import annotations

import pytest
from conftest import TOKEN, MakeChannel, MakeMessage

from onetomany.model import Message
from onetomany.testing import Answer, ChannelContract
from onetomany_slack import SlackChannel
from onetomany_slack.testing import FakeSlack


class SlackFake:
    secret = TOKEN

    def __init__(self, fake: FakeSlack, make_channel: MakeChannel, make_message: MakeMessage):
        self.fake = fake
        self.make_channel = make_channel
        self.make_message = make_message

    def channel(self) -> SlackChannel:
        return self.make_channel()

    def message(self, index: int) -> Message:
        return self.make_message(idempotency_key=f"contract:{index}", to=f"U0{index:07d}")

    def answer(self, *answers: Answer) -> None:
        self.fake.script(*(answer.value for answer in answers))

    def received(self) -> int:
        return self.fake.arrived


class TestSlackContract(ChannelContract):
    @pytest.fixture
    def provider(  # type: ignore[override]
        self, slack: FakeSlack, make_channel: MakeChannel, make_message: MakeMessage
    ) -> SlackFake:
        return SlackFake(slack, make_channel, make_message)
