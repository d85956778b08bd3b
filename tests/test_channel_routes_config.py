"""How a program.toml names failover groups and rate limits, and what it is told when wrong."""

from __future__ import annotations

import textwrap

import pytest

from onetomany.errors import ConfigErrors
from onetomany.program import load_program

from .conftest import WELCOME, write_templates

HEAD = """
[program]
name = "acme"
sender = "Acme <success@acme.test>"

[touches.welcome]
trigger = { event = "signed_up" }
channel = "email"
template = "welcome"
"""


def _load(tmp_path, channels):
    write_templates(tmp_path / "templates", welcome=WELCOME)
    (tmp_path / "program.toml").write_text(textwrap.dedent(HEAD) + textwrap.dedent(channels))
    return load_program(tmp_path)


def test_a_group_names_its_providers_in_order(tmp_path):
    program = _load(
        tmp_path,
        """
        [channels.postmark]
        plugin = "recording"

        [channels.smtp]
        plugin = "recording"
        rate_note = "an option of the plugin"

        [channels.email]
        providers = ["postmark", "smtp"]
        circuit = { failures = 3, cooldown = 10 }
        rate = "50/s"

        [channels.sms]
        plugin = "recording"
        kind = "sms"
        rate = "1 segment/s"
        """,
    )
    email = program.routes["email"]
    assert email.providers == ("postmark", "smtp") and email.is_group
    assert (email.circuit.failures, email.circuit.window, email.circuit.cooldown) == (3, 60, 10)
    assert email.rate is not None and email.rate.per_second == 50
    assert "email" not in program.channels and set(program.groups()) == {"email"}
    sms = program.routes["sms"]
    assert not sms.is_group and sms.rate is not None and sms.rate.unit == "segments"
    assert "rate" not in program.channels["sms"].options  # the core's key, not the plugin's
    assert program.channels["smtp"].options == {"rate_note": "an option of the plugin"}


@pytest.mark.parametrize(
    ("channels", "key", "why"),
    [
        (
            '[channels.email]\nproviders = "postmark"\n',
            "channels.email.providers",
            "expected a list of channel names",
        ),
        (
            '[channels.email]\nproviders = ["postmark"]\n',
            "channels.email.providers",
            "no channel 'postmark' to send through",
        ),
        (
            '[channels.a]\nplugin = "recording"\n[channels.email]\nproviders = ["a", "a"]\n',
            "channels.email.providers",
            "named more than once: a",
        ),
        (
            '[channels.a]\nplugin = "recording"\n'
            '[channels.email]\nproviders = ["a"]\nplugin = "smtp"\n',
            "channels.email.plugin",
            "a failover group has no plugin",
        ),
        (
            '[channels.a]\nplugin = "recording"\n[channels.email]\nproviders = ["a"]\nhost = "x"\n',
            "channels.email.host",
            "provider options belong in the providers' own tables",
        ),
        (
            '[channels.a]\nplugin = "recording"\n'
            '[channels.email]\nproviders = ["a"]\ncircuit = { failures = 0 }\n',
            "channels.email.circuit.failures",
            "expected a positive number",
        ),
        (
            '[channels.a]\nplugin = "recording"\n'
            '[channels.email]\nproviders = ["a"]\ncircuit = { after = 3 }\n',
            "channels.email.circuit.after",
            "unknown key (known: failures, window, cooldown)",
        ),
        (
            '[channels.a]\nplugin = "recording"\n'
            '[channels.email]\nproviders = ["a"]\nrate = "lots"\n',
            "channels.email.rate",
            'expected a rate such as "1/s"',
        ),
        (
            '[channels.a]\nplugin = "recording"\nrate = "1/s"\n'
            '[channels.email]\nproviders = ["a"]\n',
            "channels.a.rate",
            "set it on the group",
        ),
        (
            '[channels.a]\nplugin = "recording"\n[channels.b]\nproviders = ["a"]\n'
            '[channels.email]\nproviders = ["b"]\n',
            "channels.email.providers",
            "'b' is a group itself",
        ),
        (
            '[channels.a]\nplugin = "recording"\n[channels.b]\nproviders = ["a"]\n'
            '[channels.email]\nproviders = ["a"]\n',
            "channels.email.providers",
            "'a' is already a provider of 'b'",
        ),
        (
            '[channels.email]\nplugin = "recording"\ncircuit = { failures = 3 }\n',
            "channels.email.circuit",
            "a circuit belongs to a failover group",
        ),
    ],
)
def test_a_wrong_group_or_rate_is_reported_with_its_key(tmp_path, channels, key, why):
    with pytest.raises(ConfigErrors) as caught:
        _load(tmp_path, channels)
    found = [e for e in caught.value.errors if e.key == key]
    assert found, [str(e) for e in caught.value.errors]
    assert why in found[0].reason
    assert found[0].file and found[0].file.endswith("program.toml")


def test_a_touch_may_name_a_group_and_an_unknown_channel_lists_groups_too(tmp_path):
    with pytest.raises(ConfigErrors) as caught:
        _load(
            tmp_path,
            """
            [channels.a]
            plugin = "recording"

            [channels.mail]
            providers = ["a"]
            """,
        )
    [error] = caught.value.errors
    assert error.key == "touches.welcome.channel"
    assert "(channels: a, mail)" in error.reason
