"""The signed webhook channel: what it signs and sends, the SSRF guard, and its answers."""

from __future__ import annotations

import base64
import hashlib
import hmac
from importlib.metadata import entry_points
from typing import Any

import pytest
from conftest import SECRET, MakeChannel, MakeMessage
from hypothesis import given
from hypothesis import strategies as st

import onetomany_webhook
from onetomany.errors import ConfigError, PermanentDeliveryError, TransientDeliveryError
from onetomany.model.clock import FrozenClock
from onetomany.plugins.settings import PluginSettings
from onetomany.testing import make_plugins
from onetomany_webhook import SignatureError, WebhookChannel, verify, webhook_id
from onetomany_webhook.guard import Guard
from onetomany_webhook.signing import key_of, sign
from onetomany_webhook.testing import FakeReceiver


def test_a_message_is_posted_signed_as_standard_webhooks_says(
    receiver: FakeReceiver, make_channel: MakeChannel, make_message: MakeMessage, clock: FrozenClock
) -> None:
    message = make_message(idempotency_key="acme:renewal_risk:acct-7:1")

    result = make_channel().send(message)

    [document] = receiver.received_documents
    assert result.provider_message_id == webhook_id("acme:renewal_risk:acct-7:1")
    assert document["type"] == "message.send"
    assert document["timestamp"] == clock.now().isoformat()
    assert document["data"]["key"] == "acme:renewal_risk:acct-7:1"
    assert document["data"]["data"] == {"task": {"reason": "usage drop"}}
    assert receiver.refused == []  # the receiver verified the signature


def test_the_signature_matches_the_conventions_own_recipe() -> None:
    # Computed independently: HMAC-SHA256 over "id.timestamp.body" under the base64 key.
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    body = b'{"test": 2432232314}'
    expected = hmac.new(key, b"msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330." + body, hashlib.sha256)

    signature = sign(key_of(SECRET), "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)

    assert signature == "v1," + base64.b64encode(expected.digest()).decode()
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="  # the spec's example


@given(body=st.binary(max_size=500), flip=st.integers(min_value=0, max_value=499))
def test_a_signature_holds_for_its_body_and_no_other(body: bytes, flip: int) -> None:
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": "1700000000",
        "webhook-signature": sign(key_of(SECRET), "msg_1", 1700000000, body),
    }
    verify(SECRET, headers, body, now=1700000000)
    if body:
        tampered = bytearray(body)
        tampered[flip % len(body)] ^= 1
        with pytest.raises(SignatureError):
            verify(SECRET, headers, bytes(tampered), now=1700000000)
    with pytest.raises(SignatureError, match="tolerance"):
        verify(SECRET, headers, body, now=1700000000 + 301)


def test_a_retry_carries_the_same_webhook_id_so_the_receiver_keeps_one(
    receiver: FakeReceiver, make_channel: MakeChannel, make_message: MakeMessage
) -> None:
    message = make_message()
    channel = make_channel()

    first, second = channel.send(message), channel.send(message)

    assert first.provider_message_id == second.provider_message_id
    assert receiver.arrived == 2
    assert len(receiver.received_documents) == 1
    assert WebhookChannel.deduplicates  # so an unknown outcome may be sent again


def test_loopback_is_refused_unless_allowed_and_nothing_is_sent(
    receiver: FakeReceiver, make_channel: MakeChannel, make_message: MakeMessage
) -> None:
    with pytest.raises(PermanentDeliveryError, match=r"127\.0\.0\.1 is a loopback address"):
        make_channel(allow=[]).send(make_message())

    assert receiver.arrived == 0


def test_a_connection_to_a_refused_peer_is_dropped_even_after_the_dns_check(
    receiver: FakeReceiver,
    make_channel: MakeChannel,
    make_message: MakeMessage,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As if the name had resolved to a public address first and to loopback on connecting
    # (DNS rebinding): the check on the connection made still refuses it.
    channel = make_channel(allow=[])
    monkeypatch.setattr(channel.guard, "check_host", lambda host, port: None)

    with pytest.raises(PermanentDeliveryError, match=r"connected to 127\.0\.0\.1 is a loopback"):
        channel.send(make_message())

    assert receiver.arrived == 0


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.0.10", "private"),
        ("172.16.5.4", "private"),
        ("169.254.169.254", "metadata"),
        ("169.254.10.1", "link-local"),
        ("fe80::1", "link-local"),
        ("fd00:ec2::254", "metadata"),
        ("::ffff:10.0.0.1", "private"),
        ("100.64.0.1", "non-global"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
    ],
)
def test_the_guard_refuses_non_public_addresses(address: str, problem: str) -> None:
    found = Guard().problem(address)

    assert found is not None
    if problem != "unspecified":
        assert problem in found


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"])
def test_the_guard_lets_public_addresses_through(address: str) -> None:
    assert Guard().problem(address) is None


def test_an_allowed_network_lets_its_addresses_through() -> None:
    guard = Guard(["10.0.0.0/8", "127.0.0.1"])

    assert guard.problem("10.20.30.40") is None
    assert guard.problem("127.0.0.1") is None
    assert guard.problem("127.0.0.2") is not None
    assert guard.problem("169.254.169.254") is not None


def test_a_redirect_is_not_followed(
    receiver: FakeReceiver, make_channel: MakeChannel, make_message: MakeMessage
) -> None:
    receiver.script("redirect")

    with pytest.raises(PermanentDeliveryError, match=r"HTTP 302.*redirects are not followed"):
        make_channel().send(make_message())

    assert receiver.arrived == 1


def test_a_proxy_from_the_environment_is_not_used(
    receiver: FakeReceiver,
    make_channel: MakeChannel,
    make_message: MakeMessage,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A proxy would make the connection the guard checks, so the channel ignores the
    # environment's (here one where nothing listens: using it would fail the send).
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)

    make_channel().send(make_message())

    assert receiver.arrived == 1


def test_a_busy_receiver_is_transient_with_its_retry_after(
    receiver: FakeReceiver, make_channel: MakeChannel, make_message: MakeMessage
) -> None:
    receiver.retry_after = "20"
    receiver.script("transient")

    with pytest.raises(TransientDeliveryError, match="HTTP 503") as caught:
        make_channel().send(make_message())

    assert caught.value.retry_after == 20.0


def test_errors_name_the_host_and_never_the_path(
    receiver: FakeReceiver, make_channel: MakeChannel, make_message: MakeMessage
) -> None:
    receiver.script("permanent")
    url = receiver.url + "?token=sekrit-in-query"

    with pytest.raises(PermanentDeliveryError) as caught:
        make_channel(url=url).send(make_message())

    assert "HTTP 410" in str(caught.value)
    assert "/hooks/onetomany" not in str(caught.value)
    assert "sekrit" not in str(caught.value)


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"secret": SECRET}, "url"),
        ({"url": "https://hooks.acme.test/x"}, "secret"),
        ({"url": "https://hooks.acme.test/x", "secret": "plain"}, "secret"),
        ({"url": "https://hooks.acme.test/x", "secret": "whsec_%%%"}, "secret"),
        ({"url": "https://hooks.acme.test/x", "secret": SECRET, "allow": ["nope"]}, "allow"),
        ({"url": "gopher://hooks.acme.test", "secret": SECRET}, "url"),
    ],
)
def test_a_bad_option_is_a_config_error_naming_it(options: dict[str, Any], key: str) -> None:
    settings = PluginSettings(name="alerts", plugin="webhook", options=options, origin="p.toml")

    with pytest.raises(ConfigError) as caught:
        WebhookChannel(settings)

    problems = getattr(caught.value, "errors", [caught.value])
    assert f"channels.alerts.{key}" in {problem.key for problem in problems}
    assert "MfKQ9r8" not in str(caught.value)


def test_the_distribution_declares_its_entry_point() -> None:
    [entry_point] = entry_points(group="onetomany", name="webhook")

    assert entry_point.load() is onetomany_webhook
    assert entry_point.dist is not None
    assert entry_point.dist.name == "onetomany-webhook"
    plugins = make_plugins(("webhook", onetomany_webhook))
    assert plugins.channels().get("webhook").value is WebhookChannel
