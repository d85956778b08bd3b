"""The Postmark channel against the local fake of Postmark's API: what it sends, how it reads
every documented answer, batches, and the engine delivering through it under faults."""

from __future__ import annotations

import socket
from collections.abc import Callable
from datetime import timedelta
from email.header import decode_header, make_header
from email.utils import formataddr, parseaddr
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from conftest import TOKEN, MakeChannel, MakeMessage
from hypothesis import given
from hypothesis import strategies as st

import onetomany_postmark
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
from onetomany.model import DeliveryResult, OutboxStatus
from onetomany.model.clock import FrozenClock
from onetomany.plugins.settings import PluginSettings
from onetomany.program import Audience, Program, Touch
from onetomany.rules.triggers import EventTrigger
from onetomany.store import NewTouch, Store
from onetomany.testing import make_plugins
from onetomany_postmark import PostmarkChannel, key_from_metadata
from onetomany_postmark.testing import FakePostmark
from onetomany_postmark.wire import _address, metadata

_PLAIN = st.from_regex(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,70}@[a-z0-9.-]{1,30}\.[a-z]{2,6}", fullmatch=True
)


def test_a_message_is_posted_as_postmark_documents_it(
    postmark: FakePostmark, make_channel: MakeChannel, make_message: MakeMessage
) -> None:
    message = make_message(idempotency_key="acme:welcome:ct-1:1", reply_to="cs@acme.test")

    result = make_channel().send(message)

    [sent] = postmark.accepted
    assert result == DeliveryResult(provider_message_id=sent["MessageID"], detail="OK")
    assert sent["From"] == "Success Team <success@example.com>"
    assert sent["To"] == message.to
    assert sent["Subject"] == "Welcome aboard"
    assert sent["HtmlBody"] == message.html
    assert sent["TextBody"] == message.text
    assert sent["ReplyTo"] == "cs@acme.test"
    assert sent["MessageStream"] == "outbound"
    assert sent["Tag"] == "welcome"
    assert sent["Metadata"] == {"onetomany_key": "acme:welcome:ct-1:1"}
    assert sent["Headers"] == [{"Name": "List-Unsubscribe", "Value": "<https://acme.test/u/1>"}]


def test_a_display_name_with_punctuation_is_quoted(
    postmark: FakePostmark, make_channel: MakeChannel, make_message: MakeMessage
) -> None:
    make_channel(sender="Ana Souza Jr. <ana@acme.test>").send(make_message())

    assert postmark.accepted[0]["From"] == '"Ana Souza Jr." <ana@acme.test>'


@given(
    address=st.one_of(
        _PLAIN,
        st.emails(),
        st.builds(mailbox, st.text(max_size=30), _PLAIN | st.emails()),  # what Message.to holds
        st.text(max_size=60),
    )
)
def test_an_address_is_written_as_parsing_it_would_write_it(address: str) -> None:
    # The common forms skip parseaddr: that must change nothing, for any ASCII address; a
    # non-ASCII one either goes with its domain in IDNA form or is a permanent error.
    written = _outcome(lambda value: _address("To", value), address)
    expected = _outcome(_with_parseaddr, address)
    if expected is UnicodeEncodeError:
        assert written is PermanentDeliveryError or (isinstance(written, str) and written.isascii())
    else:
        assert written == expected


def test_an_internationalised_domain_is_sent_in_idna_form(
    postmark: FakePostmark, make_channel: MakeChannel, make_message: MakeMessage
) -> None:
    make_channel().send(make_message(to="José Müller <jose@müller.example>"))

    to = postmark.accepted[0]["To"]
    assert parseaddr(to)[1] == "jose@xn--mller-kva.example"
    assert to.isascii()
    assert str(make_header(decode_header(parseaddr(to)[0]))) == "José Müller"


def test_a_non_ascii_mailbox_name_is_a_permanent_error_naming_it(
    make_channel: MakeChannel, make_message: MakeMessage
) -> None:
    with pytest.raises(PermanentDeliveryError, match=r"'zoë@acme\.test' has a non-ASCII mailbox"):
        make_channel().send(make_message(to="Zoë <zoë@acme.test>"))


def _with_parseaddr(value: str) -> str:
    name, address = parseaddr(value)
    return formataddr((name, address)) if address else value


def _outcome(write: Callable[[str], str], address: str) -> object:
    try:
        return write(address)
    except (UnicodeError, PermanentDeliveryError) as exc:
        return type(exc)


@given(key=st.text(min_size=1, max_size=700))
def test_the_outbox_key_survives_metadata_whatever_its_length(key: str) -> None:
    fields = metadata(key)

    assert key_from_metadata(fields) == key
    assert len(fields) <= 10
    assert all(len(name) <= 20 and len(value) <= 80 for name, value in fields.items())


def test_a_key_metadata_cannot_hold_is_permanent(
    make_channel: MakeChannel, make_message: MakeMessage
) -> None:
    with pytest.raises(PermanentDeliveryError, match="longer than Postmark metadata holds"):
        make_channel().send(make_message(idempotency_key="k" * 801))


def test_a_batch_goes_in_calls_of_500_with_outcomes_in_order(
    postmark: FakePostmark, make_channel: MakeChannel, make_message: MakeMessage
) -> None:
    messages = [make_message() for _ in range(1_200)]
    postmark.inactive.add("ana7@customer.example")
    channel = make_channel()

    with channel:
        outcomes = list(channel.send_many(messages))

    assert postmark.calls == 3  # 500 + 500 + 200
    assert postmark.connections == 1  # one kept-alive connection
    assert len(outcomes) == 1_200
    refused = [i for i, o in enumerate(outcomes) if isinstance(o, PermanentDeliveryError)]
    assert refused == [6]
    assert "ErrorCode 406" in str(outcomes[6])
    ids = [o.provider_message_id for o in outcomes if isinstance(o, DeliveryResult)]
    assert ids == [m["MessageID"] for m in postmark.accepted]


def test_a_message_that_cannot_be_written_keeps_its_place_in_the_batch(
    postmark: FakePostmark, make_channel: MakeChannel, make_message: MakeMessage
) -> None:
    messages = [make_message(), make_message(sender="", idempotency_key="k" * 900), make_message()]

    outcomes = list(make_channel().send_many(messages))

    assert [type(o) for o in outcomes] == [DeliveryResult, PermanentDeliveryError, DeliveryResult]
    assert postmark.calls == 1


@pytest.mark.parametrize(
    ("script", "error", "retry_after"),
    [
        ("rate_limited", TransientDeliveryError, 30.0),
        ("transient", TransientDeliveryError, 30.0),
        ("permanent", PermanentDeliveryError, None),
        ("no_answer", UnknownOutcomeError, None),
    ],
)
def test_a_whole_batch_shares_the_calls_fate(
    postmark: FakePostmark,
    make_channel: MakeChannel,
    make_message: MakeMessage,
    script: str,
    error: type[Exception],
    retry_after: float | None,
) -> None:
    postmark.retry_after = "30"
    postmark.script(script)

    outcomes = list(make_channel().send_many([make_message() for _ in range(3)]))

    first = outcomes[0]
    assert type(first) is error
    assert getattr(first, "retry_after", None) == retry_after
    if script != "permanent":  # a refusal is one message's; a failed call is everyone's
        assert all(type(o) is error for o in outcomes)


def test_429_honours_retry_after_as_an_http_date(
    postmark: FakePostmark, make_channel: MakeChannel, make_message: MakeMessage, clock: FrozenClock
) -> None:
    from email.utils import format_datetime

    postmark.retry_after = format_datetime(clock.now() + timedelta(minutes=2), usegmt=True)
    postmark.script("rate_limited")

    with pytest.raises(TransientDeliveryError, match="HTTP 429") as caught:
        make_channel().send(make_message())

    assert caught.value.retry_after == 120.0


@pytest.mark.parametrize(
    ("options", "message_fields", "error", "text"),
    [
        ({"server_token": "wrong"}, {}, TransientDeliveryError, "ErrorCode 10"),
        ({}, {"to": "not an address"}, PermanentDeliveryError, "ErrorCode 300"),
        ({}, {"text": "", "html": ""}, PermanentDeliveryError, "TextBody or HtmlBody"),
        ({"base_url": "http://127.0.0.1:1"}, {}, TransientDeliveryError, "nothing was sent"),
    ],
)
def test_documented_answers_map_to_their_errors(
    make_channel: MakeChannel,
    make_message: MakeMessage,
    options: dict[str, Any],
    message_fields: dict[str, Any],
    error: type[Exception],
    text: str,
) -> None:
    with pytest.raises(error, match=text) as caught:
        make_channel(**options).send(make_message(**message_fields))

    assert type(caught.value) is error
    assert "wrong" not in str(caught.value)
    assert TOKEN not in str(caught.value)


def test_an_answer_too_slow_for_the_timeout_is_unknown(
    make_channel: MakeChannel, make_message: MakeMessage
) -> None:
    # Accepts the connection in the kernel and never answers.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        channel = make_channel(base_url=f"http://127.0.0.1:{port}", timeout=0.2)

        with pytest.raises(UnknownOutcomeError, match="may have accepted it") as caught:
            channel.send(make_message())

    assert "ReadTimeout" in str(caught.value)


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({}, "server_token"),
        ({"server_token": "t", "batch_size": 501}, "batch_size"),
        ({"server_token": "t", "base_url": "ftp://api.test"}, "base_url"),
        ({"server_token": "t", "timeout": 0}, "timeout"),
        ({"server_token": "t", "sender": "nobody"}, "sender"),
    ],
)
def test_a_bad_option_is_a_config_error_naming_it(options: dict[str, Any], key: str) -> None:
    settings = PluginSettings(name="email", plugin="postmark", options=options, origin="p.toml")

    with pytest.raises(ConfigError) as caught:
        PostmarkChannel(settings)

    assert caught.value.key == f"channels.email.{key}"


def test_the_distribution_declares_its_entry_point() -> None:
    [entry_point] = entry_points(group="onetomany", name="postmark")

    assert entry_point.load() is onetomany_postmark
    assert entry_point.dist is not None
    assert entry_point.dist.name == "onetomany-postmark"
    plugins = make_plugins(("postmark", onetomany_postmark))
    assert plugins.channels().get("postmark").value is PostmarkChannel


# -- the engine, through the plugin, against a faulty provider --------------------------------


def _engine(tmp_path: Path, url: str, clock: FrozenClock, **engine_options: Any) -> Engine:
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
                plugin="postmark",
                options={"server_token": TOKEN, "base_url": url, "timeout": 2},
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
        plugins=make_plugins(("postmark", onetomany_postmark)),
        retry=RetryPolicy(max_attempts=30, initial=1, maximum=60, jitter=1),
        **engine_options,
    )


@pytest.mark.parametrize("record_every", [1, 20])  # message by message, and batches of 20
def test_a_provider_failing_30_percent_of_calls_still_delivers_everything_once(
    tmp_path: Path, clock: FrozenClock, record_every: int
) -> None:
    with FakePostmark(token=TOKEN, seed=7) as postmark:
        postmark.fail_ratio = 0.3
        engine = _engine(tmp_path, postmark.url, clock, record_every=record_every)
        people = [
            Contact(id=f"c{i}", account_id="a1", email=f"c{i}@northwind.test", role="admin")
            for i in range(300)
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

    keys = [m["Metadata"]["onetomany_key"] for m in postmark.accepted]
    assert statuses == {OutboxStatus.SENT}
    assert sorted(keys) == sorted(f"acme:welcome:{c.id}" for c in people)  # all, once each
    assert failed  # the faults did happen
    assert all("HTTP 429" in d.error or "HTTP 503" in d.error for d in failed if d.error)
