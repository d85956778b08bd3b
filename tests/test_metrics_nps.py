"""NPS results against a table worked out by hand, by plan, segment and period; the CLI; and
a detractor's answer firing a CSM task through an event trigger's ``where``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from onetomany import Account, Contact, Event
from onetomany.cli.commands import app
from onetomany.engine import Engine
from onetomany.errors import ConfigErrors, InputError
from onetomany.metrics.events import NPS_ANSWERED
from onetomany.metrics.nps import NPS_BY, nps_results
from onetomany.program import Audience, EventTrigger, Touch, load_program
from onetomany.rules.event_conditions import parse_condition
from onetomany.rules.segments import SegmentSet
from onetomany.store import Store, schema
from onetomany.testing import FrozenClock, RecordingChannel, make_plugins

from .conftest import WELCOME, make_program, write_templates

T0 = datetime(2026, 9, 1, 9, tzinfo=UTC)
DAY = timedelta(days=1)
SEGMENTS = SegmentSet({"admins": 'contact.role == "admin"', "nobody": 'contact.role == "x"'})


def _survey(conn, contact, account, index):
    key = f"acme:nps_survey:{contact}:{index}"
    row_id = conn.execute(
        sa.insert(schema.outbox).returning(schema.outbox.c.id),
        {
            "idempotency_key": key,
            "program": "acme",
            "touch": "nps_survey",
            "channel": "email",
            "template": "nps",
            "contact_id": contact,
            "account_id": account,
            "payload": {},
            "status": "sent",
            "attempts": 1,
            "available_at": T0,
            "created_at": T0,
            "updated_at": T0,
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
            "at": T0,
        },
    )


@pytest.fixture
def answered(store: Store) -> Store:
    """c1 (admin, pro) answers 9 then 10; c2 (pro) 6; c3 (admin, starter) 8; c4 (starter) 0;
    c5 (starter) is surveyed and does not answer."""
    people = {"c1": ("a1", "admin"), "c2": ("a1", "sponsor"), "c3": ("a2", "admin")}
    people |= {"c4": ("a2", "sponsor"), "c5": ("a2", "sponsor")}
    store.save_profiles(
        accounts=[
            Account(id="a1", name="Northwind", traits={"plan": "pro"}),
            Account(id="a2", name="Tailspin", traits={"plan": "starter"}),
        ],
        contacts=[
            Contact(id=c, account_id=a, email=f"{c}@x.test", role=role)
            for c, (a, role) in people.items()
        ],
        now=T0,
    )
    with store.write() as conn:
        for index, (contact, (account, _)) in enumerate(people.items()):
            _survey(conn, contact, account, index)
    answers = [("c1", 9, T0 + DAY), ("c1", 10, T0 + 2 * DAY), ("c2", 6, T0 + 3 * DAY)]
    answers += [("c3", 8, T0 + 3 * DAY), ("c4", 0, T0 + 3 * DAY)]
    store.add_events(
        [
            Event(
                name=NPS_ANSWERED,
                contact_id=contact,
                account_id=people[contact][0],
                occurred_at=at,
                properties={"score": score, "touch": "nps_survey"},
            )
            for contact, score, at in answers
        ],
        now=T0 + 4 * DAY,
    )
    return store


def test_nps_matches_a_table_worked_out_by_hand(answered):
    found = nps_results(answered, now=T0 + 5 * DAY, segments=SEGMENTS, by=NPS_BY)
    total = found.total
    # Latest answers: 10, 6, 8, 0: one promoter, one passive, two detractors of four.
    assert total.distribution == (1, 0, 0, 0, 0, 0, 1, 0, 1, 0, 1)
    assert (total.answered, total.promoters, total.passives, total.detractors) == (4, 1, 1, 2)
    assert total.score == -25.0
    assert (total.surveyed, total.response_rate) == (5, 0.8)
    plans = {g.value: g for g in found.by["plan"]}
    assert (plans["pro"].score, plans["pro"].response_rate) == (0.0, 1.0)
    assert plans["starter"].score == -50.0
    assert plans["starter"].response_rate == pytest.approx(2 / 3)
    [admins] = found.by["segment"]  # nobody in "nobody": no group
    assert (admins.value, admins.score, admins.surveyed) == ("admins", 50.0, 2)
    assert [g.value for g in found.by["month"]] == ["2026-09"]
    assert [g.value for g in found.by["tier"]] == [""]
    as_dict = found.as_dict()
    assert as_dict["total"]["score"] == -25.0 and len(as_dict["total"]["distribution"]) == 11


def test_a_range_keeps_each_contacts_latest_answer_within_it(answered):
    found = nps_results(
        answered, now=T0 + 5 * DAY, segments=SEGMENTS, by=["plan"], since=T0 + 2.5 * DAY
    )
    # c1's answers fall before the range; c2 6, c3 8, c4 0 remain. No survey was sent in it.
    assert found.total.distribution[6] == 1 and found.total.answered == 3
    assert found.total.score == pytest.approx(-200 / 3)
    assert found.total.response_rate is None
    early = nps_results(answered, now=T0, segments=SEGMENTS, by=[], until=T0 + 1.5 * DAY)
    assert early.total.distribution[9] == 1 and early.total.score == 100.0


def test_an_unknown_grouping_or_an_empty_range_is_refused(answered):
    with pytest.raises(InputError, match="'country'"):
        nps_results(answered, now=T0, segments=SEGMENTS, by=["country"])
    with pytest.raises(InputError, match="before it starts"):
        nps_results(answered, now=T0, segments=SEGMENTS, since=T0, until=T0 - DAY)


def test_cli_nps_prints_tables_and_json(answered, tmp_path):
    if answered.dialect != "sqlite":
        pytest.skip("the CLI reads a store by its path here")
    (tmp_path / "program.toml").write_text(
        '[program]\nname = "acme"\n[channels.email]\nplugin = "outbox"\nfolder = "out"\n'
        "[segments]\nadmins = 'contact.role == \"admin\"'\n"
    )
    runner = CliRunner()
    url = str(answered.engine.url)
    shown = runner.invoke(app, ["nps", str(tmp_path), "--store", url, "--by", "plan"])
    assert shown.exit_code == 0, shown.output
    assert "NPS by plan" in shown.output and "-50" in shown.output
    as_json = runner.invoke(app, ["nps", str(tmp_path), "--store", url, "--json"])
    data = json.loads(as_json.output)
    assert data["total"]["score"] == -25.0
    assert data["by"]["segment"][0]["value"] == "admins"
    wrong = runner.invoke(app, ["nps", str(tmp_path), "--store", url, "--by", "country"])
    assert wrong.exit_code != 0


# -- a detractor's answer triggers a CSM task --------------------------------------------------


def test_a_condition_compares_numbers_strings_and_booleans():
    condition = parse_condition('score <= 6 and channel == "email"')
    assert condition.holds({"score": 3, "channel": "email"})
    assert condition.holds({"score": "6", "channel": "email"})  # a number written as text
    assert not condition.holds({"score": 7, "channel": "email"})
    assert not condition.holds({"channel": "email"})  # missing: never fires
    assert not condition.holds({"score": True, "channel": "email"})
    assert parse_condition("vip == true").holds({"vip": True})
    assert condition.describe() == 'score <= 6 and channel == "email"'
    with pytest.raises(ValueError, match="'score =< 6'"):
        parse_condition("score =< 6")


def test_a_wrong_where_condition_is_named_with_its_file_and_key(tmp_path):
    (tmp_path / "program.toml").write_text(
        '[program]\nname = "acme"\n[channels.email]\nplugin = "outbox"\nfolder = "out"\n'
        '[touches.follow_up]\nchannel = "email"\ntemplate = "welcome"\n'
        'trigger = { event = "nps_answered", where = "score is low" }\n'
    )
    write_templates(tmp_path / "templates", welcome=WELCOME)
    with pytest.raises(ConfigErrors) as caught:
        load_program(tmp_path)
    [error] = caught.value.errors
    assert error.key == "touches.follow_up.trigger.where"
    assert "score is low" in error.reason and error.file.endswith("program.toml")


def test_a_detractor_answer_through_the_survey_link_queues_a_csm_task(tmp_path, store):
    web = pytest.importorskip("onetomany.web.nps_pages")
    survey = Touch(
        name="nps_survey",
        trigger=EventTrigger(event="nps_due"),
        channel="email",
        template="welcome",
        audience=Audience(every=True),
    )
    follow_up = Touch(
        name="detractor_call",
        trigger=EventTrigger(event=NPS_ANSWERED, condition=parse_condition("score <= 6")),
        channel="email",
        template="welcome",
    )
    recorder = RecordingChannel()
    clock = FrozenClock()
    with Engine(
        make_program(tmp_path, survey, follow_up),
        store=store,
        clock=clock,
        plugins=make_plugins(),
        channels={"email": recorder},
    ) as engine:
        engine.identify(
            Account(id="a1", name="Northwind"),
            Contact(id="c1", account_id="a1", email="c1@x.test", role="admin"),
            Contact(id="c2", account_id="a1", email="c2@x.test", role="sponsor"),
        )
        engine.track("nps_due", account_id="a1")
        assert engine.tick() == 2
        engine.dispatch()
        keys = {row.contact_id: row.idempotency_key for row in store.outbox_rows()}
        web.record_answer(engine, keys["c1"], 3)
        web.record_answer(engine, keys["c2"], 9)
        engine.tick()
        calls = [r for r in store.outbox_rows() if r.touch == "detractor_call"]
        assert [r.contact_id for r in calls] == ["c1"]
