"""Timelines: what happened to a contact or an account, in order, in the viewer's timezone."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from onetomany import Account, Contact
from onetomany.cli.commands import app
from onetomany.engine import Engine
from onetomany.errors import InputError
from onetomany.metrics.timeline import machine_zone
from onetomany.program import EventTrigger, Reentry, Touch
from onetomany.store import Store
from onetomany.testing import FrozenClock, RecordingChannel, make_plugins

from .conftest import make_program

T0 = datetime(2026, 9, 1, 12, tzinfo=UTC)
PROGRAM_TOML = """\
[program]
name = "acme"
sender = "Acme <success@acme.test>"
[channels.email]
plugin = "outbox"
folder = "var/outbox"
[touches.welcome]
trigger = { event = "signed_up" }
channel = "email"
template = "welcome"
reentry = "once"
"""


@pytest.fixture
def history(tmp_path):
    """c1 signs up twice (welcomed once: the second is skipped), opens the welcome, a proxy
    opens it too, and answers NPS; c2, at the same account, logs in."""
    clock = FrozenClock(T0)
    touch = Touch(
        name="welcome",
        trigger=EventTrigger(event="signed_up"),
        channel="email",
        template="welcome",
        reentry=Reentry(kind="once"),
    )
    engine = Engine(
        make_program(tmp_path, touch),
        store=Store(tmp_path / "store.db"),
        clock=clock,
        plugins=make_plugins(),
        channels={"email": RecordingChannel()},
    )
    engine.identify(
        Account(id="a1", name="Northwind"),
        Contact(id="c1", account_id="a1", email="c1@northwind.test"),
        Contact(id="c2", account_id="a1", email="c2@northwind.test"),
    )
    engine.track("signed_up", contact_id="c1", account_id="a1")
    engine.tick()
    engine.dispatch()
    key = engine.store.outbox_rows()[0].idempotency_key
    clock.advance(timedelta(hours=2))
    engine.track_engagement(key, "opened")
    engine.track(
        "message_opened", contact_id="c1", properties={"idempotency_key": key, "machine": True}
    )
    clock.advance(timedelta(hours=1))
    engine.track("signed_up", contact_id="c1", account_id="a1")
    engine.tick()
    engine.track("login", contact_id="c2", account_id="a1")
    engine.track("nps_answered", contact_id="c1", properties={"score": 9, "comment": "great"})
    (tmp_path / "program.toml").write_text(PROGRAM_TOML)
    yield engine
    engine.close()


def test_a_contacts_timeline_tells_what_happened_in_order(history):
    found = history.timeline("c1", tz=ZoneInfo("America/Sao_Paulo"))
    lines = [(e.kind, e.text) for e in found.entries]
    assert lines == [
        ("event", "signed_up"),
        ("decision", "queued welcome (event trigger)"),
        ("delivery", "sent welcome by email"),
        ("engagement", "opened welcome"),
        ("engagement", "opened welcome (machine open)"),
        ("event", "signed_up"),
        ("decision", lines[6][1]),
        ("engagement", "answered NPS: score 9"),
    ]
    assert lines[6][1].startswith("skipped welcome (event trigger): ")
    assert "once" in lines[6][1]
    first = found.entries[0].at
    assert first.utcoffset() == timedelta(hours=-3) and first.hour == 9
    assert found.subject_kind == "contact" and found.account_id == "a1"
    assert all(e.contact_id in ("c1", None) for e in found.entries)


def test_an_accounts_timeline_holds_every_contact_in_it(history):
    found = history.timeline("a1", tz=UTC)
    assert found.subject_kind == "account"
    assert set(found.contact_ids) == {"c1", "c2"}
    assert ("c2", "login") in {(e.contact_id, e.text) for e in found.entries}
    times = [e.at for e in found.entries]
    assert times == sorted(times)


def test_an_unknown_id_is_named(history):
    with pytest.raises(InputError, match="'nobody'") as raised:
        history.timeline("nobody")
    assert "holds no contact" not in str(raised.value)  # this store has some


def test_cli_timeline_prints_lines_and_json(history, tmp_path):
    runner = CliRunner()
    args = ["timeline", str(tmp_path), "c1", "--store", str(tmp_path / "store.db")]
    shown = runner.invoke(app, [*args, "--tz", "Asia/Jakarta"])
    assert shown.exit_code == 0, shown.output
    assert "times in Asia/Jakarta" in shown.output
    assert "2026-09-01 19:00 WIB" in shown.output
    assert "sent welcome by email" in shown.output
    data = json.loads(runner.invoke(app, [*args, "--json", "--tz", "UTC"]).output)
    assert data["entries"][0]["at"] == "2026-09-01T12:00:00+00:00"
    wrong = runner.invoke(app, [*args, "--tz", "Mars/Base"])
    assert wrong.exit_code != 0 and "Mars/Base" in wrong.output


def test_the_machines_timezone_keeps_its_daylight_saving_rules(history, monkeypatch, tmp_path):
    # A viewer in Los Angeles in December reads a September send at the hour her clock
    # showed then (PDT), not at December's offset (PST).
    monkeypatch.setenv("TZ", "America/Los_Angeles")
    assert machine_zone(tmp_path / "no-localtime") == ZoneInfo("America/Los_Angeles")
    found = history.timeline("c1")
    assert found.timezone == "America/Los_Angeles"
    assert found.entries[0].at.utcoffset() == timedelta(hours=-7)
    assert found.entries[0].at.hour == 5


def test_the_machines_timezone_falls_back_to_the_zone_localtime_names(monkeypatch, tmp_path):
    localtime = tmp_path / "localtime"
    localtime.symlink_to("/usr/share/zoneinfo/Asia/Jakarta")
    monkeypatch.delenv("TZ", raising=False)
    assert machine_zone(localtime) == ZoneInfo("Asia/Jakarta")
    # A TZ that names no zone is passed over, not an error.
    monkeypatch.setenv("TZ", "Nowhere/Atlantis")
    assert machine_zone(localtime) == ZoneInfo("Asia/Jakarta")
    monkeypatch.setenv("TZ", "America")  # a folder of zones, not a zone
    assert machine_zone(localtime) == ZoneInfo("Asia/Jakarta")
    # Neither names a zone: today's offset, still a timezone.
    assert machine_zone(tmp_path / "missing").utcoffset(datetime.now()) is not None


def test_an_empty_store_says_where_a_simulations_store_is_read(tmp_path):
    engine = Engine(
        make_program(tmp_path),
        store=Store(tmp_path / "empty.db"),
        plugins=make_plugins(),
        channels={"email": RecordingChannel()},
    )
    with engine, pytest.raises(InputError, match="'ct-001'") as raised:
        engine.timeline("ct-001")
    assert "holds no contact at all" in str(raised.value)
    assert "--store PATH" in str(raised.value)
