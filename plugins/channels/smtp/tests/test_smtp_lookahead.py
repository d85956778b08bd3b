"""send_many builds each next message while the server reads the one before it, and a message
that cannot be built still fails at its own turn."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from onetomany.errors import PermanentDeliveryError
from onetomany.model import DeliveryResult, Message
from onetomany_smtp import SmtpChannel

if TYPE_CHECKING:
    from conftest import MakeChannel, MakeMessage, SmtpServer, StartServer


@dataclass
class Built:
    """The keys of the messages the channel has built, shared with the server's thread."""

    keys: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self) -> int:
        with self.lock:
            return len(self.keys)


def watch_builds(channel: SmtpChannel, built: Built) -> None:
    prepare = channel._prepare

    def counted(message: Message) -> Any:
        outgoing = prepare(message)
        with built.lock:
            built.keys.append(message.idempotency_key)
        return outgoing

    channel._prepare = counted  # type: ignore[method-assign]


def test_the_next_message_is_built_while_the_server_reads_the_data(
    server: SmtpServer, make_channel: MakeChannel, make_message: MakeMessage
) -> None:
    built = Built()
    seen: list[int] = []
    accept = server.handler.handle_DATA

    async def handle_data(server_: Any, session: Any, envelope: Any) -> str:
        # Before replying to message n, wait (at most 2 s) for the client to build n + 1: it
        # can only do so between the end of the data and the reply.
        wanted = len(seen) + 2
        deadline = time.monotonic() + 2
        while built.count() < min(wanted, 3) and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        seen.append(built.count())
        return await accept(server_, session, envelope)

    server.handler.handle_DATA = handle_data  # type: ignore[method-assign]
    channel = make_channel(server)
    watch_builds(channel, built)
    messages = [make_message(to=f"c{n}@customer.example") for n in range(3)]

    started = time.monotonic()
    with channel:
        outcomes = list(channel.send_many(messages))

    assert all(isinstance(outcome, DeliveryResult) for outcome in outcomes)
    assert seen == [2, 3, 3]
    assert built.keys == [m.idempotency_key for m in messages]  # each built once, in order
    assert time.monotonic() - started < 2


def test_a_message_that_cannot_be_built_fails_at_its_own_turn(
    start_server: StartServer, make_channel: MakeChannel, make_message: MakeMessage
) -> None:
    server = start_server()
    channel = make_channel(server, sender="")
    messages = [
        make_message(sender="Success <success@example.com>", to="first@customer.example"),
        make_message(to="second@customer.example"),  # no sender anywhere: cannot be built
        make_message(sender="Success <success@example.com>", to="third@customer.example"),
    ]

    with channel:
        first, second, third = channel.send_many(messages)

    assert isinstance(first, DeliveryResult)
    assert isinstance(second, PermanentDeliveryError)
    assert messages[1].idempotency_key in str(second)
    assert "no sender" in str(second)
    assert isinstance(third, DeliveryResult)
    assert [r.rcpt_tos for r in server.handler.received] == [
        ["first@customer.example"],
        ["third@customer.example"],
    ]


def test_a_build_that_raises_is_charged_to_its_own_message(
    channel: SmtpChannel, server: SmtpServer, make_message: MakeMessage
) -> None:
    messages = [make_message(to=f"c{n}@customer.example") for n in range(3)]
    prepare = channel._prepare

    def broken_for_the_second(message: Message) -> Any:
        if message is messages[1]:
            raise RuntimeError("a bug while building")
        return prepare(message)

    channel._prepare = broken_for_the_second  # type: ignore[method-assign]

    with channel:
        outcomes = channel.send_many(messages)
        # The first message's outcome comes out whole, though the second was built (and
        # failed) while the server read the first.
        assert isinstance(next(outcomes), DeliveryResult)
        with pytest.raises(RuntimeError, match="a bug while building"):
            next(outcomes)

    assert [r.rcpt_tos for r in server.handler.received] == [["c0@customer.example"]]
