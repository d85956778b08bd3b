"""Typed channel options: declared as attrs classes, read and checked by the core at load."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Literal

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from onetomany import Channel, ChannelKind, DeliveryResult, Message, PluginSettings
from onetomany.errors import ConfigError, ConfigErrors, RegistrationError
from onetomany.plugins.options import MASK, describe_options, option, secret
from onetomany.testing import RecordingChannel, make_plugins


def _not_example(_instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value.endswith("example.invalid"):
        raise ConfigError(f"{value!r} is a placeholder host", key=attribute.name)


@attrs.frozen(kw_only=True)
class ApiOptions:
    url: str = option(help="where to post", validator=_not_example)
    token: str = secret(help="the API token")
    port: int = option(443, help="the port")
    timeout: float = option(10.0, help="seconds")
    verify: bool = option(True, help="check certificates")
    mode: Literal["fast", "careful"] = option("careful", help="how")
    certificate: Path | None = option(None, help="a PEM file")
    tags: tuple[str, ...] = option((), help="tags")
    headers: dict[str, str] = option(factory=dict, help="extra headers")

    def __attrs_post_init__(self) -> None:
        if self.mode == "fast" and self.verify:
            raise ConfigError("fast mode does not verify: set verify = false", key="verify")


class ApiChannel(Channel):
    kinds = (ChannelKind.SMS, ChannelKind.WHATSAPP)
    Options = ApiOptions
    options: ApiOptions

    def send(self, message: Message) -> DeliveryResult:
        return DeliveryResult()


def build(tmp_path: Path | None = None, **options: object) -> ApiChannel:
    settings = PluginSettings(
        name="texts",
        plugin="api",
        options={"url": "https://api.test", "token": "tok-123456", **options},
        base_dir=tmp_path or Path.cwd(),
        origin="program.toml",
    )
    return ApiChannel(settings)


def test_options_are_read_into_their_declared_types(tmp_path: Path) -> None:
    channel = build(
        tmp_path,
        timeout=3,
        mode="FAST",
        verify=False,
        certificate="certs/ca.pem",
        tags=["a", "b"],
        headers={"X-Team": "cs"},
    )

    assert channel.options == ApiOptions(
        url="https://api.test",
        token="tok-123456",
        timeout=3.0,
        mode="fast",
        verify=False,
        certificate=tmp_path / "certs" / "ca.pem",
        tags=("a", "b"),
        headers={"X-Team": "cs"},
    )
    assert isinstance(channel.options.timeout, float)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"port": "abc"}, 'program.toml: channels.texts.port: expected an integer, got "abc"'),
        ({"port": True}, "channels.texts.port: expected an integer, got true"),
        ({"timeout": "soon"}, 'channels.texts.timeout: expected a number, got "soon"'),
        ({"verify": "yes"}, 'channels.texts.verify: expected true or false, got "yes"'),
        ({"mode": "slow"}, 'channels.texts.mode: expected one of "fast", "careful", got "slow"'),
        ({"tags": "a,b"}, "channels.texts.tags: expected a list of strings"),
        ({"headers": {"X": 1}}, "channels.texts.headers: expected a table of strings"),
        ({"certificate": ""}, "channels.texts.certificate: expected a path"),
        ({"prot": 80}, "channels.texts.prot: unknown option (known: certificate, headers"),
        ({"url": "https://x.example.invalid"}, "channels.texts.url: 'https://x.example.inv"),
        ({"mode": "fast"}, "channels.texts.verify: fast mode does not verify"),
        ({"kind": "email"}, 'channels.texts.kind: expected one of "sms", "whatsapp"'),
    ],
)
def test_a_bad_option_names_the_file_the_table_and_the_key(
    options: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        build(**options)

    assert message in str(caught.value)
    assert caught.value.file == "program.toml"


def test_a_missing_required_option_is_named() -> None:
    settings = PluginSettings(name="texts", plugin="api", options={"url": "https://api.test"})

    with pytest.raises(ConfigError, match=r"channels\.texts\.token: this option is required"):
        ApiChannel(settings)


def test_every_bad_option_is_reported_at_once() -> None:
    with pytest.raises(ConfigErrors) as caught:
        build(port="abc", timeout="soon", colour="red")

    assert sorted(error.key or "" for error in caught.value.errors) == [
        "channels.texts.colour",
        "channels.texts.port",
        "channels.texts.timeout",
    ]


def test_the_kind_is_the_first_declared_unless_the_program_picks_another() -> None:
    assert build().serves is ChannelKind.SMS
    assert build(kind="whatsapp").serves is ChannelKind.WHATSAPP
    assert ApiChannel.kind_for(PluginSettings(name="t", plugin="api")) is ChannelKind.SMS


def test_a_channel_cannot_state_its_kind_a_second_way() -> None:
    with pytest.raises(TypeError, match="kinds = "):

        class Old(RecordingChannel):
            kind = ChannelKind.SMS  # type: ignore[misc]


def test_secrets_are_masked_in_every_printed_form() -> None:
    channel = build()

    for text in (repr(channel), str(channel.settings), repr(channel.options)):
        assert "tok-123456" not in text
    assert MASK in repr(channel.options)
    assert channel.settings.secrets == {"token"}


@given(
    token=st.text(
        alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=6
    ).filter(lambda t: t.strip() == t and '"' not in t and "\\" not in t),
    url=st.sampled_from(["", "x.example.invalid"]),
)
def test_a_secret_never_shows_in_an_error_whatever_else_is_wrong(token: str, url: str) -> None:
    bad = {"token": token, "url": url, "port": token, "mode": token, "tags": token}

    with pytest.raises(ConfigError) as caught:
        ApiChannel(PluginSettings(name="texts", plugin="api", options=bad))

    assert token not in str(caught.value)


class NotAttrs:
    pass


@attrs.frozen
class OddType:
    when: complex = 1j


@pytest.mark.parametrize(
    ("options_class", "problem"),
    [(NotAttrs, "is not an attrs class"), (OddType, "'when' has a type options cannot hold")],
)
def test_registration_refuses_options_the_core_cannot_read(
    options_class: type, problem: str
) -> None:
    channel = type("Bad", (RecordingChannel,), {"Options": options_class})

    class Plugin:
        from onetomany import hookimpl

        @hookimpl
        def onetomany_register_channels(self, register):  # type: ignore[no-untyped-def]
            register("bad", channel)

    plugins = make_plugins(("bad_plugin", Plugin()))
    with pytest.raises(RegistrationError, match=problem) as caught:
        plugins.channels()
    assert caught.value.plugin == "bad_plugin"


def test_describe_lists_types_defaults_and_secrets() -> None:
    infos = {info.name: info for info in describe_options(ApiOptions)}

    assert infos["url"].default is None  # required
    assert infos["token"].secret
    assert infos["port"].type == "int"
    assert infos["port"].default == "443"
    assert infos["mode"].type == '"fast" | "careful"'
    assert infos["certificate"].type == "path"


def test_the_engine_reports_every_option_problem_with_the_rest_of_the_program(
    tmp_path: Path,
) -> None:
    import onetomany_smtp
    from onetomany.engine import Engine
    from onetomany.program import load_program
    from onetomany.store import Store

    (tmp_path / "templates").mkdir()
    (tmp_path / "program.toml").write_text(
        textwrap.dedent(
            """
            [program]
            name = "p"
            [channels.email]
            plugin = "smtp"
            port = "abc"
            security = "tls"
            password = "hunter2-hunter2"
            """
        )
    )
    program = load_program(tmp_path / "program.toml")

    with pytest.raises(ConfigErrors) as caught:
        Engine(
            program, store=Store(tmp_path / "o.db"), plugins=make_plugins(("smtp", onetomany_smtp))
        )

    text = str(caught.value)
    assert "channels.email.port: expected an integer" in text
    assert 'channels.email.security: expected one of "none", "starttls", "ssl"' in text
    assert "hunter2-hunter2" not in text


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    cli = Path(sys.executable).with_name("onetomany")
    return subprocess.run([str(cli), *args], capture_output=True, text=True, check=False)


def test_the_cli_lists_a_channels_options() -> None:
    result = run_cli("plugins", "--options", "smtp", "--json")

    assert result.returncode == 0, result.stderr
    options = {o["name"]: o for o in json.loads(result.stdout)}
    assert options["password"]["secret"] is True
    assert options["port"]["type"] == "int"
    assert options["security"]["default"] == '"none"'


def test_the_cli_names_an_unknown_channel() -> None:
    result = run_cli("plugins", "--options", "fax")

    assert result.returncode != 0
    assert "unknown channel 'fax'" in result.stderr
