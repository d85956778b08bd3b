"""``explain``: why a touch did or did not fire for an account or a contact."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path

import attrs
import pytest
from typer.testing import CliRunner

from onetomany import Account, Contact
from onetomany.cli.commands import app
from onetomany.cli.explain import explain, render
from onetomany.engine import Engine
from onetomany.errors import ConfigError, InputError
from onetomany.program import (
    AbsenceTrigger,
    Audience,
    CadenceTrigger,
    EngagementTrigger,
    EventTrigger,
    Reentry,
    SegmentTrigger,
    StageTrigger,
    Touch,
)
from onetomany.rules.journeys import Journey, Stage
from onetomany.store import schema
from onetomany.testing import RecordingChannel, make_plugins

from .conftest import make_program

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "onboarding"

SEGMENTS = {
    "paying": "account.plan in ['pro', 'enterprise']",
    "low_adoption": "segment('paying') and account.active_users / account.seats < 0.5",
    "big_spender": "account.mrr >= 500",
}

INITECH = Account(
    id="acc-1",
    name="Initech",
    traits={"plan": "pro", "seats": 10, "active_users": 8, "owner": "csm@acme.test"},
)
PEOPLE = (
    INITECH,
    Account(id="acc-2", name="Hooli", traits={"plan": "starter", "seats": 10, "active_users": 1}),
    Contact(id="ct-1", account_id="acc-1", name="Peter Gibbons", email="peter@initech.test",
            role="admin"),
    Contact(id="ct-2", account_id="acc-1", name="Milton Waddams", email="milton@initech.test",
            role="analyst"),
    Contact(id="ct-3", account_id="acc-1", name="Bill Lumbergh", email="bill@initech.test",
            role="leader"),
    Contact(id="ct-4", account_id="acc-2", name="Gavin Belson", email="gavin@hooli.test",
            role="sponsor"),
)  # fmt: skip
SPONSOR_THEN_LEADER = Audience(roles=("sponsor", "leader"))


def _touch(trigger, **fields):
    fields.setdefault("audience", SPONSOR_THEN_LEADER)
    return Touch(name="nudge", trigger=trigger, channel="email", template="welcome", **fields)


@pytest.fixture
def build(tmp_path, store, frozen_clock):
    engines = []

    def build(*touches, people=PEOPLE, **program_fields):
        program = attrs.evolve(
            make_program(tmp_path, *touches), segments=SEGMENTS, **program_fields
        )
        engine = Engine(
            program,
            store=store,
            clock=frozen_clock,
            plugins=make_plugins(),
            channels={"email": RecordingChannel()},
        )
        engine.identify(*people)
        engines.append(engine)
        return engine

    yield build
    for engine in engines:
        engine.channels["email"].close()


def scheduled(engine):
    with engine.store.engine.connect() as conn:
        return list(conn.execute(schema.schedules.select()))


def _insert(engine, table, **row):
    with engine.store.engine.begin() as conn:
        conn.execute(table.insert().values(**row))


# -- subjects and the audience ---------------------------------------------------------------


def test_an_account_is_explained_contact_by_contact_with_the_role_fallback(build):
    engine = build(_touch(EventTrigger(event="signed_up")))
    engine.track("signed_up", account_id="acc-1", id="ev-1")
    engine.tick()
    engine.dispatch()

    result = explain(engine, "acc-1", "nudge")

    assert result.subject_kind == "account"
    assert result.audience.reason == "roles sponsor then leader: no sponsor, so the leader ct-3"
    assert [r.contact_id for r in result.recipients] == ["ct-1", "ct-2", "ct-3"]
    leader = result.recipient("ct-3")
    assert leader.state == "fired"
    assert leader.verdict.startswith("fired: row #1 sent at 2026-01-05 09:00 UTC")
    assert leader.check("history").details == (
        "2026-01-05 09:00 UTC ev-1: queued as acme:nudge:ct-3:ev-1",
    )
    [row] = leader.rows
    assert (row.status, row.attempts, row.idempotency_key) == ("sent", 1, "acme:nudge:ct-3:ev-1")
    admin = result.recipient("ct-1")
    assert admin.state == "would not fire"
    assert admin.verdict.startswith(
        "would not fire: audience: latest signed_up ev-1 at 2026-01-05 09:00 UTC went to ct-3, "
        "not ct-1"
    )
    assert result.verdict == leader.verdict  # the headline speaks of whom the audience picks


def test_a_contact_is_explained_alone(build):
    engine = build(_touch(EventTrigger(event="signed_up")))
    result = explain(engine, "ct-4", "nudge")
    assert result.subject_kind == "contact"
    assert [r.contact_id for r in result.recipients] == ["ct-4"]
    assert result.audience.reason == "roles sponsor then leader: the sponsor ct-4"
    [only] = result.recipients
    assert only.check("trigger").reason == (
        "nothing has happened on event 'signed_up' for 'ct-4' or account 'acc-2' yet"
    )
    assert only.next_due is not None
    assert only.next_due.reason == "at the next 'signed_up' event that matches"
    assert result.verdict.startswith("would not fire: trigger: nothing has happened")


def test_an_unknown_subject_or_touch_is_a_clear_error(build):
    engine = build(_touch(EventTrigger(event="signed_up")))
    with pytest.raises(InputError, match="no account or contact 'nobody'") as info:
        explain(engine, "nobody", "nudge")
    assert "ct-1" not in str(info.value)  # names nothing else that is stored
    with pytest.raises(ConfigError, match="unknown touch 'nope' \\(touches: nudge\\)"):
        explain(engine, "ct-1", "nope")


# -- event triggers, keys and re-entry -------------------------------------------------------


def test_an_unprocessed_event_would_fire_at_the_next_tick(build):
    engine = build(_touch(EventTrigger(event="signed_up")))
    engine.track("signed_up", account_id="acc-1", id="ev-1")
    leader = explain(engine, "ct-3", "nudge").recipient("ct-3")
    assert leader.state == "would fire"
    assert leader.key == "acme:nudge:ct-3:ev-1"
    assert leader.check("trigger").reason == "signed_up ev-1 at 2026-01-05 09:00 UTC"
    engine.tick()
    assert explain(engine, "ct-3", "nudge").recipient("ct-3").state == "fired"


def test_an_event_for_another_contact_says_where_it_went(build):
    engine = build(_touch(EventTrigger(event="signed_up"), audience=Audience()))
    engine.track("signed_up", account_id="acc-1", contact_id="ct-2", id="ev-1")
    engine.tick()
    peter = explain(engine, "ct-1", "nudge").recipient("ct-1")
    assert peter.check("audience").status == "fail"
    assert peter.check("audience").reason.endswith("went to ct-2, not ct-1")
    assert explain(engine, "ct-2", "nudge").recipient("ct-2").state == "fired"


def test_an_already_used_key_blocks_a_touch_sent_once_ever(build):
    engine = build(_touch(EventTrigger(event="signed_up"), reentry=Reentry(kind="once")))
    engine.track("signed_up", account_id="acc-1", id="ev-1")
    engine.tick()
    engine.track("signed_up", account_id="acc-1", id="ev-2")
    engine.tick()
    leader = explain(engine, "acc-1", "nudge").recipient("ct-3")
    assert leader.check("history").details == (
        "2026-01-05 09:00 UTC ev-2: skipped (the outbox already holds acme:nudge:ct-3:once)",
        "2026-01-05 09:00 UTC ev-1: queued as acme:nudge:ct-3:once",
    )
    assert leader.verdict.startswith(
        "would not fire: outbox: the outbox already holds acme:nudge:ct-3:once (ev-2, decided "
        "2026-01-05 09:00 UTC)"
    )
    assert [r.id for r in leader.rows] == [1]


def test_a_recent_send_blocks_a_touch_with_a_period(build, frozen_clock):
    engine = build(_touch(EventTrigger(event="signed_up"), reentry=Reentry(kind="period", days=30)))
    engine.track("signed_up", account_id="acc-1", id="ev-1")
    engine.tick()
    frozen_clock.advance(days=10)
    engine.track("signed_up", account_id="acc-1", id="ev-2")
    engine.tick()
    leader = explain(engine, "ct-3", "nudge").recipient("ct-3")
    assert leader.verdict.startswith(
        "would not fire: re-entry: at most once every 30 days, and it was queued at "
        "2026-01-05T09:00:00+00:00: blocked until 2026-02-04T09:00:00+00:00 (ev-2, decided "
        "2026-01-15 09:00 UTC)"
    )


# -- segments --------------------------------------------------------------------------------


def test_a_failing_segment_names_the_leaf_and_its_value(build):
    engine = build(_touch(EventTrigger(event="signed_up"), segment="low_adoption"))
    engine.track("signed_up", account_id="acc-1", id="ev-1")
    engine.tick()
    leader = explain(engine, "ct-3", "nudge").recipient("ct-3")
    segment = leader.check("segment")
    assert segment.status == "fail"
    assert segment.reason == (
        "segment 'low_adoption' is false because `(account.active_users / account.seats) < 0.5` "
        "was 0.8 < 0.5 -> false"
    )
    assert leader.verdict.startswith(
        "would not fire: segment: not in segment 'low_adoption' (ev-1, decided"
    )


def test_a_failing_referenced_segment_is_explained_inside_it(build):
    engine = build(_touch(EventTrigger(event="signed_up"), segment="low_adoption"))
    segment = explain(engine, "ct-4", "nudge").recipient("ct-4").check("segment")
    assert segment.details == (
        'segment("paying") is false:',
        '  `account.plan in ["pro", "enterprise"]` was "starter" in ["pro", "enterprise"] -> false',
    )


def test_a_missing_trait_is_named_as_unknown(build):
    engine = build(_touch(EventTrigger(event="signed_up"), segment="big_spender"))
    segment = explain(engine, "ct-3", "nudge").recipient("ct-3").check("segment")
    assert segment.reason == (
        "segment 'big_spender' is unknown because `account.mrr >= 500` was missing >= 500 "
        "-> unknown (account.mrr is missing)"
    )
    assert segment.values["result"] is None


def test_a_passing_segment_passes(build):
    engine = build(_touch(EventTrigger(event="signed_up"), segment="paying"))
    assert explain(engine, "ct-3", "nudge").recipient("ct-3").check("segment").status == "pass"


# -- the channel -----------------------------------------------------------------------------


def test_a_consent_refusal_and_a_missing_address_are_named(build):
    people = (
        INITECH,
        Contact(id="ct-3", account_id="acc-1", role="leader", email="bill@initech.test",
                consent={"email": False}),
        Contact(id="ct-5", account_id="acc-1", role="sponsor"),
    )  # fmt: skip
    engine = build(_touch(EventTrigger(event="signed_up")), people=people)
    bill = explain(engine, "ct-3", "nudge").recipient("ct-3")
    assert bill.check("consent").status == "fail"
    assert bill.check("consent").reason == "ct-3 refused email (consent email = false)"
    assert bill.check("address").reason == "email goes to bill@initech.test"
    nobody = explain(engine, "ct-5", "nudge").recipient("ct-5")
    assert nobody.check("consent").status == "pass"
    assert nobody.check("address").status == "fail"
    assert nobody.check("address").reason == "contact 'ct-5' has no email address for email"


# -- time-driven triggers --------------------------------------------------------------------


def test_an_absence_says_when_it_becomes_due(build, frozen_clock):
    engine = build(_touch(AbsenceTrigger(event="login", days=30)))
    never = explain(engine, "ct-3", "nudge").recipient("ct-3")
    assert never.check("trigger").reason.startswith("no 'login' by the account 'acc-1' ever")
    engine.track("login", account_id="acc-1", contact_id="ct-1", id="l1")
    frozen_clock.advance(days=12)
    leader = explain(engine, "ct-3", "nudge").recipient("ct-3")
    assert leader.check("trigger").reason == (
        "last 'login' by the account 'acc-1' was l1 at 2026-01-05 09:00 UTC: "
        "absent only from 2026-02-04 09:00 UTC (30 days)"
    )
    assert leader.next_due is not None
    assert leader.next_due.at == frozen_clock.now() + timedelta(days=18)
    data = json.loads(explain(engine, "ct-3", "nudge").to_json())  # datetimes in values too
    assert data["recipients"][0]["checks"][0]["values"]["due_at"] == "2026-02-04T09:00:00+00:00"
    frozen_clock.advance(days=18)
    assert explain(engine, "ct-3", "nudge").recipient("ct-3").state == "would fire"
    assert engine.tick() == 1
    fired = explain(engine, "ct-3", "nudge").recipient("ct-3")
    assert fired.state == "fired"
    assert fired.rows[0].idempotency_key == "acme:nudge:ct-3:absence-l1"


def test_a_cadence_reads_its_schedule(build, frozen_clock):
    engine = build(_touch(CadenceTrigger(rrule="FREQ=MONTHLY;INTERVAL=3", anchor="signed_up")))
    leader = explain(engine, "ct-3", "nudge").recipient("ct-3")
    assert leader.check("trigger").reason == "no anchor event 'signed_up' for the account yet"
    now = frozen_clock.now()
    engine.track("signed_up", account_id="acc-1", id="ev-1")
    # Not scheduled yet: explain reads the schedule the next tick would start.
    unscheduled = explain(engine, "ct-3", "nudge").recipient("ct-3")
    assert unscheduled.check("trigger").reason == (
        "anchored on ev-1 at 2026-01-05 09:00 UTC, 0 sent so far: next occurrence at "
        "2026-04-05 09:00 UTC"
    )
    assert scheduled(engine) == []
    _insert(
        engine,
        schema.schedules,
        touch="nudge",
        contact_id="ct-3",
        anchor_id="ev-1",
        anchor_at=now,
        next_at=now + timedelta(days=90),
        fired=1,
        updated_at=now,
    )
    leader = explain(engine, "ct-3", "nudge").recipient("ct-3")
    assert leader.check("trigger").reason == (
        "anchored on ev-1 at 2026-01-05 09:00 UTC, 1 sent so far: next occurrence at "
        "2026-04-05 09:00 UTC"
    )
    assert leader.next_due is not None and leader.next_due.at == now + timedelta(days=90)
    frozen_clock.advance(days=90)
    assert explain(engine, "ct-3", "nudge").recipient("ct-3").state == "would fire"


def test_an_escalation_waits_for_the_previous_step_and_stops_on_an_open(build, frozen_clock):
    first = _touch(EventTrigger(event="signed_up"))
    resend = attrs.evolve(
        first, name="resend", trigger=EngagementTrigger(touch="nudge", outcome="not_opened", days=3)
    )
    engine = build(first, resend)
    assert explain(engine, "ct-3", "resend").recipient("ct-3").check("trigger").reason == (
        "'nudge' was never sent to ct-3"
    )
    engine.track("signed_up", account_id="acc-1", id="ev-1")
    engine.tick()
    engine.dispatch()
    leader = explain(engine, "ct-3", "resend").recipient("ct-3")
    assert leader.check("trigger").reason == (
        "'nudge' row #1 was sent at 2026-01-05 09:00 UTC, not due before 2026-01-08 09:00 UTC: "
        "escalates then unless opened first"
    )
    assert leader.next_due is not None
    assert leader.next_due.at == frozen_clock.now() + timedelta(days=3)
    frozen_clock.advance(days=3)
    due = explain(engine, "ct-3", "resend").recipient("ct-3")
    assert due.state == "would fire"
    assert due.check("trigger").values["previous_key"] == "acme:nudge:ct-3:ev-1"
    engine.track(
        "message_opened",
        account_id="acc-1",
        contact_id="ct-3",
        properties={"idempotency_key": "acme:nudge:ct-3:ev-1"},
        id="open-1",
    )
    opened = explain(engine, "ct-3", "resend").recipient("ct-3")
    assert opened.state == "would not fire"
    assert "was opened" in opened.check("trigger").reason


def test_a_segment_trigger_shows_membership_and_its_events(build, frozen_clock):
    engine = build(_touch(SegmentTrigger(segment="low_adoption"), audience=Audience()))
    leader = explain(engine, "ct-4", "nudge").recipient("ct-4")
    assert leader.check("membership").reason == (
        "not recorded as a member of segment 'low_adoption'"
    )
    _insert(
        engine,
        schema.segment_members,
        segment="low_adoption",
        contact_id="ct-4",
        since=frozen_clock.now(),
    )
    engine.track(
        "segment_entered",
        account_id="acc-2",
        contact_id="ct-4",
        properties={"segment": "low_adoption"},
        id="se-1",
    )
    engine.tick()
    entered = explain(engine, "ct-4", "nudge").recipient("ct-4")
    assert entered.check("membership").reason == (
        "recorded in segment 'low_adoption' since 2026-01-05 09:00 UTC"
    )
    assert entered.state == "fired"
    assert entered.rows[0].idempotency_key == "acme:nudge:ct-4:se-1"


def test_a_stage_trigger_reads_the_journey_state(build, frozen_clock):
    journey = Journey(
        name="onboarding",
        stages=(
            Stage(name="setup", entry='exists(last("signed_up"))', complete="false", ideal_days=7),
        ),
    )
    touch = _touch(StageTrigger(journey="onboarding", stage="setup", on="overdue"))
    engine = build(touch, journeys={"onboarding": journey})
    leader = explain(engine, "ct-3", "nudge").recipient("ct-3")
    assert leader.check("journey").reason == (
        "account 'acc-1' has not entered journey 'onboarding'"
    )
    now = frozen_clock.now()
    _insert(
        engine,
        schema.journey_states,
        journey="onboarding",
        account_id="acc-1",
        stage="setup",
        entry_id="en-1",
        entered_at=now,
    )
    _insert(
        engine,
        schema.journey_history,
        journey="onboarding",
        account_id="acc-1",
        stage="setup",
        action="entered",
        entry_id="en-1",
        at=now,
    )
    leader = explain(engine, "ct-3", "nudge").recipient("ct-3")
    journey_check = leader.check("journey")
    assert journey_check.reason == (
        "account 'acc-1' is in stage onboarding.setup since 2026-01-05 09:00 UTC (entry en-1)"
    )
    frozen_clock.advance(days=7)
    engine.track(
        "stage_overdue",
        account_id="acc-1",
        properties={"journey": "onboarding", "stage": "setup", "entry_id": "en-1"},
        id="so-1",
    )
    engine.tick()
    assert explain(engine, "ct-3", "nudge").recipient("ct-3").state == "fired"


def test_a_touch_without_a_trigger_is_sent_only_by_a_broadcast(build):
    engine = build(_touch(None, segment="paying"))
    leader = explain(engine, "ct-3", "nudge").recipient("ct-3")
    assert leader.verdict.startswith("would not fire: trigger: it has no trigger")


# -- output ----------------------------------------------------------------------------------


def test_the_text_and_json_forms(build):
    engine = build(_touch(EventTrigger(event="signed_up"), segment="low_adoption"))
    engine.track("signed_up", account_id="acc-1", id="ev-1")
    engine.tick()
    result = explain(engine, "acc-1", "nudge")
    lines = render(result)
    assert lines[0] == result.verdict
    assert lines[0].startswith("would not fire: segment: not in segment 'low_adoption'")
    assert "  ✗ segment   segment 'low_adoption' is false because" in "\n".join(lines)
    data = json.loads(result.to_json())
    assert data["verdict"] == result.verdict
    assert data["recipients"][2]["checks"][2]["name"] == "segment"
    assert data["now"] == "2026-01-05T09:00:00+00:00"


@pytest.fixture
def example(tmp_path):
    target = tmp_path / "onboarding"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("var"))
    return target


def test_the_cli_explains_a_touch_of_a_program(example):
    runner = CliRunner()
    ran = runner.invoke(app, ["run", str(example), "--once"])
    assert ran.exit_code == 0, ran.output
    text = runner.invoke(app, ["explain", str(example), "acc-001", "welcome"])
    assert text.exit_code == 0, text.output
    first, second = text.output.splitlines()[:2]
    assert first.startswith("fired: row #")
    assert second.startswith("touch 'welcome' (on event 'signed_up') for account 'acc-001'")
    assert "roles admin then sponsor: the admin ct-001" in text.output
    as_json = runner.invoke(app, ["explain", str(example), "ct-002", "welcome", "--json"])
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.output)
    assert data["subject_kind"] == "contact"
    assert data["recipients"][0]["state"] == "would not fire"
    unknown = runner.invoke(app, ["explain", str(example), "acc-999", "welcome"])
    assert unknown.exit_code != 0
    assert isinstance(unknown.exception, InputError)


def test_a_send_policys_verdict_on_a_queued_row_is_in_the_history(build):
    night = (INITECH, Contact(id="ct-9", account_id="acc-1", role="leader",
                              email="kiri@initech.test", timezone="Pacific/Auckland"))  # fmt: skip
    engine = build(_touch(EventTrigger(event="signed_up"), audience=Audience()), people=night)
    engine.track("signed_up", account_id="acc-1", contact_id="ct-9", id="ev-1")
    engine.tick()
    engine.dispatch()  # 22:00 in Auckland: the email waits for the morning
    why = explain(engine, "ct-9", "nudge").recipient("ct-9")
    assert why.verdict.startswith("fired: row #1 queued, due 2026-01-05 19:00 UTC")
    history = why.check("history").details
    assert history[0].startswith(
        "2026-01-05 09:00 UTC acme:nudge:ct-9:ev-1: deferred until 2026-01-05 19:00 UTC "
        "(quiet-hours:"
    )
