"""Internationalised addresses, and a session that stays usable after any failure mid-message.

One recipient the server cannot take, or a failure inside a transaction, must cost that message
only: the next recipients of the batch go out over the same (or a fresh) session.
"""

from __future__ import annotations

import email
import email.policy
import smtplib
from typing import TYPE_CHECKING, Any

import pytest

from onetomany.errors import PermanentDeliveryError
from onetomany.model import DeliveryResult
from onetomany_smtp import SmtpChannel
from onetomany_smtp.channel import _Client

if TYPE_CHECKING:
    from conftest import MakeChannel, MakeMessage, StartServer


@pytest.mark.parametrize("smtputf8", [False, True], ids=["plain-server", "smtputf8-server"])
def test_the_batch_goes_on_after_international_addresses(
    start_server: StartServer,
    make_channel: MakeChannel,
    make_message: MakeMessage,
    smtputf8: bool,
) -> None:
    server = start_server(enable_SMTPUTF8=smtputf8)
    channel = make_channel(server)
    messages = [
        make_message(to="first@customer.example"),
        make_message(to="Ana Souza <ana@exämple.test>"),
        make_message(to="Zoë Q <zoë@customer.example>"),
        make_message(to="Chloé <chloé@exämple.test>", sender="Équipe <équipe@acmé.test>"),
        make_message(to="last@customer.example"),
    ]

    with channel:
        outcomes = list(channel.send_many(messages))

    received = {r.rcpt_tos[0]: r for r in server.handler.received}
    assert isinstance(outcomes[0], DeliveryResult)
    assert isinstance(outcomes[1], DeliveryResult)
    assert isinstance(outcomes[4], DeliveryResult)
    assert "first@customer.example" in received
    assert "last@customer.example" in received
    idn = received["ana@xn--exmple-cua.test"]
    parsed = email.message_from_bytes(idn.data, policy=email.policy.default)
    assert parsed["To"].addresses[0].display_name == "Ana Souza"
    if smtputf8:
        assert isinstance(outcomes[2], DeliveryResult)
        assert isinstance(outcomes[3], DeliveryResult)
        utf8 = email.message_from_string(
            received["zoë@customer.example"].data.decode("utf-8"), policy=email.policy.default
        )
        assert utf8["To"].addresses[0].addr_spec == "zoë@customer.example"
        assert received["chloé@xn--exmple-cua.test"].mail_from == "équipe@xn--acm-dma.test"
    else:
        assert isinstance(outcomes[2], PermanentDeliveryError)
        assert "'zoë@customer.example'" in str(outcomes[2])
        assert "SMTPUTF8" in str(outcomes[2])
        assert isinstance(outcomes[3], PermanentDeliveryError)
        assert "équipe@acmé.test" in str(outcomes[3])
        assert len(server.handler.received) == 3
    assert server.handler.connections == 1


class _FailingClient(_Client):
    """A client that fails after MAIL FROM for one recipient, as a bug or a bad value would."""

    fail_for = "boom@customer.example"
    rset_fails = False

    def rcpt(self, recip: str, options: Any = ()) -> tuple[int, bytes]:
        if recip == self.fail_for:
            raise RuntimeError("something broke after MAIL FROM")
        return super().rcpt(recip, options)

    def rset(self) -> tuple[int, bytes]:
        if self.rset_fails:
            raise smtplib.SMTPServerDisconnected("gone while resetting")
        return super().rset()


class _FailingChannel(SmtpChannel):
    rset_fails = False

    def _new_client(self) -> _Client:
        client = _FailingClient(
            self.options.host,
            self.options.port,
            local_hostname=self.options.local_hostname,
            timeout=self.options.timeout,
        )
        client.rset_fails = self.rset_fails
        return client


@pytest.mark.parametrize("rset_fails", [False, True], ids=["rset", "reconnect"])
def test_a_failure_inside_a_transaction_resets_the_session(
    start_server: StartServer, make_message: MakeMessage, clock: Any, rset_fails: bool
) -> None:
    from onetomany.delivery.channels import Runtime
    from onetomany.plugins.settings import PluginSettings

    server = start_server()
    settings = PluginSettings(
        name="email",
        plugin="smtp",
        options={"host": "127.0.0.1", "port": server.port, "sender": "cs@example.com"},
    )
    channel = _FailingChannel(settings, runtime=Runtime(clock=clock))
    channel.rset_fails = rset_fails

    with channel:
        channel.send(make_message(to="before@customer.example"))
        with pytest.raises(RuntimeError, match="after MAIL FROM"):
            channel.send(make_message(to="boom@customer.example"))
        result = channel.send(make_message(to="after@customer.example"))

    assert isinstance(result, DeliveryResult)
    assert [r.rcpt_tos for r in server.handler.received] == [
        ["before@customer.example"],
        ["after@customer.example"],
    ]
    if rset_fails:
        assert server.handler.connections == 2
    else:
        assert server.handler.resets == 1
        assert server.handler.connections == 1
