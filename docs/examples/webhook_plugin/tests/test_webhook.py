"""The webhook channel against a real local HTTP server (pytest-httpserver)."""

from __future__ import annotations

import json
import time

import pytest
from onetomany import ChannelKind, Message, PluginSettings
from onetomany.delivery.channels import Runtime
from onetomany.errors import ConfigError, PermanentDeliveryError, TransientDeliveryError
from onetomany.testing import Answer, ChannelContract
from werkzeug import Request, Response

import onetomany_example_webhook
from onetomany_example_webhook import WebhookChannel

SECRET = "t0ken-for-the-contract"


def make_message(index: int = 0) -> Message:
    return Message(
        idempotency_key=f"acme:welcome:ct-{index}:ev-1",
        channel="notify",
        kind=ChannelKind.INAPP,
        to=f"ct-{index}",
        touch="welcome",
        contact_id=f"ct-{index}",
        subject="Welcome to Acme",
        text="Three steps to your first report.",
    )


class WebhookReceiver:
    """A receiving endpoint on ``httpserver`` that answers each request as scripted."""

    secret = SECRET

    def __init__(self, httpserver, runtime):
        self.url = httpserver.url_for("/hook")
        self.runtime = runtime
        self.script: list[Answer] = []
        self.requests: list[Request] = []
        self.busy_until = 0.0
        httpserver.expect_request("/hook", method="POST").respond_with_handler(self.respond)

    def respond(self, request: Request) -> Response:
        self.requests.append(request)
        answer = self.script.pop(0) if self.script else Answer.ACCEPT
        if answer is Answer.NO_ANSWER:
            # Past the channel's timeout: the request arrived, and no answer did in time.
            self.busy_until = time.monotonic() + 0.3
            time.sleep(0.3)
        if answer is Answer.TRANSIENT:
            return Response("busy", status=503, headers={"Retry-After": "120"})
        if answer is Answer.PERMANENT:
            return Response("unknown recipient", status=422)
        reply = json.dumps({"id": f"evt-{len(self.requests)}"})
        return Response(reply, content_type="application/json")

    def channel(self, **options) -> WebhookChannel:
        options = {"url": self.url, "token": SECRET, "timeout": 0.1} | options
        settings = PluginSettings(name="notify", plugin="example_webhook", options=options)
        return WebhookChannel(settings, runtime=self.runtime)

    def message(self, index: int) -> Message:
        return make_message(index)

    def answer(self, *answers: Answer) -> None:
        self.script.extend(answers)

    def received(self) -> int:
        return len(self.requests)


@pytest.fixture
def receiver(httpserver, frozen_clock):
    receiver = WebhookReceiver(httpserver, Runtime(clock=frozen_clock))
    yield receiver
    # The test server answers one request at a time: let a late answer finish first.
    time.sleep(max(0.0, receiver.busy_until - time.monotonic()))


class TestWebhookContract(ChannelContract):
    """The contract every channel keeps, from onetomany.testing, run against this one."""

    @pytest.fixture
    def provider(self, receiver):
        return receiver


def test_the_plugin_registers_the_webhook_channel(onetomany_plugins):
    onetomany_plugins.register(
        onetomany_example_webhook, name="example_webhook", distribution="onetomany-example-webhook"
    )
    assert onetomany_plugins.channels().get("example_webhook").value is WebhookChannel


def test_a_message_is_posted_as_json_with_its_idempotency_key(receiver):
    with receiver.channel() as channel:
        result = channel.send(make_message(1))

    assert result.provider_message_id == "evt-1"
    [request] = receiver.requests
    assert request.headers["Idempotency-Key"] == "acme:welcome:ct-1:ev-1"
    assert request.headers["Authorization"] == f"Bearer {SECRET}"
    assert request.json["to"] == "ct-1"


def test_503_carries_the_providers_wait(receiver):
    receiver.answer(Answer.TRANSIENT)

    with pytest.raises(TransientDeliveryError, match="HTTP 503") as caught:
        receiver.channel().send(make_message())

    assert caught.value.retry_after == 120.0


def test_a_redirect_is_permanent_and_not_followed(httpserver, frozen_clock):
    httpserver.expect_request("/moved").respond_with_data(
        "", status=301, headers={"Location": "http://169.254.169.254/"}
    )
    receiver_url = httpserver.url_for("/moved")
    settings = PluginSettings(
        name="notify", plugin="example_webhook", options={"url": receiver_url}
    )
    channel = WebhookChannel(settings, runtime=Runtime(clock=frozen_clock))

    with pytest.raises(PermanentDeliveryError, match="redirects are not followed"):
        channel.send(make_message())


def test_errors_never_show_the_secret_parts_of_the_url(httpserver, frozen_clock):
    httpserver.expect_request("/hook/s3cret-path").respond_with_data("", status=500)
    url = httpserver.url_for("/hook/s3cret-path")
    settings = PluginSettings(name="notify", plugin="example_webhook", options={"url": url})
    channel = WebhookChannel(settings, runtime=Runtime(clock=frozen_clock))

    with pytest.raises(TransientDeliveryError) as caught:
        channel.send(make_message())

    assert "s3cret-path" not in str(caught.value)


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({}, "channels.notify.url"),
        ({"url": "ftp://files.example.com/drop"}, "channels.notify.url"),
        ({"url": "https://hooks.example.com/x", "kind": "fax"}, "channels.notify.kind"),
        ({"url": "https://hooks.example.com/x", "timeout": "soon"}, "channels.notify.timeout"),
    ],
)
def test_bad_options_are_config_errors_naming_the_key(options, key):
    settings = PluginSettings(name="notify", plugin="example_webhook", options=options)

    with pytest.raises(ConfigError) as caught:
        WebhookChannel(settings)

    assert caught.value.key == key
