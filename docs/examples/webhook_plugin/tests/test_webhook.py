"""The webhook channel against a real local HTTP server (pytest-httpserver)."""

from __future__ import annotations

import socket
from datetime import timedelta
from email.utils import format_datetime

import attrs
import pytest
import requests
from onetomany import ChannelKind, Message, PluginSettings
from onetomany.delivery.channels import Runtime
from onetomany.errors import ConfigError, PermanentDeliveryError, TransientDeliveryError

import onetomany_webhook
from onetomany_webhook import WebhookChannel

MESSAGE = Message(
    idempotency_key="acme:welcome:ct-1:ev-1",
    channel="notify",
    kind=ChannelKind.INAPP,
    to="ct-1",
    touch="welcome",
    contact_id="ct-1",
    account_id="acc-1",
    subject="Welcome to Acme",
    text="Three steps to your first report.",
)


@pytest.fixture
def runtime(frozen_clock, temp_store):
    """What an engine lends its channels: a clock that only moves when told, and a store."""
    return Runtime(clock=frozen_clock, store=temp_store)


def make_channel(url, runtime, **options):
    settings = PluginSettings(name="notify", plugin="webhook", options={"url": url, **options})
    return WebhookChannel(settings, runtime=runtime)


def test_the_plugin_registers_the_webhook_channel(onetomany_plugins):
    onetomany_plugins.register(onetomany_webhook, name="webhook", distribution="onetomany-webhook")
    assert onetomany_plugins.channels().get("webhook").value is WebhookChannel


def test_a_message_is_posted_as_json_with_its_idempotency_key(httpserver, runtime):
    httpserver.expect_request("/hook", method="POST").respond_with_json({"id": "evt-42"})
    channel = make_channel(httpserver.url_for("/hook"), runtime, token="s3cret")

    with channel:
        result = channel.send(MESSAGE)

    assert result.provider_message_id == "evt-42"
    request, _ = httpserver.log[0]
    assert request.headers["Idempotency-Key"] == MESSAGE.idempotency_key
    assert request.headers["Authorization"] == "Bearer s3cret"
    assert request.json["subject"] == "Welcome to Acme"
    assert request.json["to"] == "ct-1"


def test_one_session_serves_a_whole_batch(httpserver, runtime):
    httpserver.expect_request("/hook").respond_with_data("", status=204)
    channel = make_channel(httpserver.url_for("/hook"), runtime)
    second = attrs.evolve(MESSAGE, idempotency_key="acme:welcome:ct-2:ev-1", to="ct-2")

    with channel:
        session = channel.session
        outcomes = list(channel.send_many([MESSAGE, second]))
        assert channel.session is session

    assert [outcome.detail for outcome in outcomes] == ["HTTP 204", "HTTP 204"]
    assert channel.session is None


def test_503_with_retry_after_is_transient_and_carries_the_wait(httpserver, runtime):
    httpserver.expect_request("/hook").respond_with_data(
        "busy", status=503, headers={"Retry-After": "120"}
    )
    channel = make_channel(httpserver.url_for("/hook"), runtime)

    with pytest.raises(TransientDeliveryError, match="HTTP 503") as caught:
        channel.send(MESSAGE)

    assert caught.value.retry_after == 120.0


def test_retry_after_as_an_http_date_is_read_against_the_injected_clock(
    httpserver, runtime, frozen_clock
):
    later = format_datetime(frozen_clock.now() + timedelta(minutes=5), usegmt=True)
    httpserver.expect_request("/hook").respond_with_data(
        "slow down", status=429, headers={"Retry-After": later}
    )
    channel = make_channel(httpserver.url_for("/hook"), runtime)

    with pytest.raises(TransientDeliveryError) as caught:
        channel.send(MESSAGE)

    assert caught.value.retry_after == 300.0


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (408, TransientDeliveryError),
        (429, TransientDeliveryError),
        (500, TransientDeliveryError),
        (502, TransientDeliveryError),
        (301, PermanentDeliveryError),
        (400, PermanentDeliveryError),
        (401, PermanentDeliveryError),
        (404, PermanentDeliveryError),
        (422, PermanentDeliveryError),
    ],
)
def test_http_statuses_map_to_transient_or_permanent(httpserver, runtime, status, error):
    httpserver.expect_request("/hook").respond_with_data("no", status=status)
    channel = make_channel(httpserver.url_for("/hook"), runtime)

    with pytest.raises(error, match=f"HTTP {status}") as caught:
        channel.send(MESSAGE)

    assert type(caught.value) is error


def test_400_is_permanent_and_quotes_the_reply(httpserver, runtime):
    httpserver.expect_request("/hook").respond_with_data("missing field 'to'", status=400)
    channel = make_channel(httpserver.url_for("/hook"), runtime)

    with pytest.raises(PermanentDeliveryError, match="missing field 'to'"):
        channel.send(MESSAGE)


def test_a_refused_connection_is_transient_and_keeps_its_cause(runtime):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    channel = make_channel(f"http://127.0.0.1:{port}/hook?token=s3cret", runtime)

    with pytest.raises(TransientDeliveryError) as caught:
        channel.send(MESSAGE)

    assert isinstance(caught.value.__cause__, requests.ConnectionError)
    assert "s3cret" not in str(caught.value)


def test_errors_and_repr_never_show_the_secret_parts_of_the_url(httpserver, runtime):
    httpserver.expect_request("/hook/s3cret-path").respond_with_data("", status=500)
    channel = make_channel(httpserver.url_for("/hook/s3cret-path"), runtime, token="t0ken")

    with pytest.raises(TransientDeliveryError) as caught:
        channel.send(MESSAGE)

    assert "s3cret-path" not in str(caught.value)
    assert "t0ken" not in repr(channel)


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({}, "notify.url"),
        ({"url": "ftp://files.example.com/drop"}, "notify.url"),
        ({"url": "https://hooks.example.com/x", "kind": "fax"}, "notify.kind"),
        ({"url": "https://hooks.example.com/x", "timeout": "soon"}, "notify.timeout"),
    ],
)
def test_bad_options_are_config_errors_naming_the_key(runtime, options, key):
    settings = PluginSettings(name="notify", plugin="webhook", options=options)

    with pytest.raises(ConfigError) as caught:
        WebhookChannel(settings, runtime=runtime)

    assert caught.value.key == key
