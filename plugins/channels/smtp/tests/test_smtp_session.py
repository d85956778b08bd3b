"""The SMTP session: one per batch, reconnecting when dropped, TLS and AUTH."""

from __future__ import annotations

import logging
import smtplib
import socket
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from onetomany.errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError
from onetomany.model import DeliveryResult
from onetomany_smtp import SmtpChannel

if TYPE_CHECKING:
    from conftest import MakeChannel, MakeMessage, SmtpServer, StartServer

LOOPBACK = "127.0.0.1"


def pending_connections(listener: socket.socket) -> int:
    """How many connections reached ``listener`` without being accepted yet."""
    listener.setblocking(False)
    count = 0
    while True:
        try:
            accepted, _ = listener.accept()
        except BlockingIOError:
            return count
        accepted.close()
        count += 1


# -- one connection per batch ------------------------------------------------------------------


def test_a_batch_shares_one_connection(
    channel: SmtpChannel, server: SmtpServer, make_message: MakeMessage
) -> None:
    messages = [make_message(to=f"c{n}@customer.example") for n in range(5)]

    with channel:
        outcomes = list(channel.send_many(messages))

    assert all(isinstance(outcome, DeliveryResult) for outcome in outcomes)
    assert [r.rcpt_tos for r in server.handler.received] == [[m.to] for m in messages]
    assert server.handler.connections == 1
    assert server.handler.quits == 1


def test_send_connects_lazily_and_close_is_idempotent(
    channel: SmtpChannel, server: SmtpServer, make_message: MakeMessage
) -> None:
    channel.close()  # nothing open yet
    channel.send(make_message())
    channel.send(make_message())
    channel.close()
    channel.close()

    assert len(server.handler.received) == 2
    assert server.handler.connections == 1
    assert server.handler.quits == 1


def test_a_dropped_connection_is_reopened_for_the_next_message(
    channel: SmtpChannel, server: SmtpServer, make_message: MakeMessage
) -> None:
    server.handler.hang_up_after_data = True

    with channel:
        outcomes = list(channel.send_many([make_message(), make_message(), make_message()]))

    assert all(isinstance(outcome, DeliveryResult) for outcome in outcomes)
    assert len(server.handler.received) == 3
    assert server.handler.connections == 3


def test_a_server_gone_for_good_is_transient(
    channel: SmtpChannel, server: SmtpServer, make_message: MakeMessage
) -> None:
    server.handler.hang_up_after_data = True
    with channel:
        channel.send(make_message())
        server.stop()

        with pytest.raises(TransientDeliveryError, match="cannot connect") as caught:
            channel.send(make_message())

    assert isinstance(caught.value.__cause__, ConnectionRefusedError)


def test_an_unreachable_server_costs_one_attempt_per_batch(
    make_channel: MakeChannel, make_message: MakeMessage
) -> None:
    # Accepts connections in the kernel and never greets: every attempt ends in a timeout.
    with socket.create_server((LOOPBACK, 0)) as silent:
        channel = make_channel(port=silent.getsockname()[1], timeout=0.2)

        with channel:  # open() reports nothing; each message gets the failure
            outcomes = list(channel.send_many([make_message() for _ in range(3)]))
        assert pending_connections(silent) == 1

        with channel:  # a new batch tries again
            [outcome] = channel.send_many([make_message()])
        assert pending_connections(silent) == 1

    assert all(isinstance(o, TransientDeliveryError) for o in [*outcomes, outcome])
    assert "earlier in this batch" in str(outcomes[2])


# -- TLS -------------------------------------------------------------------------------------------


def tls_server(start_server: StartServer, security: str, context: ssl.SSLContext) -> SmtpServer:
    if security == "ssl":
        return start_server(ssl_context=context)
    # Refusing MAIL before STARTTLS proves the channel upgraded the session.
    return start_server(tls_context=context, require_starttls=True)


@pytest.mark.parametrize("security", ["starttls", "ssl"])
@pytest.mark.parametrize(
    ("options", "outcome"),
    [
        pytest.param({"cafile": "CA"}, DeliveryResult, id="private-ca"),
        pytest.param({}, TransientDeliveryError, id="system-cas-reject-it"),
        pytest.param({"verify_tls": False}, DeliveryResult, id="verify_tls-false"),
    ],
)
def test_tls(
    start_server: StartServer,
    make_channel: MakeChannel,
    make_message: MakeMessage,
    server_tls: ssl.SSLContext,
    ca_bundle: Path,
    security: str,
    options: dict[str, Any],
    outcome: type[DeliveryResult | DeliveryError],
) -> None:
    server = tls_server(start_server, security, server_tls)
    options = {key: str(ca_bundle) if value == "CA" else value for key, value in options.items()}
    channel = make_channel(server, security=security, **options)

    with channel:
        [result] = channel.send_many([make_message()])

    assert isinstance(result, outcome)
    if isinstance(result, DeliveryError):
        assert isinstance(result.__cause__, ssl.SSLCertVerificationError)
    else:
        assert len(server.handler.received) == 1


# -- AUTH ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", ["LOGIN", "PLAIN"])
def test_auth(
    start_server: StartServer,
    make_channel: MakeChannel,
    make_message: MakeMessage,
    mechanism: str,
) -> None:
    server = start_server(auth_exclude_mechanism=[{"LOGIN": "PLAIN", "PLAIN": "LOGIN"}[mechanism]])
    user = server.authenticator
    channel = make_channel(server, username=user.username, password=user.password)

    channel.send(make_message())

    assert user.mechanisms == [mechanism]
    assert server.handler.received[0].authenticated


def test_no_auth_without_a_username(
    channel: SmtpChannel, server: SmtpServer, make_message: MakeMessage
) -> None:
    channel.send(make_message())

    assert server.authenticator.mechanisms == []
    assert not server.handler.received[0].authenticated


@pytest.mark.parametrize("echo", [False, True], ids=["535", "535-quoting-the-password"])
def test_a_wrong_password_is_permanent_and_never_shown(
    start_server: StartServer,
    make_channel: MakeChannel,
    make_message: MakeMessage,
    caplog: pytest.LogCaptureFixture,
    echo: bool,
) -> None:
    caplog.set_level(logging.DEBUG, logger="onetomany_smtp")
    server = start_server(echo_password=echo)
    wrong = "wrong-" + server.authenticator.password
    channel = make_channel(server, username=server.authenticator.username, password=wrong)

    with channel:
        [outcome] = channel.send_many([make_message()])

    assert isinstance(outcome, PermanentDeliveryError)
    assert isinstance(outcome.__cause__, smtplib.SMTPAuthenticationError)
    assert "535" in str(outcome)
    shown = [str(outcome), repr(outcome), repr(channel), str(channel.options), caplog.text]
    assert not [text for text in shown if wrong in text]
    assert server.handler.received == []
