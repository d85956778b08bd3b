"""The Slack channel against the local fake of Slack, every chat.postMessage request checked
against Slack's web API document: the task's blocks, both ways in, and each documented answer."""

from __future__ import annotations

import json
from importlib.metadata import entry_points
from typing import Any

import pytest
from conftest import TOKEN, MakeChannel, MakeMessage, openapi_check
from hypothesis import given
from hypothesis import strategies as st
from openapi_core import OpenAPI

import onetomany_slack
from onetomany.errors import (
    ConfigError,
    PermanentDeliveryError,
    TransientDeliveryError,
    UnknownOutcomeError,
)
from onetomany.model import ChannelKind, DeliveryResult, Message
from onetomany.plugins.settings import PluginSettings
from onetomany.testing import make_plugins
from onetomany_slack import SlackChannel
from onetomany_slack.blocks import blocks
from onetomany_slack.testing import FakeSlack


def _texts(document: dict[str, Any]) -> str:
    return json.dumps(document["blocks"], ensure_ascii=False)


def test_a_task_is_posted_with_account_reason_ladder_and_due_date(
    slack: FakeSlack, make_channel: MakeChannel, make_message: MakeMessage
) -> None:
    message = make_message(idempotency_key="acme:welcome_call:ct-1:1")

    result = make_channel().send(message)

    [posted] = slack.posted
    assert result == DeliveryResult(provider_message_id=f"U024BE7LH/{posted['ts']}", detail="ok")
    assert posted["channel"] == "U024BE7LH"  # no channel option: the account owner
    shown = _texts(posted)
    assert "Northwind &lt;Traders&gt; (acct-9)" in shown  # escaped: no accidental markup
    assert "was not opened within 3 days" in shown
    assert "welcome by email, 2026-03-01T09:00:00+00:00" in shown
    assert "welcome_resend by email" in shown
    assert "*Due*\\n2026-03-09" in shown  # queued 2026-03-07, due two days later
    assert "Ana Souza, admin, ana@northwind.test" in shown
    assert posted["blocks"][0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "Call Northwind's admin"},
    }
    assert "Due 2026-03-09" in posted["text"]
    assert "acme:welcome_call:ct-1:1" in shown


def test_the_channel_option_and_the_due_date_option(
    slack: FakeSlack, make_channel: MakeChannel, make_message: MakeMessage
) -> None:
    make_channel(channel="#cs-tasks", due_in_days=5).send(make_message())

    assert slack.posted[0]["channel"] == "#cs-tasks"
    assert "2026-03-12" in _texts(slack.posted[0])


def test_an_incoming_webhook_gets_the_same_blocks_as_json(
    slack: FakeSlack, make_channel: MakeChannel, make_message: MakeMessage
) -> None:
    message = make_message()

    result = make_channel(webhook_url=slack.webhook_url).send(message)

    [posted] = slack.posted
    assert result.detail == "ok"
    assert "channel" not in posted  # the webhook fixes its channel
    assert posted["blocks"] == blocks(message, due="2026-03-09")


@pytest.mark.parametrize(
    ("prepare", "error", "text"),
    [
        (lambda f: f.script("transient"), TransientDeliveryError, "HTTP 429"),
        (lambda f: f.script("internal_error"), TransientDeliveryError, "internal_error"),
        (lambda f: f.script("permanent"), PermanentDeliveryError, "channel_not_found"),
        (lambda f: f.outside.add("U024BE7LH"), PermanentDeliveryError, "not_in_channel"),
        (lambda f: setattr(f, "token", "xoxb-rotated"), PermanentDeliveryError, "invalid_auth"),
        (lambda f: f.script("no_answer"), UnknownOutcomeError, "may have accepted it"),
    ],
)
def test_slacks_answers_map_to_their_errors(
    slack: FakeSlack,
    make_channel: MakeChannel,
    make_message: MakeMessage,
    prepare: Any,
    error: type[Exception],
    text: str,
) -> None:
    prepare(slack)

    with pytest.raises(error, match=text) as caught:
        make_channel().send(make_message())

    assert type(caught.value) is error
    assert TOKEN not in str(caught.value)


def test_a_rate_limit_honours_retry_after(
    slack: FakeSlack, make_channel: MakeChannel, make_message: MakeMessage
) -> None:
    slack.retry_after = "30"
    slack.script("transient")

    with pytest.raises(TransientDeliveryError) as caught:
        make_channel().send(make_message())

    assert caught.value.retry_after == 30.0


@pytest.mark.parametrize(
    ("script", "error"),
    [("transient", TransientDeliveryError), ("permanent", PermanentDeliveryError)],
)
def test_the_webhook_url_never_shows_in_an_error(
    slack: FakeSlack,
    make_channel: MakeChannel,
    make_message: MakeMessage,
    script: str,
    error: type[Exception],
) -> None:
    slack.script(script)
    channel = make_channel(webhook_url=slack.webhook_url)

    with pytest.raises(error) as caught:
        channel.send(make_message())

    secret_part = slack.webhook_path
    for text in (str(caught.value), repr(channel.options), repr(channel.settings)):
        assert secret_part not in text


def test_a_wrong_webhook_is_permanent(
    slack: FakeSlack, make_channel: MakeChannel, make_message: MakeMessage
) -> None:
    with pytest.raises(PermanentDeliveryError, match="HTTP 404: no_service"):
        make_channel(webhook_url=slack.url + "/services/T1/B1/wrong").send(make_message())


@pytest.mark.parametrize(
    ("headers", "body", "problem"),
    [
        ({"Authorization": "Bearer x"}, b"text=hi", "channel"),
        ({}, b"channel=C1&text=hi", "ecurity"),
        ({"Authorization": "Bearer x"}, b"channel=C1&text=hi&mrkdwn=perhaps", "perhaps"),
    ],
)
def test_the_openapi_check_refuses_what_slacks_document_refuses(
    openapi: OpenAPI, headers: dict[str, str], body: bytes, problem: str
) -> None:
    headers = headers | {"Content-Type": "application/x-www-form-urlencoded"}

    with pytest.raises(ValueError, match=problem):
        openapi_check(openapi)("POST", "/api/chat.postMessage", headers, body)


@given(
    name=st.text(max_size=200),
    reason=st.text(max_size=5000),
    steps=st.integers(min_value=0, max_value=40),
)
def test_blocks_stay_within_slacks_limits_whatever_the_task(
    name: str, reason: str, steps: int
) -> None:
    task = {
        "account": {"id": "a", "name": name},
        "reason": reason,
        "ladder": [{"touch": f"t{i}", "channel": "email", "sent_at": "x"} for i in range(steps)],
    }
    message = Message(
        idempotency_key="k", channel="csm", kind=ChannelKind.CSM, to="U1", data={"task": task}
    )

    out = blocks(message, due="2026-01-01")

    assert len(out) <= 50
    for block in out:
        text = block.get("text", {}).get("text", "")
        assert len(text) <= (150 if block["type"] == "header" else 3000)
        assert "<" not in text.replace("&lt;", "")  # no accidental link or mention


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({}, "token"),
        ({"token": "t", "webhook_url": "https://hooks.slack.com/services/T/B/X"}, "token"),
        ({"webhook_url": "ftp://hooks"}, "webhook_url"),
        ({"token": "t", "due_in_days": -1}, "due_in_days"),
        ({"token": "t", "kind": "sms"}, "kind"),
    ],
)
def test_a_bad_option_is_a_config_error_naming_it(options: dict[str, Any], key: str) -> None:
    settings = PluginSettings(name="csm", plugin="slack", options=options, origin="p.toml")

    with pytest.raises(ConfigError) as caught:
        SlackChannel(settings)

    problems = getattr(caught.value, "errors", [caught.value])
    assert f"channels.csm.{key}" in {problem.key for problem in problems}


def test_the_distribution_declares_its_entry_point() -> None:
    [entry_point] = entry_points(group="onetomany", name="slack")

    assert entry_point.load() is onetomany_slack
    assert entry_point.dist is not None
    assert entry_point.dist.name == "onetomany-slack"
    plugins = make_plugins(("slack", onetomany_slack))
    assert plugins.channels().get("slack").value is SlackChannel
