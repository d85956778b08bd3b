"""How failures map to the dispatcher's two errors: retry (transient) or dead-letter (permanent)."""

from __future__ import annotations

import smtplib
import socket
import ssl
from typing import TYPE_CHECKING

import pytest

from onetomany.errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError
from onetomany.model import DeliveryResult
from onetomany_smtp import SmtpChannel

if TYPE_CHECKING:
    from conftest import MakeChannel, MakeMessage, SmtpServer, StartServer

LOOPBACK = "127.0.0.1"
REFUSED = "refused@customer.example"


@pytest.mark.parametrize(
    ("stage", "reply", "error", "cause"),
    [
        ("data", "451 4.3.0 Try again later", TransientDeliveryError, smtplib.SMTPDataError),
        ("data", "452 4.3.1 Insufficient storage", TransientDeliveryError, smtplib.SMTPDataError),
        ("data", "550 5.7.1 Rejected as spam", PermanentDeliveryError, smtplib.SMTPDataError),
        ("data", "554 5.6.0 Malformed", PermanentDeliveryError, smtplib.SMTPDataError),
        ("data", "421 4.7.0 Closing", TransientDeliveryError, smtplib.SMTPDataError),
        ("rcpt", "450 4.2.1 Mailbox busy", TransientDeliveryError, smtplib.SMTPRecipientsRefused),
        ("rcpt", "550 5.1.1 No such user", PermanentDeliveryError, smtplib.SMTPRecipientsRefused),
        ("rcpt", "553 5.1.3 Bad address", PermanentDeliveryError, smtplib.SMTPRecipientsRefused),
    ],
)
def test_reply_codes(
    channel: SmtpChannel,
    server: SmtpServer,
    make_message: MakeMessage,
    stage: str,
    reply: str,
    error: type[DeliveryError],
    cause: type[Exception],
) -> None:
    replies = server.handler.data_replies if stage == "data" else server.handler.rcpt_replies
    replies[REFUSED] = reply

    with channel:
        refused, accepted = channel.send_many([make_message(to=REFUSED), make_message()])

    assert type(refused) is error
    assert isinstance(refused.__cause__, cause)
    assert reply in str(refused)
    # A refusal ends one transaction, not the batch: the next message still goes out.
    assert isinstance(accepted, DeliveryResult)
    assert len(server.handler.received) == 1


def test_a_refused_connection_is_transient(
    make_channel: MakeChannel, make_message: MakeMessage
) -> None:
    # Bound but not listening: connecting is refused, and no one else can take the port.
    with socket.socket() as closed:
        closed.bind((LOOPBACK, 0))
        channel = make_channel(port=closed.getsockname()[1])

        with pytest.raises(TransientDeliveryError, match="cannot connect") as caught:
            channel.send(make_message())

    assert isinstance(caught.value.__cause__, ConnectionRefusedError)


def test_a_silent_server_times_out_as_transient(
    make_channel: MakeChannel, make_message: MakeMessage
) -> None:
    with socket.create_server((LOOPBACK, 0)) as silent:
        channel = make_channel(port=silent.getsockname()[1], timeout=0.1)

        with pytest.raises(TransientDeliveryError, match="timed out"):
            channel.send(make_message())


def test_starttls_the_server_does_not_offer_is_permanent(
    make_channel: MakeChannel, server: SmtpServer, make_message: MakeMessage
) -> None:
    channel = make_channel(server, security="starttls", verify_tls=False)

    with pytest.raises(PermanentDeliveryError, match="STARTTLS") as caught:
        channel.send(make_message())

    assert isinstance(caught.value.__cause__, smtplib.SMTPNotSupportedError)


def test_a_plain_client_against_an_implicit_tls_port_is_transient(
    start_server: StartServer,
    make_channel: MakeChannel,
    make_message: MakeMessage,
    server_tls: ssl.SSLContext,
) -> None:
    server = start_server(ssl_context=server_tls)
    # The server waits for a TLS hello, the client for a greeting: only the timeout ends it.
    channel = make_channel(server, timeout=0.2)

    with pytest.raises(TransientDeliveryError):
        channel.send(make_message())


@pytest.mark.parametrize(
    ("channel_options", "fields", "match"),
    [
        pytest.param({"sender": ""}, {}, "no sender", id="no-sender-anywhere"),
        pytest.param({}, {"subject": "Hi\r\nBcc: all@example.com"}, "line break", id="injection"),
        pytest.param(
            {}, {"to": "Zoë <zoe@exämple..com>"}, "not a valid internationalised", id="bad-idn"
        ),
    ],
)
def test_messages_that_cannot_be_sent_are_permanent_before_connecting(
    make_channel: MakeChannel,
    make_message: MakeMessage,
    channel_options: dict[str, str],
    fields: dict[str, str],
    match: str,
) -> None:
    with socket.create_server((LOOPBACK, 0)) as listener:
        channel = make_channel(port=listener.getsockname()[1], **channel_options)

        with pytest.raises(PermanentDeliveryError, match=match):
            channel.send(make_message(**fields))

        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected
