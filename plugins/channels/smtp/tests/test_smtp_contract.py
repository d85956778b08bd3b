"""The SMTP channel keeps the channel contract of ``onetomany.testing``, against aiosmtpd."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from conftest import MakeChannel, MakeMessage, RecordingHandler, SmtpServer, StartServer

from onetomany.model import Message
from onetomany.testing import Answer, ChannelContract
from onetomany_smtp import SmtpChannel

#: The reply each scripted answer gets at the end of DATA.
REPLIES = {
    Answer.ACCEPT: "250 2.0.0 Ok: queued",
    Answer.TRANSIENT: "451 4.3.0 Mail server temporarily rejected message",
    Answer.PERMANENT: "550 5.1.1 Mailbox does not exist",
}


class ScriptedHandler(RecordingHandler):
    """Answers each message's DATA as scripted; NO_ANSWER hangs up instead of replying."""

    def __init__(self) -> None:
        super().__init__()
        self.script: list[Answer] = []
        self.datas = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.datas += 1
        answer = self.script.pop(0) if self.script else Answer.ACCEPT
        if answer is Answer.NO_ANSWER:
            # The message arrived; the reply never leaves.
            server.transport.close()
            await asyncio.sleep(0)
            return "250 2.0.0 Ok: never seen"
        return REPLIES[answer]


class SmtpFake:
    secret = "Tr0ub4dor-and-3-contract"

    def __init__(self, server: SmtpServer, make_channel: MakeChannel, make_message: MakeMessage):
        self.server = server
        self.handler: ScriptedHandler = server.handler  # type: ignore[assignment]
        self.make_channel = make_channel
        self.make_message = make_message
        server.authenticator.password = self.secret

    def channel(self) -> SmtpChannel:
        return self.make_channel(
            self.server, username=self.server.authenticator.username, password=self.secret
        )

    def message(self, index: int) -> Message:
        return self.make_message(
            idempotency_key=f"contract:{index}", to=f"person{index}@customer.example"
        )

    def answer(self, *answers: Answer) -> None:
        self.handler.script.extend(answers)

    def received(self) -> int:
        return self.handler.datas


class TestSmtpContract(ChannelContract):
    @pytest.fixture
    def provider(  # type: ignore[override]
        self, start_server: StartServer, make_channel: MakeChannel, make_message: MakeMessage
    ) -> SmtpFake:
        server = start_server()
        scripted = ScriptedHandler()
        server.controller.handler = scripted
        server.handler = scripted
        return SmtpFake(server, make_channel, make_message)
