"""The SendGrid channel against the local fake of SendGrid's Mail Send API (every request
validated against SendGrid's OpenAPI document): what it sends, how it reads every documented
answer, and the engine delivering through it under faults."""

from __future__ import annotations

import socket
from datetime import timedelta
from email.utils import parseaddr
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from conftest import API_KEY, MakeChannel, MakeMessage, openapi_check
from hypothesis import given
from hypothesis import strategies as st

import onetomany_sendgrid
from onetomany import Account, Contact
from onetomany.delivery.mime import mailbox
from onetomany.delivery.retry import RetryPolicy
from onetomany.engine import Engine
from onetomany.errors import (
    ConfigError,
    PermanentDeliveryError,
    TransientDeliveryError,
    UnknownOutcomeError,
)
from onetomany.model import ChannelKind, DeliveryResult, Message, OutboxStatus
from onetomany.model.clock import FrozenClock
from onetomany.plugins.settings import PluginSettings
from onetomany.program import Audience, Program, Touch
from onetomany.rules.triggers import EventTrigger
from onetomany.store import NewTouch, Store
from onetomany.testing import make_plugins
from onetomany_sendgrid import SendGridChannel, wire
from onetomany_sendgrid.testing import FakeSendGrid

_PLAIN = st.from_regex(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,70}@[a-z0-9.-]{1,30}\.[a-z]{2,6}", fullmatch=True
)


def test_a_message_is_posted_as_sendgrid_documents_it(
    sendgrid: FakeSendGrid, make_channel: MakeChannel, make_message: MakeMessage
) -> None:
    message = make_message(idempotency_key="acme:welcome:ct-1:1", reply_to="cs@acme.test")

    result = make_channel(categories=["onboarding"]).send(message)

    [sent] = sendgrid.accepted
    assert result == DeliveryResult(provider_message_id=sent["message_id"], detail="Accepted")
    assert sent["personalizations"] == [
        {
            "to": [{"email": message.to.split("<")[1].rstrip(">"), "name": "Ana Souza"}],
            "custom_args": {"onetomany_key": "acme:welcome:ct-1:1"},
        }
    ]
    assert sent["from"] == {"email": "success@example.com", "name": "Success Team"}
    assert sent["subject"] == "Welcome aboard"
    assert sent["content"] == [
        {"type": "text/plain", "value": message.text},
        {"type": "text/html", "value": message.html},
    ]
    assert sent["reply_to"] == {"email": "cs@acme.test"}
    assert sent["headers"] == {"List-Unsubscribe": "<https://acme.test/u/1>"}
    assert sent["categories"] == ["onboarding", "welcome"]


def test_the_api_key_travels_as_a_bearer_token_only(
    sendgrid: FakeSendGrid, make_channel: MakeChannel
) -> None:
    channel = make_channel()

    assert channel.session().headers["Authorization"] == f"Bearer {API_KEY}"
    assert API_KEY not in repr(channel.options) and API_KEY not in repr(channel.settings)


@given(
    key=st.text(min_size=1, max_size=300),
    headers=st.dictionaries(st.sampled_from(["X-A", "To", "From", "x-sg-id", "X-B"]), st.text()),
)
def test_every_key_rides_along_and_reserved_headers_never_do(
    key: str, headers: dict[str, str]
) -> None:
    message = Message(
        idempotency_key=key,
        channel="email",
        kind=ChannelKind.EMAIL,
        to="a@b.test",
        subject="s",
        text="t",
        headers=headers,
    )

    document = wire.body(message, sender="s@acme.test")

    assert document["personalizations"][0]["custom_args"] == {"onetomany_key": key}
    sent = {name.lower() for name in document.get("headers", {})}
    assert not sent & wire.RESERVED_HEADERS


def test_429_waits_for_the_rate_limit_reset(
    sendgrid: FakeSendGrid, make_channel: MakeChannel, make_message: MakeMessage, clock: FrozenClock
) -> None:
    sendgrid.now = lambda: clock.now().timestamp()
    sendgrid.retry_after = "90"
    sendgrid.script("rate_limited")

    with pytest.raises(TransientDeliveryError, match="HTTP 429") as caught:
        make_channel().send(make_message())

    assert caught.value.retry_after == pytest.approx(90.0, abs=1)


def test_503_honours_retry_after(
    sendgrid: FakeSendGrid, make_channel: MakeChannel, make_message: MakeMessage
) -> None:
    sendgrid.retry_after = "30"
    sendgrid.script("transient")

    with pytest.raises(TransientDeliveryError, match="HTTP 503") as caught:
        make_channel().send(make_message())

    assert caught.value.retry_after == 30.0


@pytest.mark.parametrize(
    ("options", "script", "fields", "error", "text"),
    [
        ({"api_key": "SG.wrong"}, None, {}, PermanentDeliveryError, "HTTP 401.*grant is invalid"),
        (
            {},
            None,
            {"to": "ana@nowhere"},
            PermanentDeliveryError,
            r"HTTP 400.*personalizations\.0\.to\.0\.email: Does not contain a valid address",
        ),
        ({}, "forbidden", {}, PermanentDeliveryError, "HTTP 403.*verified Sender Identity"),
        ({}, "too_large", {}, PermanentDeliveryError, "HTTP 413.*too large"),
        ({"base_url": "http://127.0.0.1:1"}, None, {}, TransientDeliveryError, "nothing was sent"),
        ({}, None, {"subject": ""}, PermanentDeliveryError, "needs a subject"),
    ],
)
def test_documented_answers_map_to_their_errors(
    sendgrid: FakeSendGrid,
    make_channel: MakeChannel,
    make_message: MakeMessage,
    options: dict[str, Any],
    script: str | None,
    fields: dict[str, Any],
    error: type[Exception],
    text: str,
) -> None:
    if script:
        sendgrid.script(script)

    with pytest.raises(error, match=text) as caught:
        make_channel(**options).send(make_message(**fields))

    assert type(caught.value) is error
    assert API_KEY not in str(caught.value) and "SG.wrong" not in str(caught.value)


def test_an_answer_too_slow_for_the_timeout_is_unknown(
    make_channel: MakeChannel, make_message: MakeMessage
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        channel = make_channel(base_url=f"http://127.0.0.1:{port}", timeout=0.2)

        with pytest.raises(UnknownOutcomeError, match="may have accepted it"):
            channel.send(make_message())


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({}, "api_key"),
        ({"api_key": "k", "base_url": "ftp://api.test"}, "base_url"),
        ({"api_key": "k", "timeout": 0}, "timeout"),
        ({"api_key": "k", "sender": "nobody"}, "sender"),
        ({"api_key": "k", "webhook_public_key": "not a key"}, "webhook_public_key"),
        ({"api_key": "k", "webhook_max_age_seconds": -1}, "webhook_max_age_seconds"),
    ],
)
def test_a_bad_option_is_a_config_error_naming_it(options: dict[str, Any], key: str) -> None:
    settings = PluginSettings(name="email", plugin="sendgrid", options=options, origin="p.toml")

    with pytest.raises(ConfigError) as caught:
        SendGridChannel(settings)

    assert caught.value.key == f"channels.email.{key}"
    assert caught.value.file == "p.toml"


def test_the_distribution_declares_its_entry_point() -> None:
    [entry_point] = entry_points(group="onetomany", name="sendgrid")

    assert entry_point.load() is onetomany_sendgrid
    assert entry_point.dist is not None and entry_point.dist.name == "onetomany-sendgrid"
    plugins = make_plugins(("sendgrid", onetomany_sendgrid))
    assert plugins.channels().get("sendgrid").value is SendGridChannel
    assert "sendgrid" in plugins.webhook_parsers().names()


# -- the engine, through the plugin, against a faulty provider --------------------------------


def _engine(tmp_path: Path, url: str, clock: FrozenClock) -> Engine:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "welcome.mjml").write_text(
        '+++\nsubject = "Welcome"\n+++\n<mjml><mj-body><mj-section><mj-column>'
        "<mj-text>Hi {{ contact.name }}</mj-text></mj-column></mj-section></mj-body></mjml>\n"
    )
    program = Program(
        name="acme",
        touches=(
            Touch(
                name="welcome",
                trigger=EventTrigger(event="signed_up"),
                channel="email",
                template="welcome",
                audience=Audience(roles=("admin",)),
            ),
        ),
        channels={
            "email": PluginSettings(
                name="email",
                plugin="sendgrid",
                options={"api_key": API_KEY, "base_url": url, "timeout": 2},
            )
        },
        templates_dir=templates,
        sender="Acme <success@acme.test>",
        base_dir=tmp_path,
    )
    return Engine(
        program,
        store=Store(tmp_path / "store.db"),
        clock=clock,
        plugins=make_plugins(("sendgrid", onetomany_sendgrid)),
        retry=RetryPolicy(max_attempts=30, initial=1, maximum=60, jitter=1),
    )


def test_a_provider_failing_30_percent_of_calls_still_delivers_everything_once(
    tmp_path: Path, clock: FrozenClock
) -> None:
    with FakeSendGrid(api_key=API_KEY, seed=7) as sendgrid:
        sendgrid.fail_ratio = 0.3
        sendgrid.now = lambda: clock.now().timestamp()
        engine = _engine(tmp_path, sendgrid.url, clock)
        people = [
            Contact(id=f"c{i}", account_id="a1", email=f"c{i}@northwind.test", role="admin")
            for i in range(120)
        ]
        engine.identify(Account(id="a1", name="Northwind"), *people)
        engine.store.enqueue(
            [
                NewTouch(
                    idempotency_key=f"acme:welcome:{c.id}",
                    program="acme",
                    touch="welcome",
                    channel="email",
                    template="welcome",
                    contact_id=c.id,
                    account_id="a1",
                    available_at=clock.now(),
                )
                for c in people
            ],
            now=clock.now(),
        )
        with engine:
            for _ in range(60):
                engine.dispatch()
                if not engine.store.outbox_rows(status=OutboxStatus.PENDING):
                    break
                clock.advance(timedelta(minutes=2))
            statuses = {row.status for row in engine.store.outbox_rows()}
            failed = [d for d in engine.store.deliveries() if d.status == "retrying"]

    keys = [m["personalizations"][0]["custom_args"]["onetomany_key"] for m in sendgrid.accepted]
    assert statuses == {OutboxStatus.SENT}
    assert sorted(keys) == sorted(f"acme:welcome:{c.id}" for c in people)  # all, once each
    assert failed  # the faults did happen
    assert all("HTTP 429" in d.error or "HTTP 503" in d.error for d in failed if d.error)


def test_the_openapi_check_refuses_what_the_document_does_not_allow(openapi: Any) -> None:
    # The module imports openapi_check when it is collected: by the time a test runs, another
    # plugin's conftest may be the one named ``conftest``.
    check = openapi_check(openapi)
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    good = b'{"personalizations":[{"to":[{"email":"a@b.test"}]}],"from":{"email":"s@acme.test"}}'
    check("POST", "/v3/mail/send", headers, good)

    for bad in (
        b'{"personalizations":[{"to":[{"email":"a@b.test"}]}]}',  # no from
        b'{"personalizations":[{"to":[{"name":"x"}]}],"from":{"email":"s@acme.test"}}',
        b'{"personalizations":[{"to":[{"email":"a@b.test"}],"custom_args":"k"}],'
        b'"from":{"email":"s@acme.test"}}',
    ):
        with pytest.raises(ValueError, match=r"\S"):
            check("POST", "/v3/mail/send", headers, bad)


@given(
    address=st.one_of(
        _PLAIN,
        st.emails(),
        st.builds(mailbox, st.text(max_size=30), _PLAIN | st.emails()),  # what Message.to holds
        st.text(max_size=60),
    )
)
def test_an_address_is_split_as_parseaddr_splits_it(address: str) -> None:
    # Plain addresses skip parseaddr: that must change nothing, for any input.
    name, found = parseaddr(address)
    expected = {"email": found or address} | ({"name": name} if name else {})

    assert wire._address(address) == expected
