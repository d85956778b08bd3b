"""Funnels per touch: the set-based SQL agrees with a plain Python count.

Hypothesis writes random delivery histories straight into the store's tables (outbox rows in
every status, the events that carry their keys, machine opens, events of unknown keys,
recorded decisions) and checks, on SQLite and PostgreSQL, every dimension's counts against a
count over the same rows in Python.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from onetomany import Account, Contact
from onetomany.cli.commands import app
from onetomany.engine import Engine
from onetomany.errors import InputError
from onetomany.metrics.events import FUNNEL
from onetomany.metrics.funnel import ALL_DIMENSIONS, Funnel
from onetomany.program import EventTrigger, Touch
from onetomany.rules.segments import SegmentSet
from onetomany.store import Store, schema
from onetomany.store.queries.metrics import DIMENSIONS, STAGES, funnel_counts
from onetomany.testing import FrozenClock, RecordingChannel, make_plugins

from .conftest import make_program

T0 = datetime(2026, 9, 1, 9, tzinfo=UTC)  # a Tuesday
TOUCHES = {"welcome": "email", "recap": "email", "call": "csm"}
CONTACTS = {"c1": ("a1", "en"), "c2": ("a1", "pt-BR"), "c3": ("a2", "id"), "c4": (None, "en")}
TIERS = {"a1": "high", "a2": "tech"}
SEGMENTS = SegmentSet({"br": "contact.locale == 'pt-BR'"})
EVENT_NAMES = [*sorted({n for names in FUNNEL.events.values() for n in names}), "nps_answered"]

rows_st = st.lists(
    st.tuples(
        st.sampled_from(sorted(TOUCHES)),
        st.sampled_from(sorted(CONTACTS)),
        st.integers(0, 30),  # day queued
        st.sampled_from(["pending", "sent", "dead", "claimed"]),
    ),
    max_size=25,
)
events_st = st.lists(
    st.tuples(
        st.integers(0, 30),  # which row (modulo), or a key nobody holds when past the rows
        st.sampled_from([*EVENT_NAMES, "login"]),
        st.booleans(),  # machine
        st.booleans(),  # carries a key at all
    ),
    max_size=40,
)
decisions_st = st.lists(
    st.tuples(
        st.sampled_from(sorted(TOUCHES)),
        st.sampled_from(sorted(CONTACTS)),
        st.integers(0, 30),
        st.sampled_from(["deferred", "skipped", "queued"]),
        st.sampled_from(["consent", "re-entry", "segment", "quiet_hours"]),
    ),
    max_size=15,
)
window_st = st.one_of(st.just((None, None)), st.tuples(st.integers(0, 15), st.integers(16, 31)))


def _wipe(store: Store) -> None:
    with store.write() as conn:
        for table in (schema.outbox, schema.events, schema.decisions, schema.contacts):
            conn.execute(sa.delete(table))
        conn.execute(sa.delete(schema.tier_states))


def _write(store: Store, rows, events, decisions) -> list[dict[str, Any]]:
    """Write the history; returns the outbox rows as written, with their event flags."""
    outbox = []
    for index, (touch, contact, day, status) in enumerate(rows):
        at = T0 + timedelta(days=day, hours=index % 7)
        outbox.append(
            {
                "idempotency_key": f"acme:{touch}:{contact}:{index}",
                "program": "acme",
                "touch": touch,
                "channel": TOUCHES[touch],
                "template": touch,
                "contact_id": contact,
                "account_id": CONTACTS[contact][0],
                "payload": {},
                "status": status,
                "attempts": 0,
                "available_at": at,
                "created_at": at,
                "updated_at": at,
            }
        )
    event_rows = []
    for index, (which, name, machine, keyed) in enumerate(events):
        key = outbox[which % len(outbox)]["idempotency_key"] if outbox else "nobody"
        if which >= 25:
            key = f"unknown-{which}"
        properties: dict[str, Any] = {"idempotency_key": key} if keyed else {}
        if machine:
            properties["machine"] = True
        event_rows.append(
            {
                "id": f"e{index}",
                "name": name,
                "occurred_at": T0,
                "received_at": T0,
                "properties": properties,
            }
        )
    decision_rows = [
        {
            "at": T0 + timedelta(days=day),
            "touch": touch,
            "contact_id": contact,
            "idempotency_key": f"acme:{touch}:{contact}:d{index}",
            "outcome": outcome,
            "record": {"checks": [{"name": "trigger"}, {"name": check}]},
        }
        for index, (touch, contact, day, outcome, check) in enumerate(decisions)
    ]
    people = [
        {
            "id": cid,
            "account_id": account,
            "name": "",
            "locale": locale,
            "timezone": "UTC",
            "consent": {},
            "traits": {},
            "updated_at": T0,
        }
        for cid, (account, locale) in CONTACTS.items()
    ]
    tiers = [{"account_id": a, "tier": tier, "since": T0} for a, tier in TIERS.items()]
    with store.write() as conn:
        conn.execute(sa.insert(schema.contacts), people)
        conn.execute(sa.insert(schema.tier_states), tiers)
        if outbox:
            conn.execute(sa.insert(schema.outbox), outbox)
        if event_rows:
            conn.execute(sa.insert(schema.events), event_rows)
        if decision_rows:
            conn.execute(sa.insert(schema.decisions), decision_rows)
    return outbox, event_rows, decision_rows


def _value(row: dict[str, Any], by: str, at_key: str) -> str:
    contact = row["contact_id"]
    account, locale = CONTACTS[contact]
    if by == "touch":
        return row["touch"]
    if by == "channel":
        return TOUCHES[row["touch"]]
    if by == "locale":
        return locale
    if by == "tier":
        return TIERS.get(account or "", "")
    if by == "week":
        at = row[at_key]
        return (at - timedelta(days=at.weekday())).date().isoformat()
    return "all"


def _expected(outbox, events, decisions, by, since, until, only=None):
    """The funnel counted in Python, one row at a time."""
    stage_of = {n: stage for stage, names in FUNNEL.events.items() for n in names}
    flags: dict[str, set[str]] = defaultdict(set)
    for event in events:
        key = event["properties"].get("idempotency_key")
        if key is None:
            continue
        if event["name"] in FUNNEL.answers:
            flags[key].add("answered")
        elif event["name"] in stage_of:
            stage = stage_of[event["name"]]
            if stage == "opened" and event["properties"].get("machine"):
                stage = "machine_opened"
            flags[key].add(stage)

    def inside(at: datetime, contact: str) -> bool:
        return (
            (since is None or at >= since)
            and (until is None or at < until)
            and (only is None or CONTACTS[contact][1] == only)
        )

    found: dict[str, Counter[str]] = defaultdict(Counter)
    for row in outbox:
        if not inside(row["created_at"], row["contact_id"]):
            continue
        counts = found[_value(row, by, "created_at")]
        counts["queued"] += 1
        counts["sent"] += row["status"] == "sent"
        counts["failed"] += row["status"] == "dead"
        for stage in flags[row["idempotency_key"]]:
            counts[stage] += 1
    for d in decisions:
        if not inside(d["at"], d["contact_id"]):
            continue
        last = d["record"]["checks"][-1]["name"]
        deferred = d["outcome"] == "deferred"
        suppressed = d["outcome"] == "skipped" and last in FUNNEL.policy_checks
        if deferred or suppressed:
            counts = found[_value(d, by, "at")]
            counts["deferred"] += deferred
            counts["suppressed"] += suppressed
    return {value: {s: counts[s] for s in STAGES} for value, counts in found.items()}


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=rows_st, events=events_st, decisions=decisions_st, window=window_st)
def test_the_sql_funnel_equals_a_python_count(store, rows, events, decisions, window):
    _wipe(store)
    outbox, event_rows, decision_rows = _write(store, rows, events, decisions)
    since, until = (
        (T0 + timedelta(days=window[0]), T0 + timedelta(days=window[1]))
        if (window[0] is not None)
        else (None, None)
    )
    for by in (*DIMENSIONS, "all"):
        got = funnel_counts(store, by=by, names=FUNNEL, channels=TOUCHES, since=since, until=until)
        assert got == _expected(outbox, event_rows, decision_rows, by, since, until), by
    got = funnel_counts(
        store,
        by="touch",
        names=FUNNEL,
        channels=TOUCHES,
        since=since,
        until=until,
        segment="br",
        segments=SEGMENTS,
        now=T0,
    )
    assert got == _expected(outbox, event_rows, decision_rows, "touch", since, until, "pt-BR")


# -- through the engine and the CLI ------------------------------------------------------------


@pytest.fixture
def measured(tmp_path):
    """An engine that sent welcomes to two contacts; one opened (and a proxy opened both)."""
    clock = FrozenClock(T0)
    recorder = RecordingChannel()
    touch = Touch(
        name="welcome", trigger=EventTrigger(event="signed_up"), channel="email", template="welcome"
    )
    program = make_program(tmp_path, touch)
    engine = Engine(
        program,
        store=Store(tmp_path / "store.db"),
        clock=clock,
        plugins=make_plugins(),
        channels={"email": recorder},
    )
    engine.identify(
        Account(id="a1", name="Northwind"),
        Contact(id="c1", account_id="a1", email="c1@northwind.test", locale="pt-BR"),
        Contact(id="c2", account_id="a1", email="c2@northwind.test"),
    )
    for contact in ("c1", "c2"):
        engine.track("signed_up", contact_id=contact, account_id="a1")
    engine.tick()
    engine.dispatch()
    keys = sorted(r.idempotency_key for r in engine.store.outbox_rows())
    engine.track_engagement(keys[0], "opened")
    engine.track_engagement(keys[0], "clicked")
    for key in keys:
        engine.track(
            "message_opened", contact_id="c1", properties={"idempotency_key": key, "machine": True}
        )
    yield engine
    engine.close()


def test_engine_metrics_count_people_and_machines_apart(measured):
    found = measured.metrics(by=["touch", "locale"])
    assert found.total == Funnel(
        dimension="all", value="all", queued=2, sent=2, opened=1, machine_opened=2, clicked=1
    )
    assert found.total.open_rate == 0.5
    assert found.total.click_to_open_rate == 1.0
    assert found.total.delivery_rate == 0.0
    assert [(f.value, f.sent) for f in found.by["locale"]] == [("en", 1), ("pt-BR", 1)]
    assert set(found.by) == {"touch", "locale"}


def test_a_funnel_without_messages_has_no_rates():
    empty = Funnel(dimension="all", value="all")
    assert all(rate is None for rate in empty.rates().values())


def test_an_unknown_dimension_is_refused_by_name(measured):
    with pytest.raises(InputError, match=r"'plan'.*touch, channel"):
        measured.metrics(by=["touch", "plan"])


def test_a_range_that_ends_before_it_starts_is_refused(measured):
    with pytest.raises(InputError, match="ends"):
        measured.metrics(since=T0, until=T0 - timedelta(days=1))


def test_metrics_range_leaves_out_messages_queued_outside_it(measured):
    assert measured.metrics(by=[], since=T0 + timedelta(days=1)).total.queued == 0
    assert measured.metrics(by=[], until=T0 + timedelta(seconds=1)).total.queued == 2


def test_cli_metrics_prints_tables_and_json(measured, tmp_path):
    store = str(tmp_path / "store.db")
    runner = CliRunner()
    program = str(tmp_path)
    (tmp_path / "program.toml").write_text(
        '[program]\nname = "acme"\nsender = "Acme <s@acme.test>"\n'
        '[channels.email]\nplugin = "outbox"\nfolder = "var/outbox"\n'
        '[touches.welcome]\ntrigger = { event = "signed_up" }\nchannel = "email"\n'
        'template = "welcome"\n'
    )
    shown = runner.invoke(app, ["metrics", program, "--store", store, "--by", "touch"])
    assert shown.exit_code == 0, shown.output
    assert "welcome" in shown.output and "50.0%" in shown.output
    as_json = runner.invoke(app, ["metrics", program, "--store", store, "--json"])
    data = json.loads(as_json.output)
    assert data["total"]["opened"] == 1
    assert set(data["by"]) == set(ALL_DIMENSIONS)
    wrong = runner.invoke(app, ["metrics", program, "--store", store, "--from", "someday"])
    assert wrong.exit_code != 0
    assert "--from" in wrong.output
