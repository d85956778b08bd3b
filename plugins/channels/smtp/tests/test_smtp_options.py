"""Options, secrets in printable forms, and registration as a plugin."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import onetomany_smtp
from onetomany.errors import ConfigError
from onetomany.model import ChannelKind
from onetomany.plugins.settings import PluginSettings
from onetomany.testing import make_plugins
from onetomany_smtp import SmtpChannel, SmtpOptions

if TYPE_CHECKING:
    from conftest import MakeChannel, StartServer

SECRET = "hunter2-but-longer"


def channel_for(options: dict[str, Any], base_dir: Path | None = None) -> SmtpChannel:
    settings = PluginSettings(
        name="email",
        plugin="smtp",
        options=options,
        base_dir=base_dir or Path.cwd(),
        origin="program.toml",
    )
    return SmtpChannel(settings)


def test_defaults() -> None:
    assert channel_for({}).options == SmtpOptions(
        host="localhost",
        port=25,
        security="none",
        username="",
        password="",
        timeout=30.0,
        sender="",
        local_hostname=None,
        cafile=None,
        verify_tls=True,
    )
    assert channel_for({}).serves is ChannelKind.EMAIL


@pytest.mark.parametrize(
    ("options", "port"),
    [
        ({}, 25),
        ({"security": "starttls"}, 587),
        ({"security": "ssl"}, 465),
        ({"security": "STARTTLS"}, 587),
        ({"security": "ssl", "port": 2465}, 2465),
    ],
)
def test_the_default_port_follows_security(options: dict[str, Any], port: int) -> None:
    assert channel_for(options).options.port == port


def test_relative_cafile_is_read_from_the_program_folder(tmp_path: Path, ca_bundle: Path) -> None:
    (tmp_path / "ca.pem").write_bytes(ca_bundle.read_bytes())

    options = channel_for({"security": "starttls", "cafile": "ca.pem"}, tmp_path).options

    assert options.cafile == tmp_path / "ca.pem"


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"host": ""}, "host"),
        ({"port": "25"}, "port"),
        ({"port": True}, "port"),
        ({"port": 0}, "port"),
        ({"port": 65536}, "port"),
        ({"security": "tls"}, "security"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": "30s"}, "timeout"),
        ({"verify_tls": "yes"}, "verify_tls"),
        ({"username": "mailer"}, "password"),
        ({"username": "mailer", "password": 12345}, "password"),
        ({"password": SECRET}, "username"),
        ({"sender": "not an address"}, "sender"),
        ({"cafile": "missing.pem", "security": "starttls"}, "cafile"),
        ({"cafile": "garbage.pem", "security": "ssl"}, "cafile"),
        ({"cafile": "garbage.pem"}, "cafile"),  # security none: nothing would use it
        ({"hostname": "mx.example.com"}, "hostname"),
    ],
)
def test_a_bad_option_is_a_config_error_naming_it(
    tmp_path: Path, options: dict[str, Any], key: str
) -> None:
    (tmp_path / "garbage.pem").write_text("not a certificate\n")

    with pytest.raises(ConfigError) as caught:
        channel_for(options, tmp_path)

    assert caught.value.key == f"channels.email.{key}"
    assert caught.value.file == "program.toml"
    assert f"channels.email.{key}" in str(caught.value)
    assert SECRET not in str(caught.value)
    assert "12345" not in str(caught.value)


def test_the_password_stays_out_of_repr(
    start_server: StartServer, make_channel: MakeChannel
) -> None:
    server = start_server()
    user = server.authenticator
    channel = make_channel(server, username=user.username, password=user.password)
    channel.open()  # connected and logged in

    for text in (repr(channel), str(channel), repr(channel.options), str(channel.settings)):
        assert user.password not in text
    assert user.mechanisms  # the password was used


def test_registers_as_smtp() -> None:
    plugins = make_plugins(("smtp", onetomany_smtp))

    assert plugins.channels().get("smtp").value is SmtpChannel


def test_the_distribution_declares_its_entry_point() -> None:
    [entry_point] = entry_points(group="onetomany", name="smtp")

    assert entry_point.load() is onetomany_smtp
    assert entry_point.dist is not None
    assert entry_point.dist.name == "onetomany-smtp"
