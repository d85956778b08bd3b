"""Conversion goals: read from program.toml, and counted against a reference table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from onetomany.errors import ConfigErrors
from onetomany.metrics.goals import conversions
from onetomany.program import Program, Touch, load_program
from onetomany.rules.goals import Goal
from onetomany.store import schema

from .conftest import WELCOME, write_templates

T0 = datetime(2026, 9, 1, 9, tzinfo=UTC)
GOAL = Goal(event="report_created", within_days=7)

TOML = """\
[program]
name = "acme"
goal = { event = "report_created", within_days = 7 }
[channels.email]
plugin = "outbox"
folder = "out"
[touches.welcome]
channel = "email"
template = "welcome"
goal = { event = "integration_connected", within_days = 3 }
[touches.resend]
channel = "email"
template = "resend"
"""


def _folder(tmp_path, toml):
    (tmp_path / "program.toml").write_text(toml)
    write_templates(tmp_path / "templates", welcome=WELCOME, resend=WELCOME)
    return tmp_path


def test_a_touch_goal_and_the_programs_are_read(tmp_path):
    _folder(tmp_path, TOML)
    program = load_program(tmp_path)
    assert program.goal_of(program.touch("welcome")) == Goal(
        event="integration_connected", within_days=3
    )
    assert program.goal_of(program.touch("resend")) == GOAL


@pytest.mark.parametrize(
    ("goal", "key", "reason"),
    [
        ('{ event = "x", within_days = 0 }', "touches.welcome.goal.within_days", ">= 1"),
        ('{ event = "x", days = 3 }', "touches.welcome.goal", "unknown key"),
        ("{ within_days = 3 }", "touches.welcome.goal.event", "event name"),
        ('"report_created"', "touches.welcome.goal", "expected a table"),
    ],
)
def test_a_wrong_goal_is_named_with_its_file_and_key(tmp_path, goal, key, reason):
    broken = TOML.replace('{ event = "integration_connected", within_days = 3 }', goal)
    _folder(tmp_path, broken)
    with pytest.raises(ConfigErrors) as caught:
        load_program(tmp_path)
    [error] = caught.value.errors
    assert error.key == key and reason in error.reason
    assert error.file.endswith("program.toml")


def _sent(conn, touch, account, at, index):
    key = f"acme:{touch}:{account}:{index}"
    row_id = conn.execute(
        sa.insert(schema.outbox).returning(schema.outbox.c.id),
        {
            "idempotency_key": key,
            "program": "acme",
            "touch": touch,
            "channel": "email",
            "template": touch,
            "contact_id": f"{account}-admin",
            "account_id": account,
            "payload": {},
            "status": "sent",
            "attempts": 1,
            "available_at": at,
            "created_at": at,
            "updated_at": at,
        },
    ).scalar_one()
    conn.execute(
        sa.insert(schema.deliveries),
        {
            "outbox_id": row_id,
            "idempotency_key": key,
            "channel": "email",
            "attempt": 1,
            "status": "sent",
            "at": at,
        },
    )


def _event(conn, name, account, at, index):
    conn.execute(
        sa.insert(schema.events),
        {
            "id": f"e{index}",
            "name": name,
            "account_id": account,
            "occurred_at": at,
            "received_at": at,
            "properties": {},
        },
    )


def test_conversions_match_a_reference_table(store, tmp_path):
    """a1: welcome, resend a day later, a report the day after: both converted, the resend
    last. a2: a report 10 days after the welcome (too late). a3: a report 3 hours after the
    welcome, and another later (counted once). a4: a report before the welcome (not after)."""
    day = timedelta(days=1)
    with store.write() as conn:
        _sent(conn, "welcome", "a1", T0, 1)
        _sent(conn, "resend", "a1", T0 + day, 2)
        _event(conn, "report_created", "a1", T0 + 2 * day, 1)
        _sent(conn, "welcome", "a2", T0, 3)
        _event(conn, "report_created", "a2", T0 + 10 * day, 2)
        _sent(conn, "welcome", "a3", T0, 4)
        _event(conn, "report_created", "a3", T0 + timedelta(hours=3), 3)
        _event(conn, "report_created", "a3", T0 + 2 * day, 4)
        _event(conn, "login", "a2", T0 + day, 5)
        _sent(conn, "welcome", "a4", T0 + 7 * day, 5)
        _event(conn, "report_created", "a4", T0 + 6 * day, 6)
    program = Program(
        name="acme",
        touches=[
            Touch(name="welcome", trigger=None, channel="email", template="w", goal=GOAL),
            Touch(name="resend", trigger=None, channel="email", template="r"),
            Touch(name="nudge", trigger=None, channel="email", template="n"),
        ],
        goal=GOAL,
        base_dir=tmp_path,
    )
    found = {c.touch: c for c in conversions(program, store)}
    welcome, resend = found["welcome"], found["resend"]
    assert (welcome.sent, welcome.converted, welcome.last_touch) == (4, 2, 1)
    assert (resend.sent, resend.converted, resend.last_touch) == (1, 1, 1)
    assert welcome.rate == 0.5
    # a1: 48 hours, a3: 3 hours.
    assert welcome.time_to_convert == pytest.approx(timedelta(hours=25.5), abs=timedelta(seconds=1))
    assert resend.time_to_convert == pytest.approx(timedelta(hours=24), abs=timedelta(seconds=1))
    assert found["nudge"].sent == 0 and found["nudge"].rate is None
    later = {c.touch: c for c in conversions(program, store, since=T0 + timedelta(hours=1))}
    assert later["welcome"].sent == 1 and later["resend"].sent == 1
