"""The Twilio channel against the local fake of Twilio's Messages API, every request checked
against Twilio's OpenAPI document: what it sends, how it reads each documented answer, and the
engine delivering through it under faults."""

from __future__ import annotations

import base64
from importlib.metadata import entry_points
from typing import Any

import pytest
from conftest import SENDER, TOKEN, MakeChannel, MakeMessage, openapi_check
from hypothesis import given
from hypothesis import strategies as st
from openapi_core import OpenAPI

import onetomany_twilio
from onetomany.errors import (
    ConfigError,
    PermanentDeliveryError,
    TransientDeliveryError,
    UnknownOutcomeError,
)
from onetomany.model import ChannelKind, DeliveryResult, Message
from onetomany.plugins.settings import PluginSettings
from onetomany.testing import make_plugins
from onetomany_twilio import TwilioChannel, e164, key_from_callback
from onetomany_twilio.channel import with_key
from onetomany_twilio.testing import ACCOUNT_SID, FakeTwilio

PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"


def test_an_sms_is_posted_as_twilio_documents_it(
    twilio: FakeTwilio, make_channel: MakeChannel, make_message: MakeMessage
) -> None:
    message = make_message(idempotency_key="acme:trial-ending:ct-1:1", to="+1 (415) 555-0123")

    result = make_channel().send(message)

    [sent] = twilio.accepted
    assert result == DeliveryResult(provider_message_id=sent["sid"], detail="queued, 1 segment(s)")
    assert sent["To"] == "+14155550123"
    assert sent["From"] == SENDER
    assert sent["Body"] == message.text.strip()
    assert key_from_callback(sent["StatusCallback"]) == "acme:trial-ending:ct-1:1"
    assert sent["StatusCallback"].startswith("https://hooks.acme.example/twilio/status?")


def test_whatsapp_goes_through_the_same_api_with_the_channel_prefix(
    twilio: FakeTwilio, make_channel: MakeChannel, make_message: MakeMessage
) -> None:
    channel = make_channel(kind="whatsapp")

    channel.send(make_message(kind=ChannelKind.WHATSAPP, to="+5511912345678"))

    assert channel.serves is ChannelKind.WHATSAPP
    assert twilio.accepted[0]["To"] == "whatsapp:+5511912345678"
    assert twilio.accepted[0]["From"] == f"whatsapp:{SENDER}"


def test_a_messaging_service_replaces_the_sender(
    twilio: FakeTwilio, make_channel: MakeChannel, make_message: MakeMessage
) -> None:
    service = "MG" + "ab" * 16
    make_channel(sender="", messaging_service_sid=service).send(make_message())

    assert twilio.accepted[0]["MessagingServiceSid"] == service
    assert "From" not in twilio.accepted[0]


def test_a_national_number_is_read_in_the_default_region(
    twilio: FakeTwilio, make_channel: MakeChannel, make_message: MakeMessage
) -> None:
    make_channel(default_region="GB").send(make_message(to="07400 123456"))

    assert twilio.accepted[0]["To"] == "+447400123456"


@pytest.mark.parametrize("to", ["not a number", "+1 555", "0740012345"])
def test_a_recipient_that_is_no_phone_number_is_refused_before_any_request(
    twilio: FakeTwilio, make_channel: MakeChannel, make_message: MakeMessage, to: str
) -> None:
    with pytest.raises(PermanentDeliveryError, match="not a valid phone number"):
        make_channel().send(make_message(to=to))

    assert twilio.arrived == 0


def test_the_basic_auth_carries_the_account_and_token(openapi: OpenAPI) -> None:
    seen: list[str] = []

    def check(method: str, path: str, headers: Any, body: bytes) -> None:
        seen.append(headers["Authorization"])
        openapi_check(openapi)(method, path, headers, body)

    with FakeTwilio(auth_token=TOKEN, check=check) as fake:
        settings = PluginSettings(
            name="sms",
            plugin="twilio",
            options={"account_sid": ACCOUNT_SID, "auth_token": TOKEN, "sender": SENDER}
            | {"base_url": fake.url},
        )
        with TwilioChannel(settings) as channel:
            channel.send(
                Message(
                    idempotency_key="k", channel="sms", kind=ChannelKind.SMS, to=SENDER, text="hi"
                )
            )

    assert seen == ["Basic " + base64.b64encode(f"{ACCOUNT_SID}:{TOKEN}".encode()).decode()]
    assert fake.refused == []


@pytest.mark.parametrize(
    ("body", "headers", "problem"),
    [
        (b"To=%2B14155550100&Body=hi&MaxPrice=cheap", {"Authorization": "Basic eDp5"}, "cheap"),
        (b"Body=hi&From=%2B14155550100", {"Authorization": "Basic eDp5"}, "To"),
        (b"To=%2B14155550100&Body=hi", {}, "ecurity"),
    ],
)
def test_the_openapi_check_refuses_what_twilios_document_refuses(
    openapi: OpenAPI, body: bytes, headers: dict[str, str], problem: str
) -> None:
    headers = headers | {"Content-Type": "application/x-www-form-urlencoded"}

    with pytest.raises(ValueError, match=problem):
        openapi_check(openapi)("POST", PATH, headers, body)


@pytest.mark.parametrize(
    ("prepare", "error", "code"),
    [
        (lambda fake: fake.script("permanent"), PermanentDeliveryError, "error 21211"),
        (lambda fake: fake.landlines.add("+14155550199"), PermanentDeliveryError, "error 21614"),
        (lambda fake: fake.stopped.add("+14155550199"), PermanentDeliveryError, "error 21610"),
        (lambda fake: fake.script("rate_limited"), TransientDeliveryError, "error 20429"),
        (lambda fake: fake.script("transient"), TransientDeliveryError, "HTTP 503"),
        (lambda fake: setattr(fake, "auth_token", "rotated"), TransientDeliveryError, "20003"),
        (lambda fake: fake.script("no_answer"), UnknownOutcomeError, "may have accepted it"),
    ],
)
def test_documented_answers_map_to_their_errors(
    twilio: FakeTwilio,
    make_channel: MakeChannel,
    make_message: MakeMessage,
    prepare: Any,
    error: type[Exception],
    code: str,
) -> None:
    prepare(twilio)

    with pytest.raises(error, match=code) as caught:
        make_channel().send(make_message(to="+14155550199"))

    assert type(caught.value) is error
    assert TOKEN not in str(caught.value)
    assert twilio.arrived <= 1  # one attempt: retries belong to the dispatcher


def test_429_and_503_honour_retry_after(
    twilio: FakeTwilio, make_channel: MakeChannel, make_message: MakeMessage
) -> None:
    twilio.retry_after = "42"
    twilio.script("rate_limited", "transient")
    channel = make_channel()

    outcomes = list(channel.send_many([make_message(), make_message()]))

    assert [getattr(o, "retry_after", None) for o in outcomes] == [42.0, 42.0]


def test_no_connection_is_transient_and_nothing_was_sent(
    make_channel: MakeChannel, make_message: MakeMessage
) -> None:
    with pytest.raises(TransientDeliveryError, match="nothing was sent"):
        make_channel(base_url="http://127.0.0.1:1").send(make_message())


@given(key=st.text(min_size=1, max_size=300))
def test_the_outbox_key_survives_the_status_callback_url(key: str) -> None:
    url = with_key("https://hooks.acme.example/twilio?team=cs&onetomany_key=stale", key)

    assert key_from_callback(url) == key
    assert "team=cs" in url


@given(number=st.from_regex(r"\+1(415|212|646)55501[0-9]{2}", fullmatch=True))
def test_e164_is_a_fixed_point(number: str) -> None:
    assert e164(number) == number
    assert e164(e164(number) or "") == number


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({}, "account_sid"),
        ({"account_sid": "ACnope", "auth_token": "t", "sender": SENDER}, "account_sid"),
        ({"account_sid": ACCOUNT_SID, "sender": SENDER}, "auth_token"),
        ({"account_sid": ACCOUNT_SID, "auth_token": "t"}, "sender"),
        ({"account_sid": ACCOUNT_SID, "auth_token": "t", "sender": "555"}, "sender"),
        (
            {"account_sid": ACCOUNT_SID, "auth_token": "t", "messaging_service_sid": "MGx"},
            "messaging_service_sid",
        ),
        (
            {"account_sid": ACCOUNT_SID, "auth_token": "t", "sender": SENDER}
            | {"status_callback": "ftp://x"},
            "status_callback",
        ),
        (
            {"account_sid": ACCOUNT_SID, "auth_token": "t", "sender": SENDER}
            | {"default_region": "Narnia"},
            "default_region",
        ),
        (
            {"account_sid": ACCOUNT_SID, "auth_token": "t", "sender": SENDER, "kind": "email"},
            "kind",
        ),
    ],
)
def test_a_bad_option_is_a_config_error_naming_it(options: dict[str, Any], key: str) -> None:
    settings = PluginSettings(name="sms", plugin="twilio", options=options, origin="p.toml")

    with pytest.raises(ConfigError) as caught:
        TwilioChannel(settings)

    problems = getattr(caught.value, "errors", [caught.value])  # all at once, each named
    assert f"channels.sms.{key}" in {problem.key for problem in problems}


def test_the_distribution_declares_its_entry_point() -> None:
    [entry_point] = entry_points(group="onetomany", name="twilio")

    assert entry_point.load() is onetomany_twilio
    assert entry_point.dist is not None
    assert entry_point.dist.name == "onetomany-twilio"
    plugins = make_plugins(("twilio", onetomany_twilio))
    assert plugins.channels().get("twilio").value is TwilioChannel
