"""The simulator: the engine with a virtual clock, over a date range; and future events."""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import textwrap
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from onetomany.cli.commands import app
from onetomany.cli.simulate import (
    COLUMNS,
    CsmWeek,
    DayCount,
    SimulationReport,
    Simulator,
    parse_when,
    write_touches,
)
from onetomany.engine import Engine
from onetomany.errors import ConfigError, InvalidEventError
from onetomany.model import ChannelKind, Event
from onetomany.model.clock import FrozenClock
from onetomany.plugins.settings import PluginSettings
from onetomany.program import EventTrigger, Program, Touch, load_program
from onetomany.store import Store
from onetomany.testing import RecordingChannel, make_plugins

from .conftest import BROKEN, PEOPLE, WELCOME, write_templates

ROOT = Path(__file__).resolve().parents[1]
START = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday
END = datetime(2026, 11, 12, tzinfo=UTC)

PROGRAM = """
[program]
name = "acme"
sender = "Acme <success@acme.test>"
store = "var/program.db"

# These tests follow triggers to the hour: email may go at any time here (the default quiet
# hours are tested in test_windows.py and test_respect_simulation.py).
[windows]
email = "always"

[channels.email]
plugin = "outbox"
folder = "var/outbox"

[channels.csm]
plugin = "outbox"
folder = "var/csm"
kind = "csm"

[sources.crm]
plugin = "csv"
accounts = "data/accounts.csv"
contacts = "data/contacts.csv"
events = "data/events.csv"

[touches.welcome]
trigger = { event = "signed_up" }
channel = "email"
template = "welcome"
audience = { roles = ["admin", "sponsor"] }

[touches.kickoff_call]
trigger = { event = "signed_up" }
channel = "csm"
template = "welcome"
audience = { roles = ["admin", "sponsor"] }

[touches.report_tip]
trigger = { event = "report_created" }
channel = "email"
template = "broken"

[touches.nudge]
trigger = { absence = "login", days = 3 }
channel = "email"
template = "welcome"
audience = { roles = ["admin", "sponsor"] }
"""

ACCOUNTS = """\
id,name,plan,owner
a1,Northwind,pro,olivia@acme.test
a2,Tailspin,starter,olivia@acme.test
a3,Contoso,enterprise,omar@acme.test
"""

CONTACTS = """\
id,account_id,name,email,role
c1,a1,Nancy Davolio,nancy@northwind.test,admin
c2,a1,Andrew Fuller,andrew@northwind.test,sponsor
c3,a2,Janet Leverling,janet@tailspin.test,sponsor
c4,a3,Margaret Peacock,margaret@contoso.test,admin
"""

# Signups spread over two ISO weeks, a report whose tip cannot render, and logins: a2's last
# login (before the range) starts an absence that ends on 4 November; a1 keeps logging in.
EVENTS = """\
id,name,occurred_at,account_id,contact_id
e0,login,2026-11-01T09:30:00+00:00,a2,c3
e1,signed_up,2026-11-02T14:05:00+00:00,a1,
e2,login,2026-11-02T15:00:00+00:00,a1,c1
e3,signed_up,2026-11-03T09:10:00+00:00,a2,
e4,report_created,2026-11-04T11:00:00+00:00,a1,c1
e5,login,2026-11-04T16:00:00+00:00,a1,c1
e6,login,2026-11-07T18:00:00+00:00,a1,c1
e7,signed_up,2026-11-09T10:00:00+00:00,a3,
e8,signed_up,2026-11-20T10:00:00+00:00,a1,
"""


def _write_program(root: Path) -> Path:
    write_templates(root / "templates", welcome=WELCOME, broken=BROKEN)
    (root / "data").mkdir()
    (root / "data" / "accounts.csv").write_text(ACCOUNTS)
    (root / "data" / "contacts.csv").write_text(CONTACTS)
    (root / "data" / "events.csv").write_text(EVENTS)
    (root / "program.toml").write_text(textwrap.dedent(PROGRAM))
    return root


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return _write_program(tmp_path / "program")


@pytest.fixture
def program(folder: Path) -> Program:
    return load_program(folder)


@pytest.fixture(scope="module")
def dry(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SimulationReport]:
    """One dry run over the range, shared by the tests that only read its report."""
    folder = _write_program(tmp_path_factory.mktemp("dry") / "program")
    return folder, Simulator(load_program(folder), START, END, dry_run=True).run()


@pytest.fixture
def report(dry: tuple[Path, SimulationReport]) -> SimulationReport:
    return dry[1]


def test_the_simulation_plans_what_a_hand_driven_engine_queues(report, program, tmp_path):

    clock = FrozenClock(START)
    recorders = {
        "email": RecordingChannel(kind=ChannelKind.EMAIL),
        "csm": RecordingChannel(kind=ChannelKind.CSM),
    }
    with Engine(
        program, store=Store(tmp_path / "hand.db"), clock=clock, channels=recorders
    ) as engine:
        result = engine.source("crm").sync()
        engine.identify(*result.accounts, *result.contacts)
        events = sorted(result.events, key=lambda e: e.occurred_at)
        for event in [e for e in events if e.occurred_at < START]:
            engine.track(event)  # a login: history, which no event trigger answers
        while True:
            for event in events:
                if clock.now() - timedelta(hours=1) < event.occurred_at <= clock.now():
                    engine.track(event)
            engine.step()
            if clock.now() >= END:
                break
            clock.advance(hours=1)
        hand = {row.idempotency_key for row in engine.store.outbox_rows()}

    assert {t.idempotency_key for t in report.touches} == hand
    assert len(hand) == 10  # 3 signups x (welcome + call), the report tip, a2's nudge, ...
    sent = {m.idempotency_key for r in recorders.values() for m in r.sent}
    assert {m.idempotency_key for m in report.messages} == sent


def test_a_dry_run_renders_everything_and_delivers_nothing(dry):
    folder, report = dry

    assert not (folder / "var").exists()  # no outbox files, and no program store
    assert report.count("sent") == 9
    assert report.count("dead") == 1  # the broken template still fails, as it would live
    [dead] = [t for t in report.touches if t.status == "dead"]
    assert dead.touch == "report_tip"
    welcome = next(m for m in report.messages if m.touch == "welcome" and m.contact_id == "c1")
    assert welcome.subject == "Welcome, Nancy"
    assert welcome.to == "Nancy Davolio <nancy@northwind.test>"


def test_without_dry_run_the_channels_deliver_but_the_program_store_is_untouched(program, folder):
    report = Simulator(program, START, END).run()

    emails = sorted((folder / "var" / "outbox").glob("*.eml"))
    tasks = sorted((folder / "var" / "csm").glob("*.json"))
    assert len(emails) == report.count("sent") - 3
    assert len(tasks) == 3
    assert json.loads(tasks[0].read_text())["kind"] == "csm"
    assert not (folder / "var" / "program.db").exists()
    assert report.messages == ()


def test_per_day_counts_and_csm_tasks_per_week(report):
    signed_up = "on event 'signed_up'"

    assert report.days() == [
        DayCount(day=date(2026, 11, 2), touch="kickoff_call", segment=signed_up, sent=1, dead=0),
        DayCount(day=date(2026, 11, 2), touch="welcome", segment=signed_up, sent=1, dead=0),
        DayCount(day=date(2026, 11, 3), touch="kickoff_call", segment=signed_up, sent=1, dead=0),
        DayCount(day=date(2026, 11, 3), touch="welcome", segment=signed_up, sent=1, dead=0),
        DayCount(
            day=date(2026, 11, 4),
            touch="nudge",
            segment="no 'login' by the account for 3 days",
            sent=1,
            dead=0,
        ),
        DayCount(
            day=date(2026, 11, 4),
            touch="report_tip",
            segment="on event 'report_created'",
            sent=0,
            dead=1,
        ),
        DayCount(
            day=date(2026, 11, 7),
            touch="nudge",
            segment="no 'login' by the account for 3 days",
            sent=1,
            dead=0,
        ),
        DayCount(day=date(2026, 11, 9), touch="kickoff_call", segment=signed_up, sent=1, dead=0),
        DayCount(day=date(2026, 11, 9), touch="welcome", segment=signed_up, sent=1, dead=0),
        DayCount(
            day=date(2026, 11, 10),
            touch="nudge",
            segment="no 'login' by the account for 3 days",
            sent=1,
            dead=0,
        ),
    ]
    # A CSM task goes to the account's owner: Olivia owns a1 and a2 (week 45), Omar a3 (46).
    assert report.csm_weeks() == [
        CsmWeek(csm="olivia@acme.test", week="2026-W45", tasks=2),
        CsmWeek(csm="omar@acme.test", week="2026-W46", tasks=1),
    ]


def test_an_absence_fires_on_the_simulated_day_it_is_due(report):
    nudges = [(t.contact, t.time) for t in report.touches if t.touch == "nudge"]

    assert nudges == [
        # a2's last login was 1 Nov 09:30: three days later, on the next hourly round.
        ("c3", datetime(2026, 11, 4, 10, tzinfo=UTC)),
        # a1 logged in on 4 Nov 16:00, then 7 Nov 18:00: each absence once, three days on.
        ("c1", datetime(2026, 11, 7, 16, tzinfo=UTC)),
        ("c1", datetime(2026, 11, 10, 18, tzinfo=UTC)),
    ]


def test_the_simulation_only_replays_events_inside_its_range(report):

    assert report.history_events == 1  # the login of 1 November
    assert report.replayed_events == 7  # the signup of 20 November is after the end
    assert report.steps == 10 * 24 + 1


@pytest.mark.parametrize("name", ["planned.csv", "planned.json"])
def test_the_out_file_holds_every_planned_touch(report, tmp_path, name):
    path = tmp_path / "out" / name
    write_touches(report.touches, path)

    if path.suffix == ".csv":
        with path.open(newline="") as file:
            reader = csv.DictReader(file)
            assert tuple(reader.fieldnames or ()) == COLUMNS
            rows = list(reader)
    else:
        rows = json.loads(path.read_text())
    assert rows == [t.as_dict() for t in report.touches]
    assert len(rows) == 10
    call = next(r for r in rows if r["touch"] == "kickoff_call" and r["account"] == "a3")
    assert call == {
        "time": "2026-11-09T10:00:00+00:00",
        "touch": "kickoff_call",
        "channel": "csm",
        "kind": "csm",
        "contact": "c4",
        "account": "a3",
        "recipient": "omar@acme.test",
        "segment": "on event 'signed_up'",
        "idempotency_key": "acme:kickoff_call:c4:e7",
        "status": "sent",
    }


def test_an_out_file_of_another_kind_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"name a \.csv or \.json file"):
        write_touches([], tmp_path / "planned.xlsx")


def test_a_given_scratch_store_is_kept_and_the_programs_own_is_refused(program, tmp_path):
    scratch = tmp_path / "scratch.db"
    report = Simulator(program, START, END, dry_run=True, store_url=str(scratch)).run()
    store = Store(scratch)
    assert {r.idempotency_key for r in store.outbox_rows()} == {
        t.idempotency_key for t in report.touches
    }
    store.close()
    own = program.base_dir / "var" / "program.db"
    for url in (str(own), f"sqlite:///{own}", os.path.relpath(own)):
        with pytest.raises(ConfigError, match="the program's own store"):
            Simulator(program, START, END, store_url=url)


@pytest.mark.parametrize(
    ("start", "end", "step", "message"),
    [
        (END, START, timedelta(hours=1), "ends .* before it starts"),
        (START, START, timedelta(hours=1), "ends .* before it starts"),
        (START, END, timedelta(0), "step must be positive"),
        (START.replace(tzinfo=None), END, timedelta(hours=1), "has no timezone"),
    ],
)
def test_a_bad_range_is_refused(program, start, end, step, message):
    with pytest.raises(ConfigError, match=message):
        Simulator(program, start, end, step=step)


def test_dates_are_utc_midnight_and_datetimes_keep_their_offset():
    assert parse_when("2026-11-02") == datetime(2026, 11, 2, tzinfo=UTC)
    assert parse_when("2026-11-02T09:00-03:00") == datetime(2026, 11, 2, 12, tzinfo=UTC)
    assert parse_when("2026-11-02T09:00") == datetime(2026, 11, 2, 9, tzinfo=UTC)
    with pytest.raises(ConfigError, match=r"--from: '2026-11-31' is not a date"):
        parse_when("2026-11-31", option="--from")


OFFSETS = st.integers(min_value=-23 * 60, max_value=23 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)


@given(st.datetimes(timezones=OFFSETS))
def test_any_aware_datetime_reads_back_as_the_same_instant(when):
    assert parse_when(when.isoformat()) == when


# -- the CLI ---------------------------------------------------------------------------------


def test_the_cli_simulates_and_writes_the_out_file(folder, tmp_path):
    out = tmp_path / "planned.json"
    result = CliRunner().invoke(
        app,
        [
            "simulate",
            str(folder),
            "--from",
            "2026-11-02",
            "--to",
            "2026-11-12",
            "--dry-run",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Touches per day" in result.output
    assert "CSM tasks per week" in result.output
    assert "olivia@acme.test" in result.output
    assert "10 planned touch(es): 9 sent, 1 dead-lettered, 0 still pending" in result.output
    assert len(json.loads(out.read_text())) == 10
    assert not (folder / "var").exists()


@pytest.mark.parametrize(
    ("dates", "message"),
    [
        (["--from", "2026-11-12", "--to", "2026-11-02"], "--to 2026-11-02 is not after --from"),
        (["--from", "2026-02-30", "--to", "2026-11-02"], "'2026-02-30' is not a date"),
        (["--from", "2026-11-02", "--to", "next week"], "'next week' is not a date"),
    ],
)
def test_the_cli_names_bad_dates(folder, dates, message):
    result = CliRunner().invoke(app, ["simulate", str(folder), *dates])
    assert result.exit_code == 2
    assert message in " ".join(result.output.replace("│", " ").split())


def test_the_cli_refuses_an_out_file_it_cannot_write_before_simulating(folder, tmp_path):
    result = CliRunner().invoke(
        app,
        [
            *("simulate", str(folder), "--from", "2026-11-02", "--to", "2026-11-03"),
            *("--out", str(tmp_path / "planned.txt")),
        ],
    )
    assert result.exit_code == 1
    assert isinstance(result.exception, ConfigError)


def test_the_onboarding_example_simulates_ten_days_dry(tmp_path):
    example = tmp_path / "onboarding"
    shutil.copytree(ROOT / "examples" / "onboarding", example, ignore=shutil.ignore_patterns("var"))
    result = CliRunner().invoke(
        app, ["simulate", str(example), "--from", "2026-11-01", "--to", "2026-11-11", "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    # 26: the feature nudge's control group (holdout = 0.2) keeps acc-005 out of it.
    assert "26 planned touch(es): 26 sent, 0 dead-lettered, 0 still pending" in result.output
    assert not (example / "var").exists()


# -- events from the future ------------------------------------------------------------------


def _static_program(tmp_path: Path, events: list[Event]) -> Program:
    write_templates(tmp_path / "templates", welcome=WELCOME)
    return Program(
        name="acme",
        touches=(
            Touch(
                name="welcome",
                trigger=EventTrigger(event="signed_up"),
                channel="email",
                template="welcome",
            ),
        ),
        channels={"email": PluginSettings(name="email", plugin="recording")},
        sources={
            "crm": PluginSettings(
                name="crm", plugin="static", options={"accounts": PEOPLE[:2], "events": events}
            )
        },
        templates_dir=tmp_path / "templates",
        base_dir=tmp_path,
    )


def test_track_refuses_an_event_from_the_future_and_names_it(tmp_path, temp_store):
    clock = FrozenClock(START)
    program = _static_program(tmp_path, [])
    with Engine(program, store=temp_store, clock=clock, plugins=make_plugins()) as engine:
        engine.track("login", account_id="a1", occurred_at=START + timedelta(minutes=5))
        with pytest.raises(InvalidEventError) as info:
            engine.track("login", account_id="a1", occurred_at=START + timedelta(hours=2), id="f1")
        assert str(info.value) == (
            "event 'login' (f1): occurred_at 2026-11-02T02:00:00+00:00 is ahead of the "
            "engine's clock (2026-11-02T00:00:00+00:00) by more than 0:05:00"
        )
        assert temp_store.count("events") == 1  # the refused one is not stored


def test_the_tolerance_is_an_engine_argument(tmp_path, temp_store):
    program = _static_program(tmp_path, [])
    with Engine(
        program,
        store=temp_store,
        clock=FrozenClock(START),
        plugins=make_plugins(),
        future_tolerance=timedelta(days=1),
    ) as engine:
        engine.track("login", account_id="a1", occurred_at=START + timedelta(hours=23))
        with pytest.raises(InvalidEventError):
            engine.track("login", account_id="a1", occurred_at=START + timedelta(hours=25))


def test_sync_skips_future_events_keeps_the_rest_and_reads_them_again_later(
    tmp_path, temp_store, caplog
):
    events = [
        Event(id="now", name="signed_up", account_id="a1", occurred_at=START),
        Event(id="later", name="signed_up", account_id="a2", occurred_at=START + timedelta(days=2)),
    ]
    program = _static_program(tmp_path, events)
    clock = FrozenClock(START + timedelta(hours=1))
    with Engine(program, store=temp_store, clock=clock, plugins=make_plugins()) as engine:
        with caplog.at_level(logging.WARNING, logger="onetomany.engine"):
            [report] = engine.sync()
        assert (report.events, report.new_events, report.skipped_future) == (2, 1, 1)
        assert "skipped 1 event(s) dated ahead of the clock" in caplog.text
        assert "'signed_up' (later) at 2026-11-04T00:00:00+00:00" in caplog.text
        assert [e.id for _, e in temp_store.events_after(0)] == ["now"]

        clock.advance(days=2)  # its time has come: the next sync takes it
        [report] = engine.sync()
        assert (report.new_events, report.skipped_future) == (1, 0)
        assert [e.id for _, e in temp_store.events_after(0)] == ["now", "later"]
