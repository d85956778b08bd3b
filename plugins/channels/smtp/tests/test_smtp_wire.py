"""What reaches the server: envelope, headers, MIME structure and the wire's line rules."""

from __future__ import annotations

import email
import email.policy
import smtplib
from email.message import EmailMessage
from typing import TYPE_CHECKING

import pytest
from hypothesis import given
from hypothesis import strategies as st

from onetomany.model.clock import FrozenClock
from onetomany_smtp import SmtpChannel
from onetomany_smtp.channel import _plain_envelope, wire_data

if TYPE_CHECKING:
    from conftest import MakeMessage, Received, SmtpServer


def parsed(received: Received) -> EmailMessage:
    message = email.message_from_bytes(received.data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def decoded(part: EmailMessage) -> str:
    """A part's text with the wire's CRLF line breaks read back as the LF they were sent as."""
    content = part.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")


def test_headers_and_envelope(
    channel: SmtpChannel, server: SmtpServer, make_message: MakeMessage, clock: FrozenClock
) -> None:
    message = make_message(
        to="José Ñúñez <jose@customer.example>",
        sender="Zoë from Success <zoe@example.com>",
        subject="Olá José, sua renovação está chegando 🎉",
    )

    result = channel.send(message)

    [received] = server.handler.received
    assert received.mail_from == "zoe@example.com"
    assert received.rcpt_tos == ["jose@customer.example"]
    mail = parsed(received)
    assert mail["Subject"] == message.subject
    assert (mail["From"].addresses[0].display_name, mail["From"].addresses[0].addr_spec) == (
        "Zoë from Success",
        "zoe@example.com",
    )
    assert (mail["To"].addresses[0].display_name, mail["To"].addresses[0].addr_spec) == (
        "José Ñúñez",
        "jose@customer.example",
    )
    assert mail["Date"].datetime == clock.now()
    assert mail["Message-ID"]
    assert result.provider_message_id == mail["Message-ID"]
    assert result.detail == server.handler.accepted


def test_channel_sender_is_the_default_from(
    channel: SmtpChannel, server: SmtpServer, make_message: MakeMessage
) -> None:
    channel.send(make_message())

    [received] = server.handler.received
    assert received.mail_from == "success@example.com"
    assert str(parsed(received)["From"]) == "Success Team <success@example.com>"


@pytest.mark.parametrize(
    ("text", "html"),
    [
        pytest.param("Hi Ana,\nwelcome aboard.\n", "<p>Hi Ana</p>", id="plain"),
        pytest.param("Olá, ação e coração\n", "<p>Olá <b>José</b> 🎉</p>", id="non-ascii"),
        pytest.param(".starts with a dot\n..two\n.\nend\n", "<p>a</p>\n.\n<p>b</p>", id="dots"),
        pytest.param("trailing spaces   \n\ttab\n", "<p>x</p>   \n", id="whitespace"),
        pytest.param("short", "<p>" + "x" * 10_000 + "</p>", id="10k-char-html-line"),
    ],
)
def test_alternative_parts_decode_to_what_was_sent(
    channel: SmtpChannel, server: SmtpServer, make_message: MakeMessage, text: str, html: str
) -> None:
    channel.send(make_message(text=text, html=html))

    mail = parsed(server.handler.received[0])
    assert mail.get_content_type() == "multipart/alternative"
    plain, rich = mail.iter_parts()
    assert (plain.get_content_type(), rich.get_content_type()) == ("text/plain", "text/html")
    assert decoded(plain) == text
    assert decoded(rich) == html


def test_lines_end_in_crlf_and_fit_998_octets(
    channel: SmtpChannel, server: SmtpServer, make_message: MakeMessage
) -> None:
    # MJML output is one line of thousands of characters; RFC 5322 allows 998 octets a line.
    html = "<table>" + "<td>cell</td>" * 800 + "</table>"
    channel.send(make_message(html=html, text="y" * 5_000 + "\nmixed\r\nline\rendings\n"))

    data = server.handler.received[0].data
    assert data.endswith(b"\r\n")
    lines = data.split(b"\r\n")[:-1]
    assert not [line for line in lines if b"\r" in line or b"\n" in line]
    assert max(len(line) for line in lines) <= 998
    html_part = parsed(server.handler.received[0]).get_body(("html",))
    assert html_part is not None
    assert decoded(html_part) == html


PLAIN = "abcxyzABCXYZ0129!#$%&'*+-/=?^_`{|}~.@"


@given(st.text(alphabet=PLAIN, min_size=1))
def test_a_plain_envelope_address_is_what_smtplib_would_send(address: str) -> None:
    # The channel writes MAIL FROM / RCPT TO itself for these; smtplib's quoteaddr must agree.
    assert _plain_envelope(address)
    assert smtplib.quoteaddr(address) == f"<{address}>"


@pytest.mark.parametrize(
    "address", ['"john doe"@example.com', "jos\u00e9@example.com", "a b@example.com", "<x@y.z>"]
)
def test_other_addresses_are_left_to_smtplib(address: str) -> None:
    assert not _plain_envelope(address.encode().decode("unicode_escape"))


def test_mail_keeps_its_parameters(
    channel: SmtpChannel, server: SmtpServer, make_message: MakeMessage
) -> None:
    channel.send(make_message(to="ops+alerts@customer.example", sender="zoe@example.com"))

    [received] = server.handler.received
    assert received.mail_from == "zoe@example.com"
    assert received.rcpt_tos == ["ops+alerts@customer.example"]
    # smtplib's sendmail offers the size when the server takes SIZE: it still does.
    assert [o.split("=")[0].upper() for o in received.mail_options] == ["SIZE"]
    assert int(received.mail_options[0].split("=")[1]) == len(received.data)


@given(st.lists(st.sampled_from([b".", b"..", b"\r\n", b"\n", b"\r", b"a", b"=2E", b"\x00"])))
def test_data_goes_out_as_smtplib_writes_it(pieces: list[bytes]) -> None:
    message = b"".join(pieces)
    expected = smtplib._quote_periods(message)  # smtplib.SMTP.data's own steps
    if expected[-2:] != b"\r\n":
        expected += b"\r\n"
    assert wire_data(message) == expected + b".\r\n"


def test_a_line_starting_with_a_dot_arrives_as_it_was_written(
    channel: SmtpChannel, server: SmtpServer, make_message: MakeMessage
) -> None:
    text, html = ".hidden\n..two\nend\n", "<p>a</p>\n.<p>b</p>\n"
    channel.send(make_message(text=text, html=html))

    [received] = server.handler.received
    assert any(line.startswith(b".") for line in received.data.split(b"\r\n"))
    plain, rich = parsed(received).iter_parts()
    assert (decoded(plain), decoded(rich)) == (text, html)
