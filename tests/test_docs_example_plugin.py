"""The example plugin in docs/examples/webhook_plugin works, and the tutorial shows it as it is.

The root test run does not collect docs/, so this file imports the example module by path and
drives it against a local HTTP server, then runs the example's own tests in a subprocess.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from onetomany import ChannelKind, Message, PluginSettings
from onetomany.delivery.channels import Runtime
from onetomany.errors import PermanentDeliveryError, TransientDeliveryError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "docs" / "examples" / "webhook_plugin"
MODULE = EXAMPLE / "src" / "onetomany_example_webhook" / "__init__.py"
TUTORIAL = ROOT / "docs" / "plugins" / "writing-a-channel.md"
EXAMPLE_FILES = [
    "pyproject.toml",
    "src/onetomany_example_webhook/__init__.py",
    "tests/test_webhook.py",
]

MESSAGE = Message(
    idempotency_key="docs:welcome:ct-1:ev-1",
    channel="notify",
    kind=ChannelKind.INAPP,
    to="ct-1",
    contact_id="ct-1",
    subject="Welcome",
    text="Hello",
)


@pytest.fixture(scope="module")
def webhook():
    spec = importlib.util.spec_from_file_location("docs_example_onetomany_example_webhook", MODULE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def channel(webhook, httpserver, frozen_clock):
    settings = PluginSettings(
        name="notify", plugin="example_webhook", options={"url": httpserver.url_for("/hook")}
    )
    channel = webhook.WebhookChannel(settings, runtime=Runtime(clock=frozen_clock))
    yield channel
    channel.close()


def test_the_example_registers_its_channel(webhook, onetomany_plugins):
    onetomany_plugins.register(
        webhook, name="example_webhook", distribution="onetomany-example-webhook"
    )
    assert onetomany_plugins.channels().get("example_webhook").value is webhook.WebhookChannel


def test_the_example_posts_a_message(channel, httpserver):
    httpserver.expect_request("/hook", method="POST").respond_with_json({"id": "evt-1"})

    result = channel.send(MESSAGE)

    assert result.provider_message_id == "evt-1"
    request, _ = httpserver.log[0]
    assert request.headers["Idempotency-Key"] == MESSAGE.idempotency_key
    assert request.json["subject"] == "Welcome"


def test_the_example_maps_503_with_retry_after_to_a_transient_error(channel, httpserver):
    httpserver.expect_request("/hook").respond_with_data(
        "busy", status=503, headers={"Retry-After": "30"}
    )

    with pytest.raises(TransientDeliveryError) as caught:
        channel.send(MESSAGE)

    assert caught.value.retry_after == 30.0


def test_the_example_maps_400_to_a_permanent_error(channel, httpserver):
    httpserver.expect_request("/hook").respond_with_data("bad request", status=400)

    with pytest.raises(PermanentDeliveryError, match="HTTP 400"):
        channel.send(MESSAGE)


@pytest.mark.slow
def test_the_examples_own_tests_pass():
    paths = [str(EXAMPLE / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = os.environ | {"PYTHONPATH": os.pathsep.join(paths)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=EXAMPLE,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", EXAMPLE_FILES)
def test_the_tutorial_shows_each_example_file_verbatim(name):
    text = (EXAMPLE / name).read_text(encoding="utf-8")
    assert text in TUTORIAL.read_text(encoding="utf-8"), (
        f"docs/plugins/writing-a-channel.md no longer shows docs/examples/webhook_plugin/{name} "
        "as it is; copy the file into the page again"
    )
