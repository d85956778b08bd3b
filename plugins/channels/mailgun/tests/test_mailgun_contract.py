"""The Mailgun channel keeps the channel contract of ``onetomany.testing``."""

from __future__ import annotations

import pytest
from conftest import API_KEY, MakeChannel, MakeMessage

from onetomany.testing import ChannelContract, ScriptedProvider
from onetomany_mailgun.testing import FakeMailgun


class TestMailgunContract(ChannelContract):
    @pytest.fixture
    def provider(  # type: ignore[override]
        self, mailgun: FakeMailgun, make_channel: MakeChannel, make_message: MakeMessage
    ) -> ScriptedProvider:
        return ScriptedProvider(
            mailgun,
            secret=API_KEY,
            make_channel=make_channel,
            make_message=lambda index: make_message(
                idempotency_key=f"contract:{index}", to=f"person{index}@customer.example"
            ),
        )
