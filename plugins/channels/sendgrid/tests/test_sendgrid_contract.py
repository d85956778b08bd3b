"""The SendGrid channel keeps the channel contract of ``onetomany.testing``."""

from __future__ import annotations

import pytest
from conftest import API_KEY, MakeChannel, MakeMessage

from onetomany.testing import ChannelContract, ScriptedProvider
from onetomany_sendgrid.testing import FakeSendGrid


class TestSendGridContract(ChannelContract):
    @pytest.fixture
    def provider(  # type: ignore[override]
        self, sendgrid: FakeSendGrid, make_channel: MakeChannel, make_message: MakeMessage
    ) -> ScriptedProvider:
        return ScriptedProvider(
            sendgrid,
            secret=API_KEY,
            make_channel=make_channel,
            make_message=lambda index: make_message(
                idempotency_key=f"contract:{index}", to=f"person{index}@customer.example"
            ),
        )
