"""The SES channel against a local server speaking SES v2's REST JSON API: what it sends (raw
MIME or simple content, the outbox key as a tag, the configuration set), how it reads each
documented error, and that boto3 never retries behind the dispatcher's back."""

from __future__ import annotations

import base64
import email
import socket
from email import policy

import pytest
from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ProxyConnectionError,
    ReadTimeoutError,
    SSLError,
)
from hypothesis import given
from hypothesis import strategies as st
from ses_support import SECRET_ACCESS_KEY, MakeChannel, MakeMessage

from onetomany.delivery.mime import message_id
from onetomany.errors import (
    ConfigError,
    DeliveryError,
    PermanentDeliveryError,
    TransientDeliveryError,
    UnknownOutcomeError,
)
from onetomany.model import DeliveryResult
from onetomany.plugins.options import read_options
from onetomany_ses import SesOptions, key_from_tag, tag_value
from onetomany_ses.channel import transport_error
from onetomany_ses.testing import FakeSes

URL = "https://email.eu-west-1.amazonaws.com/v2/email/outbound-emails"


def test_raw_content_is_the_composers_mime_message_with_the_key_as_a_tag(
    ses: FakeSes, make_channel: MakeChannel, make_message: MakeMessage
) -> None:
    message = make_message(idempotency_key="acme:welcome:c_1:1")
    with make_channel(configuration_set="onetomany-events") as channel:
        result = channel.send(message)

    assert isinstance(result, DeliveryResult)
    assert result.provider_message_id and result.provider_message_id.startswith("0100018c-")
    (sent,) = ses.sent
    assert sent["ConfigurationSetName"] == "onetomany-events"
    assert sent["Destination"] == {"ToAddresses": [message.to]}
    assert sent["EmailTags"] == [{"Name": "onetomany_key", "Value": "acme_3Awelcome_3Ac_5F1_3A1"}]
    assert key_from_tag(sent["EmailTags"][0]["Value"]) == "acme:welcome:c_1:1"
    mime = email.message_from_bytes(
        base64.b64decode(sent["Content"]["Raw"]["Data"]), policy=policy.default
    )
    assert mime["Subject"] == "Welcome aboard"
    assert mime["Message-ID"] == message_id("acme:welcome:c_1:1", "example.com")
    assert mime["List-Unsubscribe"] == "<https://acme.test/u/1>"
    text = mime.get_body(("plain",))
    assert text is not None
    assert text.get_content().replace("\r\n", "\n") == "Hi Ana,\nwelcome aboard.\n"


def test_simple_content_gives_subject_bodies_and_headers_to_ses(
    ses: FakeSes, make_channel: MakeChannel, make_message: MakeMessage
) -> None:
    with make_channel(content="simple") as channel:
        channel.send(make_message(reply_to="help@example.com"))

    (sent,) = ses.sent
    simple = sent["Content"]["Simple"]
    assert sent["FromEmailAddress"] == "Success Team <success@example.com>"
    assert sent["ReplyToAddresses"] == ["help@example.com"]
    assert simple["Subject"] == {"Data": "Welcome aboard", "Charset": "UTF-8"}
    assert simple["Body"]["Text"]["Data"] == "Hi Ana,\nwelcome aboard.\n"
    assert simple["Body"]["Html"]["Data"] == "<p>Hi Ana,</p><p>welcome aboard.</p>"
    assert simple["Headers"] == [{"Name": "List-Unsubscribe", "Value": "<https://acme.test/u/1>"}]
    assert "ConfigurationSetName" not in sent


@pytest.mark.parametrize(
    ("answer", "error", "code"),
    [
        ("transient", TransientDeliveryError, "TooManyRequestsException"),
        ("throttling", TransientDeliveryError, "Throttling"),
        ("unavailable", TransientDeliveryError, "ServiceUnavailable"),
        ("credentials", TransientDeliveryError, "UnrecognizedClientException"),
        ("permanent", PermanentDeliveryError, "MessageRejected"),
        ("mail_from", PermanentDeliveryError, "MailFromDomainNotVerifiedException"),
        ("suspended", PermanentDeliveryError, "AccountSuspendedException"),
        ("bad_request", PermanentDeliveryError, "BadRequestException"),
    ],
)
def test_each_documented_error_is_its_outcome_after_one_request(
    ses: FakeSes,
    make_channel: MakeChannel,
    make_message: MakeMessage,
    answer: str,
    error: type[DeliveryError],
    code: str,
) -> None:
    ses.script(answer)
    with make_channel() as channel, pytest.raises(DeliveryError) as raised:
        channel.send(make_message())

    assert type(raised.value) is error
    assert code in str(raised.value)
    # boto3's own retries are off: the dispatcher retries, and records each attempt.
    assert ses.arrived == 1
    assert ses.sent == []


def test_an_answer_later_than_the_timeout_is_an_unknown_outcome(
    ses: FakeSes, make_channel: MakeChannel, make_message: MakeMessage
) -> None:
    ses.script("late")
    with make_channel(timeout=0.3) as channel, pytest.raises(UnknownOutcomeError) as raised:
        channel.send(make_message())

    assert "ReadTimeoutError" in str(raised.value)
    assert ses.arrived == 1


def test_no_connection_is_transient_and_nothing_was_sent(
    make_channel: MakeChannel, make_message: MakeMessage
) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with (
        make_channel(endpoint_url=f"http://127.0.0.1:{port}") as channel,
        pytest.raises(TransientDeliveryError) as raised,
    ):
        channel.send(make_message())

    assert "nothing was sent" in str(raised.value)
    assert SECRET_ACCESS_KEY not in str(raised.value)


def test_a_message_with_no_sender_is_refused_before_any_request(
    ses: FakeSes, make_channel: MakeChannel, make_message: MakeMessage
) -> None:
    with make_channel(sender="") as channel, pytest.raises(PermanentDeliveryError, match="sender"):
        channel.send(make_message())

    assert ses.arrived == 0


def test_a_key_too_long_for_an_ses_tag_is_refused_before_any_request(
    ses: FakeSes, make_channel: MakeChannel, make_message: MakeMessage
) -> None:
    with make_channel() as channel, pytest.raises(PermanentDeliveryError, match="256"):
        channel.send(make_message(idempotency_key=":" * 100))

    assert ses.arrived == 0


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"region": "Ireland"}, "region"),
        ({"access_key_id": "AKIAONLYHALF"}, "access_key_id"),
        ({"content": "html"}, "content"),
        ({"endpoint_url": "ftp://127.0.0.1"}, "endpoint_url"),
    ],
)
def test_bad_options_name_the_key(options: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as raised:
        read_options(SesOptions, options, where="channels.email", file="program.toml")

    assert key in str(raised.value)
    assert "program.toml" in str(raised.value)


# 21 characters of 4 UTF-8 bytes each, written _XX, fit SES's 256; longer keys are refused.
@given(st.text(max_size=21))
def test_every_outbox_key_reads_back_from_its_tag(key: str) -> None:
    value = tag_value(key)

    assert all(c.isascii() and (c.isalnum() or c in "_-") for c in value)
    assert key_from_tag(value) == key


@pytest.mark.parametrize("value", ["a:b", "_4", "_zz", "a b", "_FF"])
def test_a_tag_value_we_did_not_write_reads_as_no_key(value: str) -> None:
    assert key_from_tag(value) is None


@pytest.mark.parametrize(
    ("exc", "error"),
    [
        (EndpointConnectionError(endpoint_url=URL), TransientDeliveryError),
        (ConnectTimeoutError(endpoint_url=URL), TransientDeliveryError),
        (SSLError(endpoint_url=URL, error="handshake"), TransientDeliveryError),
        (ProxyConnectionError(proxy_url=URL, error="refused"), TransientDeliveryError),
        (NoCredentialsError(), TransientDeliveryError),
        (ReadTimeoutError(endpoint_url=URL), UnknownOutcomeError),
        (ConnectionClosedError(endpoint_url=URL), UnknownOutcomeError),
    ],
)
def test_what_botocore_raises_without_an_answer_maps_to_sent_or_not(
    exc: Exception, error: type[DeliveryError]
) -> None:
    # Raised before the request left: transient; after: the outcome is unknown.
    assert type(transport_error(exc, doing="sending k")) is error  # type: ignore[arg-type]
