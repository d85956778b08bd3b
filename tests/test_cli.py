"""The CLI, run as a newcomer runs it: the installed ``onetomany`` command in a subprocess."""

from __future__ import annotations

import email
import email.policy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from onetomany import __version__

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "onboarding"
CLI = Path(sys.executable).with_name("onetomany")


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLI), *args], capture_output=True, text=True, cwd=cwd, timeout=120, check=False
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


def test_run_once_on_the_example_writes_real_emails(example):
    result = run_cli("run", str(example), "--once")
    assert result.returncode == 0, result.stderr
    assert "queued 9 touch(es); delivered 9, retrying 0, dead-lettered 0" in result.stdout
    outbox = example / "var" / "outbox"
    assert str(outbox) in result.stdout.replace("\n", "")
    files = sorted(outbox.glob("*.eml"))
    assert len(files) == 8
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

    again = run_cli("run", str(example), "--once")
    assert "queued 0 touch(es); delivered 0" in again.stdout  # nothing is sent twice
    assert len(list(outbox.glob("*.eml"))) == 8


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
    assert run_cli("run", str(example), "--once").returncode == 0
    contacts = example / "data" / "contacts.csv"
    contacts.write_text(
        contacts.read_text() + "ct-008,acc-004,Bad Row,not-an-email,,admin,en,UTC,no\n"
    )
    result = run_cli("run", str(example), "--once")
    assert result.returncode == 1
    assert "contacts.csv:9" in result.stderr
    assert "email" in result.stderr
    from onetomany.store import Store

    store = Store(example / "var" / "onetomany.db")
    assert store.count("contacts") == 7
    assert store.count("outbox") == 9


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
    assert "Book now: 4 accounts (high 1, mid 1, low 1, tech 1)" in result.stdout


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
    assert "rendered for 7 contact(s)" in ok.stdout
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
        "preview", str(example), "welcome", "--contact", "ct-007", "--out", str(tmp_path / "p")
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "p" / "welcome.id.html").exists()  # Budi reads Indonesian
