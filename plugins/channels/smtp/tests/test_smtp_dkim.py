"""DKIM signing as an SMTP channel option: what a receiver verifies, and bad options."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from onetomany.errors import ConfigError
from onetomany.plugins.settings import PluginSettings
from onetomany_smtp import SmtpChannel

if TYPE_CHECKING:
    from conftest import MakeChannel, MakeMessage, SmtpServer


@pytest.fixture(scope="module")
def key_pair() -> tuple[bytes, bytes]:
    """A 2048-bit RSA key: (PEM private key, the DNS TXT record publishing its public half)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


@pytest.fixture
def key_file(tmp_path: Path, key_pair: tuple[bytes, bytes]) -> Path:
    path = tmp_path / "dkim.pem"
    path.write_bytes(key_pair[0])
    return path


def _dns(record: bytes) -> Any:
    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return record if name == b"s2026._domainkey.example.com." else None

    return lookup


def _signed_fields(data: bytes) -> list[str]:
    header = data.partition(b"\r\n\r\n")[0].decode()
    signature = re.search(r"DKIM-Signature:(.*?)(?=\r\n\S)", header, re.S)
    assert signature, header
    h = re.search(r"\bh=([^;]+)", signature.group(1).replace("\r\n", "").replace(" ", ""))
    assert h
    return [name.lower() for name in h.group(1).split(":")]


def test_a_signed_message_verifies_and_covers_list_unsubscribe(
    make_channel: MakeChannel,
    server: SmtpServer,
    make_message: MakeMessage,
    key_file: Path,
    key_pair: tuple[bytes, bytes],
) -> None:
    channel = make_channel(
        server, dkim_domain="example.com", dkim_selector="s2026", dkim_key=str(key_file)
    )
    headers = {
        "List-Unsubscribe": "<https://acme.test/u/tok>, <mailto:u@acme.test?subject=tok>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }

    with channel:
        channel.send(make_message(headers=headers))

    [received] = server.handler.received
    data = received.data
    assert dkim.verify(data, dnsfunc=_dns(key_pair[1]))
    fields = _signed_fields(data)
    assert {"from", "subject", "list-unsubscribe", "list-unsubscribe-post"} <= set(fields)


def test_a_message_changed_in_transit_no_longer_verifies(
    make_channel: MakeChannel,
    server: SmtpServer,
    make_message: MakeMessage,
    key_file: Path,
    key_pair: tuple[bytes, bytes],
) -> None:
    channel = make_channel(
        server, dkim_domain="example.com", dkim_selector="s2026", dkim_key=str(key_file)
    )
    with channel:
        channel.send(make_message(headers={"List-Unsubscribe": "<https://acme.test/u/1>"}))

    data = server.handler.received[0].data
    forged = data.replace(b"https://acme.test/u/1", b"https://evil.test/u/1")
    assert dkim.verify(data, dnsfunc=_dns(key_pair[1]))
    assert not dkim.verify(forged, dnsfunc=_dns(key_pair[1]))


def test_without_dkim_options_nothing_is_signed(
    channel: SmtpChannel, server: SmtpServer, make_message: MakeMessage
) -> None:
    with channel:
        channel.send(make_message())

    assert b"DKIM-Signature" not in server.handler.received[0].data


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"dkim_domain": "example.com"}, "dkim_selector"),
        ({"dkim_domain": "example.com", "dkim_selector": "s1"}, "dkim_key"),
        ({"dkim_selector": "s1", "dkim_key": "k.pem"}, "dkim_domain"),
        (
            {"dkim_domain": "example.com", "dkim_selector": "s1", "dkim_key": "missing.pem"},
            "dkim_key",
        ),
        (
            {"dkim_domain": "example.com", "dkim_selector": "s1", "dkim_key": "plain.txt"},
            "dkim_key",
        ),
    ],
)
def test_incomplete_or_unreadable_dkim_options_are_config_errors(
    tmp_path: Path, options: dict[str, Any], key: str
) -> None:
    (tmp_path / "a.txt").write_text("not a key")
    (tmp_path / "k.pem").write_text("-----BEGIN PRIVATE KEY-----\n")
    settings = PluginSettings(
        name="email", plugin="smtp", options=options, base_dir=tmp_path, origin="program.toml"
    )

    with pytest.raises(ConfigError) as caught:
        SmtpChannel(settings)

    problems = getattr(caught.value, "errors", [caught.value])
    assert f"channels.email.{key}" in {problem.key for problem in problems}
