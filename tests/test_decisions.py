"""Decisions: the value a tick's trigger kinds propose and its rules settle, and what
``engine.last_decisions`` holds after a tick."""

import json
from datetime import UTC, datetime, timedelta

import attrs
import pytest

from onetomany.engine import Engine
from onetomany.model.decisions import Check, Decision, Outcome, Verdict
from onetomany.program import AbsenceTrigger, Audience, EventTrigger, Reentry, Touch
from onetomany.testing import RecordingChannel, make_plugins

from .conftest import PEOPLE, make_program

NOW = datetime(2026, 1, 5, 9, tzinfo=UTC)


def _candidate(**fields: object) -> Decision:
    base: dict[str, object] = {
        "program": "acme",
        "touch": "welcome",
        "trigger": "event",
        "contact_id": "c1",
        "account_id": "a1",
        "occurrence": "e1",
        "idempotency_key": "acme:welcome:c1:e1",
        "at": NOW,
        "payload": {"event": {"id": "e1"}},
    }
    return Decision(**(base | fields))


def test_a_candidate_is_settled_by_one_rule_each_way():
    candidate = _candidate(checks=[Check.passed("trigger", "signed_up e1", event_id="e1")])
    assert candidate.outcome is Outcome.CANDIDATE and not candidate.settled

    once = Check.passed("re-entry", "once ever", rule="once")
    queued = candidate.queued(once, key="acme:welcome:c1:once")
    assert queued.outcome is Outcome.QUEUED
    assert queued.idempotency_key == "acme:welcome:c1:once"
    assert queued.occurrence == "e1"  # what happened stays; only the key changes
    assert [c.name for c in queued.checks] == ["trigger", "re-entry"]

    blocked = Check.failed("re-entry", "queued 3 days ago", rule="period", days=30)
    skipped = candidate.skipped(blocked)
    assert skipped.outcome is Outcome.SKIPPED and skipped.reason == "queued 3 days ago"
    assert skipped.checks[-1].verdict is Verdict.FAIL

    later = NOW + timedelta(hours=8)
    deferred = candidate.deferred(Check.failed("quiet hours", "22:00 where they are"), later)
    assert deferred.outcome is Outcome.DEFERRED and deferred.until == later
    assert candidate.checks == (candidate.checks[0],)  # values: nothing above changed it


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"outcome": Outcome.SKIPPED}, "a skipped decision has a reason"),
        ({"reason": "no"}, "a skipped decision has a reason"),
        ({"outcome": Outcome.DEFERRED}, "a deferred decision has an until"),
        ({"until": NOW}, "a deferred decision has an until"),
        ({"at": datetime(2026, 1, 5, 9)}, "timezone-aware"),
    ],
)
def test_a_decision_refuses_what_does_not_hold_together(fields, why):
    with pytest.raises(ValueError, match=why):
        _candidate(**fields)


def test_a_decision_is_plain_data_without_its_payload():
    decision = _candidate(checks=[Check.info("audience", "no roles", picks=["c1"])])
    data = decision.as_dict()
    assert "payload" not in data
    assert data["checks"] == [
        {"name": "audience", "verdict": "info", "reason": "no roles", "inputs": {"picks": ["c1"]}}
    ]
    assert json.loads(json.dumps(data))["at"] == NOW.isoformat()
    assert attrs.evolve(decision, payload={"other": 1}) == decision  # payload is not the record
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        decision.outcome = Outcome.QUEUED  # type: ignore[misc]


def _engine(tmp_path, store, clock, *touches, segments=None):
    program = make_program(tmp_path, *touches)
    if segments:
        program = attrs.evolve(program, segments=segments)
    engine = Engine(
        program,
        store=store,
        clock=clock,
        plugins=make_plugins(),
        channels={"email": RecordingChannel()},
    )
    engine.identify(*PEOPLE)
    return engine


def test_a_tick_keeps_what_it_decided_queued_and_skipped(tmp_path, store, frozen_clock):
    touch = Touch(
        name="welcome",
        trigger=EventTrigger(event="signed_up"),
        channel="email",
        template="welcome",
        audience=Audience(roles=("admin", "sponsor"), every=True),
        segment="sponsors",
    )
    segments = {"sponsors": 'contact.role == "sponsor"'}
    with _engine(tmp_path, store, frozen_clock, touch, segments=segments) as engine:
        assert engine.last_decisions == ()
        engine.track("signed_up", account_id="a1", id="e1")
        assert engine.tick() == 0  # the admin c1 is picked first, and is not a sponsor
        [decision] = engine.last_decisions
        assert (decision.contact_id, decision.outcome) == ("c1", Outcome.SKIPPED)
        assert decision.reason == "not in segment 'sponsors'"
        assert [(c.name, c.verdict) for c in decision.checks] == [
            ("trigger", Verdict.PASS),
            ("segment", Verdict.FAIL),
        ]
        assert decision.checks[0].inputs["event_id"] == "e1"
        assert engine.tick() == 0 and engine.last_decisions == ()  # nothing new


def test_re_entry_settles_each_candidate_with_a_check_naming_its_rule(
    tmp_path, store, frozen_clock
):
    touch = Touch(
        name="nudge",
        trigger=EventTrigger(event="used"),
        channel="email",
        template="welcome",
        audience=Audience(roles=("sponsor",)),
        reentry=Reentry(kind="period", days=7),
    )
    with _engine(tmp_path, store, frozen_clock, touch) as engine:
        engine.track("used", account_id="a2", id="u1")
        assert engine.tick() == 1
        [first] = engine.last_decisions
        assert first.outcome is Outcome.QUEUED
        assert first.idempotency_key == "acme:nudge:c3:u1"
        assert first.checks[-1].name == "re-entry"
        assert first.checks[-1].inputs == {"rule": "period", "days": 7, "last_queued": None}

        frozen_clock.advance(days=2)
        engine.track("used", account_id="a2", id="u2")
        assert engine.tick() == 0
        [second] = engine.last_decisions
        assert second.outcome is Outcome.SKIPPED and second.occurrence == "u2"
        assert second.reason.startswith("at most once every 7 days, and it was queued at ")
        assert second.checks[-1].inputs["last_queued"] == first.at.isoformat()


def test_a_time_driven_kind_says_what_it_found(tmp_path, store, frozen_clock):
    touch = Touch(
        name="nudge",
        trigger=AbsenceTrigger(event="login", days=30),
        channel="email",
        template="welcome",
        audience=Audience(roles=("admin",)),
    )
    with _engine(tmp_path, store, frozen_clock, touch) as engine:
        engine.track("login", contact_id="c2", account_id="a1", id="l1")
        frozen_clock.advance(days=30)
        assert engine.tick() == 1
        [decision] = engine.last_decisions
        assert (decision.trigger, decision.occurrence) == ("absence", "absence-l1")
        assert decision.event_id == "l1" and decision.outcome is Outcome.QUEUED
        assert decision.checks[0].inputs["last_event"] == "l1"
        [row] = engine.store.outbox_rows()
        assert row.idempotency_key == decision.idempotency_key
