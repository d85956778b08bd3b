"""The ``make demo-providers`` variant: the example's texts through the Twilio plugin, its CSM
tasks to Slack and its email through a failover group, against the local stand-ins the demo
starts itself (loopback only)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from onetomany.program import load_program

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "onboarding"


def _demo():
    spec = importlib.util.spec_from_file_location("demo_providers", EXAMPLE / "demo_providers.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_the_variant_sends_texts_to_twilio_and_tasks_to_slack(tmp_path):
    from datetime import timedelta

    # The three enterprise accounts turn high-touch on the first round (three Slack tasks);
    # Tailspin's invoice passes 40 days overdue on 26 October (a text).
    run = _demo().run("2026-10-20", "2026-10-28", var=tmp_path, step=timedelta(hours=3))

    assert len(run.sms) == 1
    [sms] = run.sms
    assert sms["To"].startswith("+") and "Tailspin Toys" in sms["Body"]
    assert len(run.slack) >= 3
    assert all(post["channel"] == "#cs-tasks" for post in run.slack)
    assert sum("high-touch account" in str(post.get("text")) for post in run.slack) == 3
    assert run.sent_by_provider["sms"] == 1 and run.sent_by_provider["csm"] == len(run.slack)
    # Postmark's first answers are 503s: those emails went to the outbox folder instead.
    assert run.sent_by_provider.get("email_outbox", 0) >= 1
    assert run.sent_by_provider.get("postmark", 0) == len(run.postmark)
    assert run.planned == run.sent
    assert len([p for p in (tmp_path / "outbox").iterdir() if p.suffix == ".eml"]) >= 1


def test_the_default_demo_still_writes_the_outbox_folder():
    program = load_program(EXAMPLE)
    assert {s.plugin for s in program.channels.values()} == {"outbox"}
    assert program.routes == {}


def test_the_providers_file_replaces_the_channels_and_names_its_own_errors(tmp_path, monkeypatch):
    for name in (
        "POSTMARK_SERVER_TOKEN",
        "TWILIO_ACCOUNT_SID",
        "TWILIO_AUTH_TOKEN",
        "SLACK_BOT_TOKEN",
    ):
        monkeypatch.setenv(name, "x")
    program = load_program(EXAMPLE, channels=EXAMPLE / "providers.toml")
    assert program.channels["sms"].plugin == "twilio" and program.channels["csm"].plugin == "slack"
    assert program.routes["email"].providers == ("postmark", "email_outbox")
    assert program.routes["sms"].rate is not None and program.routes["sms"].rate.unit == "segments"

    bad = tmp_path / "channels.toml"
    bad.write_text('[channels.email]\nproviders = ["nowhere"]\n[touches.x]\nchannel = "email"\n')
    from onetomany.errors import ConfigErrors

    with pytest.raises(ConfigErrors) as caught:
        load_program(EXAMPLE, channels=bad)
    problems = {(e.file, e.key) for e in caught.value.errors}
    assert (str(bad), "touches") in problems
    assert (str(bad), "channels.email.providers") in problems


def test_validate_reads_a_channels_file_and_names_its_missing_variables(tmp_path):
    from typer.testing import CliRunner

    from onetomany.cli.commands import app

    env = {
        "POSTMARK_SERVER_TOKEN": "t",
        "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "TWILIO_AUTH_TOKEN": "t",
        "SLACK_BOT_TOKEN": "xoxb-t",
    }
    providers = EXAMPLE / "providers.toml"
    ok = CliRunner().invoke(app, ["validate", str(EXAMPLE), "--channels", str(providers)], env=env)
    assert ok.exit_code == 0, ok.output
    assert "ok: program 'acme-onboarding'" in ok.output

    unset = dict.fromkeys(env, None)
    bad = CliRunner().invoke(
        app, ["validate", str(EXAMPLE), "--channels", str(providers)], env=unset
    )
    # The command's main() prints a configuration error; the app raises it.
    problem = str(bad.exception)
    assert "providers.toml: channels.sms.auth_token" in problem
    assert "environment variable TWILIO_AUTH_TOKEN is not set" in problem
