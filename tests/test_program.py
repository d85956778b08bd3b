import textwrap

import pytest

from onetomany.delivery.retry import MAX_ATTEMPTS, RetryPolicy
from onetomany.errors import ConfigError, ConfigErrors
from onetomany.plugins.settings import PluginSettings
from onetomany.program import Audience, EventTrigger, Program, Touch, load_program

from .conftest import WELCOME, write_templates

GOOD = """
[program]
name = "acme"
sender = "Acme <success@acme.test>"
store = "var/store.db"

[program.constants]
product = "Acme"

[channels.email]
plugin = "smtp"
host = "smtp.acme.test"
password = "${ACME_SMTP_PASSWORD}"

[touches.welcome]
trigger = { event = "signed_up" }
channel = "email"
template = "welcome"
audience = { roles = ["admin", "sponsor"], every = true }
"""


def _folder(tmp_path, toml):
    write_templates(tmp_path / "templates", welcome=WELCOME)
    (tmp_path / "program.toml").write_text(textwrap.dedent(toml))
    return tmp_path


def test_toml_and_python_build_the_same_program(tmp_path, monkeypatch):
    monkeypatch.setenv("ACME_SMTP_PASSWORD", "s3cret")
    loaded = load_program(_folder(tmp_path, GOOD))
    built = Program(
        name="acme",
        sender="Acme <success@acme.test>",
        store_url="var/store.db",
        constants={"product": "Acme"},
        templates_dir="templates",
        channels={
            "email": PluginSettings(
                name="email",
                plugin="smtp",
                options={"host": "smtp.acme.test", "password": "s3cret"},
                base_dir=tmp_path,
                origin=str(tmp_path / "program.toml"),
            )
        },
        touches=(
            Touch(
                name="welcome",
                trigger=EventTrigger(event="signed_up"),
                channel="email",
                template="welcome",
                audience=Audience(roles=("admin", "sponsor"), every=True),
            ),
        ),
        base_dir=tmp_path,
        origin=str(tmp_path / "program.toml"),
    )
    assert loaded == built


def test_secrets_come_from_the_environment_and_never_show(tmp_path, monkeypatch):
    monkeypatch.setenv("ACME_SMTP_PASSWORD", "s3cret")
    settings = load_program(_folder(tmp_path, GOOD)).channels["email"]
    assert settings.options["password"] == "s3cret"
    assert "s3cret" not in repr(settings)
    assert "s3cret" not in str(settings)


def test_an_unset_environment_variable_is_named(tmp_path, monkeypatch):
    monkeypatch.delenv("ACME_SMTP_PASSWORD", raising=False)
    with pytest.raises(
        ConfigErrors,
        match=r"channels\.email\.password: environment variable ACME_SMTP_PASSWORD is not set",
    ):
        load_program(_folder(tmp_path, GOOD))


def test_every_problem_is_reported_at_once_with_file_and_key(tmp_path):
    broken = """
    [program]
    name = "acme"
    sendr = "typo@acme.test"

    [channels.email]
    host = "no plugin given"

    [touches.welcome]
    trigger = { evnt = "signed_up" }
    channel = "email"

    [touches.nudge]
    trigger = { event = "inactive" }
    template = "welcome"
    audience = { roles = "admin" }
    colour = "blue"
    """
    with pytest.raises(ConfigErrors) as info:
        load_program(_folder(tmp_path, broken))
    found = {(e.key, e.reason.split(" (")[0]) for e in info.value.errors}
    assert found == {
        ("program.sendr", "unknown key"),
        ("channels.email.plugin", "is required"),
        ("touches.welcome.trigger", "unknown trigger key(s) ['evnt']"),
        ("touches.nudge.channel", "is required"),
        ("touches.nudge.audience.roles", "expected a list of role names, got 'admin'"),
        ("touches.nudge.colour", "unknown key"),
    }
    assert all(e.file == str(tmp_path / "program.toml") for e in info.value.errors)


def test_malformed_toml_names_the_file(tmp_path):
    (tmp_path / "program.toml").write_text("[program\nname = 1\n")
    with pytest.raises(ConfigError, match=r"program\.toml: malformed TOML"):
        load_program(tmp_path)


def test_a_folder_without_a_program_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"no program\.toml here"):
        load_program(tmp_path)


def test_references_that_do_not_resolve_are_listed(tmp_path):
    toml = GOOD.replace('channel = "email"', 'channel = "mail"').replace(
        'template = "welcome"', 'template = "hello"'
    )
    with pytest.raises(ConfigErrors) as info:
        load_program(_folder(tmp_path, toml.replace("${ACME_SMTP_PASSWORD}", "x")))
    keys = sorted(e.key for e in info.value.errors)
    assert keys == ["touches.welcome.channel", "touches.welcome.template"]


def test_delivery_retries_are_tuned_in_toml(tmp_path, monkeypatch):
    monkeypatch.setenv("ACME_SMTP_PASSWORD", "x")
    toml = GOOD + "\n[delivery]\nmax_attempts = 8\ninitial = 5\nmaximum = 600\njitter = 0\n"
    program = load_program(_folder(tmp_path, toml))
    assert program.retry.max_attempts == 8
    assert [program.retry.wait(n) for n in (1, 2, 8)] == [5, 10, 600]


@pytest.mark.parametrize(
    ("line", "key", "reason"),
    [
        ("max_attempts = 0", "delivery.max_attempts", "expected a whole number >= 1"),
        ("max_attempts = 2.5", "delivery.max_attempts", "expected a whole number >= 1"),
        ('initial = "soon"', "delivery.initial", "expected a number >= 0"),
        ("retries = 3", "delivery.retries", "unknown key"),
        ("max_attempts = 100000000", "delivery.max_attempts", "expected a whole number from 1"),
        ("initial = 0", "delivery.initial", "expected a positive number of seconds"),
        ("maximum = 0", "delivery.maximum", "expected a positive number of seconds"),
        ("initial = 60\nmaximum = 10", "delivery.maximum", "must be at least initial"),
        ("jitter = inf", "delivery.jitter", "expected a number of seconds >= 0"),
    ],
)
def test_bad_delivery_settings_are_named(tmp_path, monkeypatch, line, key, reason):
    monkeypatch.setenv("ACME_SMTP_PASSWORD", "x")
    with pytest.raises(ConfigErrors) as info:
        load_program(_folder(tmp_path, GOOD + f"\n[delivery]\n{line}\n"))
    [error] = info.value.errors
    assert error.key == key
    assert error.reason.startswith(reason)


def test_a_retry_policy_that_never_ends_is_refused_naming_each_key(tmp_path, monkeypatch):
    monkeypatch.setenv("ACME_SMTP_PASSWORD", "x")
    toml = GOOD + "\n[delivery]\ninitial = 0\nmaximum = 0\nmax_attempts = 100000000\n"
    with pytest.raises(ConfigErrors) as info:
        load_program(_folder(tmp_path, toml))
    keys = sorted(str(error.key) for error in info.value.errors)
    assert keys == ["delivery.initial", "delivery.max_attempts", "delivery.maximum"]
    assert all(error.file for error in info.value.errors)
    with pytest.raises(ConfigError, match="max_attempts") as error:
        RetryPolicy(max_attempts=100_000_000)
    assert error.value.key == "max_attempts"
    with pytest.raises(ConfigError, match="initial"):
        RetryPolicy(initial=0, maximum=0)
    assert RetryPolicy(max_attempts=MAX_ATTEMPTS).max_attempts == MAX_ATTEMPTS


def test_validate_checks_segments_against_declared_trait_types(tmp_path, monkeypatch):
    monkeypatch.setenv("ACME_SMTP_PASSWORD", "x")
    toml = (
        GOOD
        + """
[traits]
account = { mrr = "float", plan = "str", signed_up_at = "date" }

[segments]
big = "account.mrr >= 'lots'"
old = "days_since(account.plan) > 30"
fine = "account.mrr >= 500 and days_since(account.signed_up_at) > 30"
"""
    )
    with pytest.raises(ConfigErrors) as info:
        load_program(_folder(tmp_path, toml))
    keys = sorted(e.key for e in info.value.errors)
    assert keys == ["segments.big", "segments.old"]


def test_unknown_trait_types_are_named(tmp_path, monkeypatch):
    monkeypatch.setenv("ACME_SMTP_PASSWORD", "x")
    toml = GOOD + '\n[traits]\naccount = { mrr = "money" }\nperson = {}\n'
    with pytest.raises(ConfigErrors) as info:
        load_program(_folder(tmp_path, toml))
    assert sorted(e.key for e in info.value.errors) == ["traits.account.mrr", "traits.person"]


EVERY_KIND = """
[program]
name = "acme"

[segments]
low = "account.seats < 5"

[[journeys.onboarding.stages]]
name = "setup"
entry = "exists(last('signed_up'))"
complete = "count('connected', days=365) >= 1"
ideal_days = 7

[[journeys.onboarding.stages]]
name = "adoption"
complete = "count('report', days=365) >= 3"

[channels.email]
plugin = "outbox"
folder = "out"

[touches.welcome]
trigger = { event = "signed_up", where = { plan = "pro" } }
channel = "email"
reentry = "once"

[touches.nudge]
trigger = { segment = "low", on = "leave" }
channel = "email"
template = "welcome"
reentry = { per_days = 30 }

[touches.late]
trigger = { stage = "onboarding.setup", on = "overdue" }
channel = "email"
template = "welcome"
reentry = { per = "stage", journey = "onboarding" }

[touches.quiet]
trigger = { absence = "login", days = 30, by = "contact" }
channel = "email"
template = "welcome"

[touches.nps]
trigger = { rrule = "FREQ=DAILY;INTERVAL=90", anchor = "signed_up", after_days = 90 }
channel = "email"
template = "welcome"

[touches.resend]
trigger = { not_clicked = "welcome", days = 3 }
channel = "email"
template = "welcome"
"""


def test_toml_and_python_agree_on_every_trigger_journey_and_reentry_rule(tmp_path):
    from onetomany.program import (
        AbsenceTrigger,
        CadenceTrigger,
        EngagementTrigger,
        Reentry,
        SegmentTrigger,
        StageTrigger,
    )
    from onetomany.rules.journeys import Journey, Stage

    loaded = load_program(_folder(tmp_path, EVERY_KIND))
    touch = {"channel": "email", "template": "welcome"}
    assert loaded.touches == (
        Touch(
            name="welcome",
            trigger=EventTrigger(event="signed_up", where={"plan": "pro"}),
            reentry=Reentry(kind="once"),
            **touch,
        ),
        Touch(
            name="nudge",
            trigger=SegmentTrigger(segment="low", on="leave"),
            reentry=Reentry(kind="period", days=30),
            **touch,
        ),
        Touch(
            name="late",
            trigger=StageTrigger(journey="onboarding", stage="setup", on="overdue"),
            reentry=Reentry(kind="stage", journey="onboarding"),
            **touch,
        ),
        Touch(name="quiet", trigger=AbsenceTrigger(event="login", days=30, by="contact"), **touch),
        Touch(
            name="nps",
            trigger=CadenceTrigger(
                rrule="FREQ=DAILY;INTERVAL=90", anchor="signed_up", after_days=90
            ),
            **touch,
        ),
        Touch(
            name="resend",
            trigger=EngagementTrigger(touch="welcome", outcome="not_clicked", days=3),
            **touch,
        ),
    )
    assert loaded.journeys == {
        "onboarding": Journey(
            name="onboarding",
            stages=(
                Stage(
                    name="setup",
                    entry="exists(last('signed_up'))",
                    complete="count('connected', days=365) >= 1",
                    ideal_days=7,
                ),
                Stage(name="adoption", complete="count('report', days=365) >= 3"),
            ),
        )
    }


def test_references_no_trigger_can_reach_are_listed_together(tmp_path):
    broken = (
        EVERY_KIND.replace('segment = "low", on', 'segment = "lowe", on')
        .replace('"onboarding.setup"', '"onboarding.setpu"')
        .replace('not_clicked = "welcome"', 'not_clicked = "welcom"')
    )
    broken += """
[touches.adoption_late]
trigger = { stage = "onboarding.adoption", on = "overdue" }
channel = "email"
template = "welcome"
"""
    with pytest.raises(ConfigErrors) as info:
        load_program(_folder(tmp_path, broken))
    found = {e.key: e.reason for e in info.value.errors}
    assert set(found) == {
        "touches.nudge.trigger",
        "touches.late.trigger",
        "touches.resend.trigger",
        "touches.adoption_late.trigger",
    }
    assert all("no trigger can reach this touch" in reason for reason in found.values())
    assert "unknown segment 'lowe'" in found["touches.nudge.trigger"]
    assert "no stage 'setpu'" in found["touches.late.trigger"]
    assert "unknown touch 'welcom'" in found["touches.resend.trigger"]
    assert "never overdue" in found["touches.adoption_late.trigger"]
