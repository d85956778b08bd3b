"""The CLI, run as a newcomer runs it: the installed ``onetomany`` command in a subprocess."""

from __future__ import annotations

import csv
import email
import email.policy
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from importlib.metadata import version
from pathlib import Path

import pytest

from onetomany import Account, Contact, __version__
from onetomany.engine import Engine
from onetomany.program import load_program

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "onboarding"
CLI = Path(sys.executable).with_name("onetomany")


def run_cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLI), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=None if env is None else os.environ | env,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def example(tmp_path):
    target = tmp_path / "onboarding"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("var"))
    return target


def test_version():
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"onetomany {__version__}"


def test_plugins_json_lists_bundled_and_builtin_plugins():
    result = run_cli("plugins", "--json")
    assert result.returncode == 0, result.stderr
    plugins = {p["name"]: p for p in json.loads(result.stdout)}
    assert {"smtp", "csv", "inapp", "outbox"} <= set(plugins)
    assert plugins["smtp"]["distribution"] == "onetomany-smtp"
    assert plugins["csv"]["distribution"] == "onetomany-csv"
    assert plugins["inapp"]["distribution"] == "onetomany"
    for name in ("smtp", "csv", "inapp", "outbox"):
        assert plugins[name]["status"] == "ok"
        assert plugins[name]["version"]
    assert plugins["csv"]["hooks"] == ["onetomany_register_sources"]


def test_plugins_json_lists_the_hubspot_source_and_task_channel(
    listed_plugins: dict[str, dict[str, object]],
) -> None:
    for name in ("stripe", "sql", "hubspot", "hubspot_task"):
        assert listed_plugins[name]["status"] == "ok", name
    assert listed_plugins["hubspot"]["distribution"] == "onetomany-hubspot"
    assert listed_plugins["hubspot"]["hooks"] == ["onetomany_register_sources"]
    assert listed_plugins["hubspot_task"]["distribution"] == "onetomany-hubspot"
    assert listed_plugins["hubspot_task"]["hooks"] == ["onetomany_register_channels"]


#: The channel distributions bundled in plugins/channels, each its own distribution.
BUNDLED_CHANNELS = {
    "smtp": "onetomany-smtp",
    "postmark": "onetomany-postmark",
    "twilio": "onetomany-twilio",
    "slack": "onetomany-slack",
    "webhook": "onetomany-webhook",
    "whatsapp_cloud": "onetomany-whatsapp-cloud",
    "sendgrid": "onetomany-sendgrid",
    "mailgun": "onetomany-mailgun",
    "ses": "onetomany-ses",
}


@pytest.fixture(scope="module")
def listed_plugins() -> dict[str, dict[str, object]]:
    result = run_cli("plugins", "--json")
    assert result.returncode == 0, result.stderr
    return {p["name"]: p for p in json.loads(result.stdout)}


@pytest.mark.parametrize(("name", "distribution"), sorted(BUNDLED_CHANNELS.items()))
def test_plugins_json_lists_each_bundled_channel_with_its_distribution(
    listed_plugins: dict[str, dict[str, object]], name: str, distribution: str
) -> None:
    plugins = listed_plugins
    assert plugins[name]["distribution"] == distribution
    assert plugins[name]["version"] == version(distribution)
    assert plugins[name]["status"] == "ok"
    assert "onetomany_register_channels" in plugins[name]["hooks"]


@pytest.mark.parametrize("name", ["postmark", "ses", "twilio", "whatsapp_cloud"])
def test_plugins_json_shows_the_channels_that_read_provider_webhooks(
    listed_plugins: dict[str, dict[str, object]], name: str
) -> None:
    assert "onetomany_register_webhook_parsers" in listed_plugins[name]["hooks"]


#: What 90 simulated days of the example send, touch by touch (README.md tells the story).
PLAYBOOK = {
    "welcome": 8,
    "welcome_resend": 3,
    "welcome_call": 3,
    "day_recap": 40,
    "feature_nudge": 5,  # and a sixth account in its control group (holdout = 0.2)
    "inactivity_nudge": 1,
    "invoice_overdue": 1,
    "setup_overdue": 1,
    "onboarding_done": 8,
    "quarterly_review": 2,
    "nps": 7,
    "high_touch_intro": 3,
    "first_report_tip": 7,
}


def simulate_demo(target: Path, *, step: int = 3) -> subprocess.CompletedProcess[str]:
    """``make demo``'s simulation on a copy of the example at ``target``, keeping its store
    (var/simulation.db), its outbox and var/touches.csv, and copying the store to the
    example's own (var/onetomany.db) as the demo does. Three-hour steps send the same
    touches as the demo's one-hour steps, in a third of the time."""
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("var"))
    result = run_cli(
        "simulate",
        str(target),
        *("--from", "2026-09-01", "--to", "2026-11-30", "--step", str(step)),
        *("--store", str(target / "var" / "simulation.db")),
        *("--out", str(target / "var" / "touches.csv")),
        # A minute on an idle machine; several on one the whole suite shares.
        timeout=900,
    )
    if result.returncode == 0:
        shutil.copyfile(target / "var" / "simulation.db", target / "var" / "onetomany.db")
    return result


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """The demo's 90 days, on three-hour steps."""
    target = tmp_path_factory.mktemp("demo") / "onboarding"
    return target, simulate_demo(target)


def test_the_example_plays_every_situation_of_the_playbook(simulated):
    example, result = simulated
    assert result.returncode == 0, result.stderr
    assert "89 planned touch(es): 89 sent, 0 dead-lettered, 0 still pending" in result.stdout
    # Said even when the output is not a terminal (here a pipe), as in `make demo | tee`.
    outbox = example.resolve() / "var" / "outbox"
    assert f"channels email, sms, csm, inapp wrote their messages to {outbox}/" in result.stdout
    assert f"wrote 89 planned touch(es) to {example.resolve() / 'var' / 'touches.csv'}" in (
        result.stdout
    )
    with (example / "var" / "touches.csv").open() as file:
        rows = list(csv.DictReader(file))
    sent = Counter(row["touch"] for row in rows)
    assert sent == PLAYBOOK
    by_touch = {row["touch"]: row for row in rows}
    assert by_touch["invoice_overdue"]["recipient"] == "+14155550123"  # Tailspin's admin
    assert by_touch["invoice_overdue"]["time"].startswith("2026-10-26")  # due 15 Sep, + 41 days
    assert by_touch["inactivity_nudge"]["account"] == "acc-002"
    assert {r["account"] for r in rows if r["touch"] == "welcome_call"} == {
        "acc-001",
        "acc-007",
        "acc-012",
    }
    recaps = [r for r in rows if r["touch"] == "day_recap" and r["contact"] == "ct-004"]
    assert [r["time"][:10] for r in recaps] == [f"2026-09-{day:02}" for day in range(3, 8)]


def test_the_timeline_of_ct_001_shows_the_welcome_its_resend_and_the_recaps_opened(simulated):
    """Nancy (ct-001, in Los Angeles) opens every day recap but neither the welcome nor its
    resend; her timeline, read on a machine in Los Angeles after the demo, with the command
    the README gives, says so in her own hours."""
    example, result = simulated
    assert result.returncode == 0, result.stderr
    shown = run_cli("timeline", str(example), "ct-001", env={"TZ": "America/Los_Angeles"})
    assert shown.returncode == 0, shown.stderr
    header, *lines = shown.stdout.splitlines()
    assert header.startswith("contact ct-001 (account acc-001): ")
    assert header.endswith("times in America/Los_Angeles")
    said = [line.split(maxsplit=4)[-1] for line in lines]
    about = [text for text in said if "welcome" in text or "day_recap" in text]
    assert about == [
        "queued welcome (email)",
        "sent welcome by email",
        *["queued day_recap (email)", "sent day_recap by email", "opened day_recap"] * 3,
        "queued welcome_resend (email)",
        "sent welcome_resend by email",
        *["queued day_recap (email)", "sent day_recap by email", "opened day_recap"] * 2,
        "queued welcome_call (csm)",
        "sent welcome_call by csm",
    ]
    when = {text: line[:20] for line, text in zip(lines, said, strict=True)}
    # The welcome waits for 08:00 on her clock (a signup at 07:00); the resend goes three days
    # later; the last recap at 17:00 is opened at 19:00: her clock, daylight saving included.
    assert when["sent welcome by email"] == "2026-09-02 08:00 PDT"
    assert when["sent welcome_resend by email"] == "2026-09-05 08:00 PDT"
    assert when["sent day_recap by email"] == "2026-09-06 17:00 PDT"
    assert when["opened day_recap"] == "2026-09-06 19:00 PDT"
    assert when["sent welcome_call by csm"] == "2026-09-08 08:00 PDT"


def test_the_simulated_example_writes_real_emails_and_records(simulated):
    example, _ = simulated
    outbox = example / "var" / "outbox"
    files = sorted(outbox.glob("*.eml"))
    # One SMS, seven in-app tips and seven CSM tasks are JSON records, not emails.
    assert len(files) == sum(PLAYBOOK.values()) - 15
    for path in files:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert message.get_content_type() == "multipart/alternative"
        assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
        assert message["Message-ID"] and message["Date"] and message["Subject"]
        assert message["From"] == "Acme Success <success@acme-analytics.test>"
        html = message.get_body(("html",)).get_content()
        text = message.get_body(("plain",)).get_content()
        assert "Acme Analytics" in html and "Acme Analytics" in text
        assert "{{" not in html and "{{" not in text
    records = [json.loads(p.read_text()) for p in outbox.glob("*.json")]
    tasks = [r for r in records if r["kind"] == "csm"]
    assert len(tasks) == 7
    assert {t["to"] for t in tasks} == {
        "ana.souza@acme-analytics.test",
        "budi.santoso@acme-analytics.test",
    }
    assert all(t["data"]["task"]["due"] for t in tasks)
    [sms] = [r for r in records if r["kind"] == "sms"]
    assert "more than 40 days overdue" in sms["text"]


def test_run_once_on_the_example_sends_nothing_twice(example):
    first = run_cli("run", str(example), "--once")
    assert first.returncode == 0, first.stderr
    assert "dead-lettered 0" in first.stdout
    again = run_cli("run", str(example), "--once")
    assert again.returncode == 0, again.stderr
    assert "queued 0 touch(es); delivered 0" in again.stdout


def test_the_first_run_says_it_replays_the_stored_history_and_how_to_skip_it(example):
    first = run_cli("run", str(example), "--once")
    assert first.returncode == 0, first.stderr
    assert "replaying 649 stored event(s)" in first.stderr
    assert "--from-now" in first.stderr
    assert "synced crm: 12 accounts, 22 contacts, 649 events (649 new)" in first.stdout
    again = run_cli("run", str(example), "--once")
    assert "replaying" not in again.stderr


def test_run_from_now_adopts_the_example_without_replaying_its_history(example):
    # The CLI runs on the wall clock: email's window open at any hour the suite runs.
    toml = example / "program.toml"
    window = 'email = { hours = "08:00-20:00", days = "mon-sun" }'
    assert window in toml.read_text()
    toml.write_text(toml.read_text().replace(window, 'email = "always"'))
    first = run_cli("run", str(example), "--once", "--from-now")
    assert first.returncode == 0, first.stderr
    assert "replaying" not in first.stderr
    assert "stored event(s) treated as history" in first.stdout
    outbox = example / "var" / "outbox"

    def sent(touch: str) -> list[str]:
        return [p.name for p in outbox.glob(f"acme-onboarding_{touch}_ct-*")]

    for touch in ("welcome", "nps", "quarterly_review", "onboarding_done", "day_recap"):
        assert sent(touch) == [], touch
    with Engine(load_program(example)) as engine:
        engine.identify(
            Account(id="acc-new", name="New Co", traits={"plan": "pro", "mrr": 99.0}),
            Contact(id="ct-new", account_id="acc-new", name="Nia", email="n@x.test", role="admin"),
        )
        engine.track("signed_up", account_id="acc-new", id="ev-new-signed_up")
    again = run_cli("run", str(example), "--once", "--from-now")
    assert "has run on this store before; nothing skipped" in again.stdout
    [welcome] = sent("welcome")
    assert welcome.startswith("acme-onboarding_welcome_ct-new_")


def test_run_names_every_problem_of_a_broken_program(example):
    toml = example / "program.toml"
    toml.write_text(
        toml.read_text()
        .replace('channel = "inapp"', 'channel = "pigeon"')
        .replace('template = "day_recap"', 'template = "no_such_template"')
    )
    result = run_cli("run", str(example), "--once")
    assert result.returncode == 1
    assert "2 problem(s)" in result.stderr
    assert "touches.first_report_tip.channel: unknown channel 'pigeon'" in result.stderr
    assert "touches.day_recap.template: unknown template 'no_such_template'" in result.stderr
    assert "Traceback" not in result.stderr


def test_malformed_toml_is_reported_with_its_file(example):
    (example / "program.toml").write_text("[program\nname = 1")
    result = run_cli("validate", str(example))
    assert result.returncode == 1
    assert "program.toml: malformed TOML" in result.stderr


def test_a_malformed_csv_row_is_named_and_nothing_stored_is_lost(example):
    from onetomany.store import Store

    assert run_cli("run", str(example), "--once").returncode == 0

    def counts() -> tuple[int, int, int]:
        store = Store(example / "var" / "onetomany.db")
        try:
            return store.count("contacts"), store.count("events"), store.count("outbox")
        finally:
            store.close()

    before = counts()
    contacts = example / "data" / "contacts.csv"
    contacts.write_text(
        contacts.read_text() + "ct-099,acc-004,Bad Row,,admin,en,UTC,no,not-an-email\n"
    )
    result = run_cli("run", str(example), "--once")
    assert result.returncode == 1
    assert "contacts.csv:24" in result.stderr
    assert "email" in result.stderr
    assert counts() == before
    assert before[0] == 22


def test_db_upgrade(tmp_path):
    target = tmp_path / "fresh.db"
    first = run_cli("db", "upgrade", str(target))
    assert first.returncode == 0, first.stderr
    assert "applied 0001" in first.stdout
    second = run_cli("db", "upgrade", str(target))
    assert "up to date" in second.stdout


def test_an_unwritable_store_is_a_clear_error(example, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    toml = example / "program.toml"
    toml.write_text(
        toml.read_text().replace('store = "var/onetomany.db"', f'store = "{blocker}/x.db"')
    )
    result = run_cli("run", str(example), "--once")
    assert result.returncode == 1
    assert "StoreError" in result.stderr and "cannot create the folder" in result.stderr


def test_capacity_on_the_example_uses_the_domains_numbers(example):
    result = run_cli("capacity", str(example))
    assert result.returncode == 0, result.stderr
    assert "-> 40 accounts per CSM" in result.stdout
    assert "one more CSM every 4 months" in result.stdout
    assert "Book now: 12 accounts (high 3, mid 4, low 3, tech 2)" in result.stdout


def test_capacity_without_costs_is_a_clear_error(example):
    toml = example / "program.toml"
    text = toml.read_text()
    start, end = text.index("[tiers]"), text.index("# The emails land")
    toml.write_text(text[:start] + text[end:])
    result = run_cli("capacity", str(example))
    assert result.returncode == 1
    assert "capacity: no capacity inputs" in result.stderr


def test_validate_renders_every_template_and_names_a_missing_variable(example):
    ok = run_cli("validate", str(example))
    assert ok.returncode == 0, ok.stderr
    assert "rendered for 22 contact(s)" in ok.stdout
    assert not (example / "var").exists()  # validate leaves the program's store alone

    welcome = example / "templates" / "welcome.pt-BR.mjml"
    welcome.write_text(
        welcome.read_text().replace("{{ contact.first_name }}", "{{ contact.nickname }}", 1)
    )
    bad = run_cli("validate", str(example))
    assert bad.returncode == 1
    assert "touches.welcome" in bad.stderr
    assert "welcome.pt-BR.mjml" in bad.stderr
    assert "'nickname'" in bad.stderr


def test_preview_all_writes_every_touch_in_three_locales(example, tmp_path):
    out = tmp_path / "preview"
    result = run_cli("preview", str(example), "--all", "--out", str(out))
    assert result.returncode == 0, result.stderr
    for locale in ("en", "pt-BR", "id"):
        folder = out / "ct-004" / locale
        for touch in ("welcome", "day_recap", "first_report_tip"):
            assert (folder / f"{touch}.{locale}.html").exists()
            assert (folder / f"{touch}.{locale}.txt").exists()
    pt = (out / "ct-004" / "pt-BR" / "welcome.pt-BR.txt").read_text()
    assert "Olá" in pt or "Oi" in pt


def test_preview_of_one_touch_for_one_contact(example, tmp_path):
    result = run_cli(
        "preview", str(example), "welcome", "--contact", "ct-008", "--out", str(tmp_path / "p")
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "p" / "welcome.id.html").exists()  # Dewi reads Indonesian
