"""The Mailgun channel against the local fake of Mailgun's messages API: what it sends, the
region's address, how it reads every documented answer, and the engine delivering through it
under faults."""

from __future__ import annotations

import socket
from datetime import timedelta
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from conftest import API_KEY, DOMAIN, MakeChannel, MakeMessage
from hypothesis import given
from hypothesis import strategies as st

import onetomany_mailgun
from onetomany import Account, Contact
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
from onetomany_mailgun import MailgunChannel, wire
from onetomany_mailgun.testing import FakeMailgun


def test_a_message_is_posted_as_mailgun_documents_it(
    mailgun: FakeMailgun, make_channel: MakeChannel, make_message: MakeMessage
) -> None:
    message = make_message(idempotency_key="acme:welcome:ct-1:1", reply_to="cs@acme.test")

    result = make_channel(tags=["onboarding"]).send(message)

    [sent] = mailgun.accepted
    assert result == DeliveryResult(provider_message_id=sent["id"], detail="Queued. Thank you.")
    assert sent["id"].endswith(f"@{DOMAIN}>")
    assert sent["from"] == "Success Team <success@mg.acme.test>"
    assert sent["to"] == message.to
    assert sent["subject"] == "Welcome aboard"
    assert (sent["text"], sent["html"]) == (message.text, message.html)
    assert sent["h:Reply-To"] == "cs@acme.test"
    assert sent["h:List-Unsubscribe"] == "<https://acme.test/u/1>"
    assert sent["o:tag"] == ["onboarding", "welcome"]
    assert sent["v:onetomany-key"] == "acme:welcome:ct-1:1"


def test_the_api_key_travels_as_basic_auth_only(make_channel: MakeChannel) -> None:
    channel = make_channel()

    assert channel.session().auth == ("api", API_KEY)
    assert API_KEY not in repr(channel.options) and API_KEY not in repr(channel.settings)


@pytest.mark.parametrize(
    ("region", "url"),
    [
        ("us", f"https://api.mailgun.net/v3/{DOMAIN}/messages"),
        ("eu", f"https://api.eu.mailgun.net/v3/{DOMAIN}/messages"),
        ("EU", f"https://api.eu.mailgun.net/v3/{DOMAIN}/messages"),
    ],
)
def test_the_region_picks_the_api_address(region: str, url: str) -> None:
    options = {"api_key": "k", "domain": DOMAIN, "region": region}
    channel = MailgunChannel(PluginSettings(name="email", plugin="mailgun", options=options))

    assert channel.url == url


@given(key=st.text(min_size=1, max_size=300), tags=st.lists(st.text(max_size=200), max_size=6))
def test_the_key_always_rides_along_and_tags_stay_within_mailgun_limits(
    key: str, tags: list[str]
) -> None:
    message = Message(
        idempotency_key=key, channel="email", kind=ChannelKind.EMAIL, to="a@b.test", text="t"
    )

    fields = wire.form(message, sender="s@acme.test", tags=tuple(tags))

    assert (f"v:{wire.KEY_VARIABLE}", key) in fields
    sent_tags = [value for name, value in fields if name == "o:tag"]
    assert len(sent_tags) <= wire.MAX_TAGS and all(len(t) <= 128 for t in sent_tags)


def test_429_honours_retry_after(
    mailgun: FakeMailgun, make_channel: MakeChannel, make_message: MakeMessage
) -> None:
    mailgun.retry_after = "45"
    mailgun.script("rate_limited")

    with pytest.raises(TransientDeliveryError, match="HTTP 429: Too many requests") as caught:
        make_channel().send(make_message())

    assert caught.value.retry_after == 45.0


@pytest.mark.parametrize(
    ("options", "script", "fields", "error", "text"),
    [
        ({"api_key": "key-wrong"}, None, {}, PermanentDeliveryError, "HTTP 401.*Forbidden"),
        ({"domain": "mg.other.test"}, None, {}, PermanentDeliveryError, "Domain not found"),
        (
            {},
            None,
            {"to": "ana@nowhere"},
            PermanentDeliveryError,
            "HTTP 400.*to parameter is not a valid address",
        ),
        ({}, "permanent", {}, PermanentDeliveryError, "HTTP 400"),
        ({}, "too_large", {}, PermanentDeliveryError, "HTTP 413.*too large"),
        ({}, "transient", {}, TransientDeliveryError, "HTTP 503"),
        ({"base_url": "http://127.0.0.1:1"}, None, {}, TransientDeliveryError, "nothing was sent"),
    ],
)
def test_documented_answers_map_to_their_errors(
    mailgun: FakeMailgun,
    make_channel: MakeChannel,
    make_message: MakeMessage,
    options: dict[str, Any],
    script: str | None,
    fields: dict[str, Any],
    error: type[Exception],
    text: str,
) -> None:
    if script:
        mailgun.script(script)

    with pytest.raises(error, match=text) as caught:
        make_channel(**options).send(make_message(**fields))

    assert type(caught.value) is error
    assert API_KEY not in str(caught.value) and "key-wrong" not in str(caught.value)


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
        ({"domain": DOMAIN}, "api_key"),
        ({"api_key": "k"}, "domain"),
        ({"api_key": "k", "domain": "not a domain"}, "domain"),
        ({"api_key": "k", "domain": DOMAIN, "region": "asia"}, "region"),
        ({"api_key": "k", "domain": DOMAIN, "base_url": "ftp://api.test"}, "base_url"),
        ({"api_key": "k", "domain": DOMAIN, "timeout": 0}, "timeout"),
        ({"api_key": "k", "domain": DOMAIN, "sender": "nobody"}, "sender"),
    ],
)
def test_a_bad_option_is_a_config_error_naming_it(options: dict[str, Any], key: str) -> None:
    settings = PluginSettings(name="email", plugin="mailgun", options=options, origin="p.toml")

    with pytest.raises(ConfigError) as caught:
        MailgunChannel(settings)

    assert caught.value.key == f"channels.email.{key}"
    assert caught.value.file == "p.toml"


def test_the_distribution_declares_its_entry_point() -> None:
    [entry_point] = entry_points(group="onetomany", name="mailgun")

    assert entry_point.load() is onetomany_mailgun
    assert entry_point.dist is not None and entry_point.dist.name == "onetomany-mailgun"
    plugins = make_plugins(("mailgun", onetomany_mailgun))
    assert plugins.channels().get("mailgun").value is MailgunChannel
    assert "mailgun" in plugins.webhook_parsers().names()


def _engine(tmp_path: Path, url: str, clock: FrozenClock) -> Engine:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "welcome.mjml").write_text(
        '+++\nsubject = "Welcome"\n+++\n<mjml><mj-body><mj-section><mj-column>'
        "<mj-text>Hi {{ contact.name }}</mj-text></mj-column></mj-section></mj-body></mjml>\n"
    )
    options = {"api_key": API_KEY, "domain": DOMAIN, "base_url": url, "timeout": 2}
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
        channels={"email": PluginSettings(name="email", plugin="mailgun", options=options)},
        templates_dir=templates,
        sender="Acme <success@acme.test>",
        base_dir=tmp_path,
    )
    return Engine(
        program,
        store=Store(tmp_path / "store.db"),
        clock=clock,
        plugins=make_plugins(("mailgun", onetomany_mailgun)),
        retry=RetryPolicy(max_attempts=30, initial=1, maximum=60, jitter=1),
    )


def test_a_provider_failing_30_percent_of_calls_still_delivers_everything_once(
    tmp_path: Path, clock: FrozenClock
) -> None:
    with FakeMailgun(api_key=API_KEY, domain=DOMAIN, seed=11) as mailgun:
        mailgun.fail_ratio = 0.3
        engine = _engine(tmp_path, mailgun.url, clock)
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

    keys = [m["v:onetomany-key"] for m in mailgun.accepted]
    assert statuses == {OutboxStatus.SENT}
    assert sorted(keys) == sorted(f"acme:welcome:{c.id}" for c in people)  # all, once each
    assert failed
    assert all("HTTP 429" in d.error or "HTTP 503" in d.error for d in failed if d.error)
