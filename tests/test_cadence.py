"""Cadence triggers: an RRULE on each recipient's wall clock, counted from an anchor event."""

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onetomany import Account, Contact
from onetomany.engine import Engine
from onetomany.errors import ConfigError, ConfigErrors
from onetomany.model.clock import FrozenClock
from onetomany.program import Audience, CadenceTrigger, Touch, load_program
from onetomany.rules.recurrence import Recurrence
from onetomany.store import schema
from onetomany.testing import RecordingChannel, make_plugins
from onetomany.tracking.cadence import plan
from onetomany.triggers import cadence

from .conftest import make_program
from .test_program import GOOD, _folder

DAILY_FIVE = "FREQ=DAILY;BYHOUR=17;BYMINUTE=0;COUNT=5"
SIX_HOURS = timedelta(hours=6)
ZONES = {"berlin": "Europe/Berlin", "saopaulo": "America/Sao_Paulo", "jakarta": "Asia/Jakarta"}


def _people():
    people: list[Account | Contact] = []
    for name, zone in ZONES.items():
        people.append(Account(id=f"a-{name}", name=name))
        people.append(
            Contact(
                id=f"c-{name}",
                account_id=f"a-{name}",
                name=name.title(),
                email=f"ops@{name}.test",
                role="admin",
                timezone=zone,
            )
        )
    # A second contact in Berlin the audience does not pick.
    people.append(Contact(id="c-berlin-2", account_id="a-berlin", name="Zed", role="viewer"))
    return people


def _engine(tmp_path, store, clock, rrule=DAILY_FIVE, *, by="account", segment=None, **program):
    touch = Touch(
        name="tip",
        trigger=CadenceTrigger(rrule=rrule, anchor="signed_up", by=by),
        channel="email",
        template="welcome",
        audience=Audience(roles=("admin",)),
        segment=segment,
    )
    built = make_program(tmp_path, touch)
    if program:
        built = type(built)(**{**_fields(built), **program})
    engine = Engine(
        built,
        store=store,
        clock=clock,
        plugins=make_plugins(),
        channels={"email": RecordingChannel()},
    )
    engine.identify(*_people())
    return engine


def _fields(program):
    import attrs

    return {f.name: getattr(program, f.name) for f in attrs.fields(type(program))}


def _sent(engine, contact_id=None):
    """(queued at, occurrence instant) of every queued cadence row, in order."""
    return sorted(
        (r.available_at, datetime.fromisoformat(r.payload["cadence"]["at"]))
        for r in engine.store.outbox_rows()
        if contact_id is None or r.contact_id == contact_id
    )


def _run(engine, clock, *, until, step=timedelta(hours=1)):
    while clock.now() < until:
        clock.advance(seconds=step.total_seconds())
        engine.tick()


def test_count_five_daily_at_five_pm_local_in_three_zones_across_a_dst_switch(tmp_path, store):
    # Berlin moves its clocks on 2026-03-29; Sao Paulo and Jakarta keep theirs all year.
    clock = FrozenClock(datetime(2026, 3, 26, 6, 0, tzinfo=UTC))
    with _engine(tmp_path, store, clock) as engine:
        for name in ZONES:
            engine.track("signed_up", account_id=f"a-{name}", id=f"s-{name}")
        _run(engine, clock, until=datetime(2026, 4, 3, tzinfo=UTC))
        for name, zone in ZONES.items():
            sent = _sent(engine, f"c-{name}")
            assert len(sent) == 5, name
            for queued, at in sent:
                assert queued == at  # hourly ticks on the hour: sent at the occurrence
                local = at.astimezone(ZoneInfo(zone))
                assert (local.hour, local.minute, local.second) == (17, 0, 0), (name, local)
            days = [at.astimezone(ZoneInfo(zone)).day for _, at in sent]
            assert days == [26, 27, 28, 29, 30], name
        berlin_utc_hours = [at.hour for _, at in _sent(engine, "c-berlin")]
        assert berlin_utc_hours == [16, 16, 16, 15, 15]  # 17:00 CET, then 17:00 CEST
        assert _sent(engine, "c-berlin-2") == []  # the audience picks the admin only
        assert engine.next_due("tip", "c-berlin") is None  # exhausted


def test_the_payload_and_key_name_the_occurrence(tmp_path, store, frozen_clock):
    with _engine(tmp_path, store, frozen_clock) as engine:
        engine.track("signed_up", account_id="a-jakarta", id="s1")
        engine.tick()
        assert engine.next_due("tip", "c-jakarta") == datetime(2026, 1, 5, 10, tzinfo=UTC)
        frozen_clock.set(datetime(2026, 1, 5, 9, 30, tzinfo=UTC))
        engine.track("report_created", account_id="a-jakarta", id="r1")
        frozen_clock.set(datetime(2026, 1, 5, 10, tzinfo=UTC))
        assert engine.tick() == 1
        [row] = engine.store.outbox_rows()
        assert row.idempotency_key == "acme:tip:c-jakarta:at-2026-01-05T10:00:00Z"
        assert row.payload["cadence"] == {
            "at": "2026-01-05T10:00:00+00:00",
            "local": "2026-01-05T17:00:00+07:00",
            "number": 1,
            "since": "2026-01-05T09:00:00+00:00",
            "anchor_id": "s1",
            "anchor_at": "2026-01-05T09:00:00+00:00",
        }
        assert row.payload["activity"] == [
            {
                "id": "r1",
                "name": "report_created",
                "occurred_at": "2026-01-05T09:30:00+00:00",
                "properties": {},
            }
        ]  # what happened since the anchor, which itself is not news
        assert engine.next_due("tip", "c-jakarta") == datetime(2026, 1, 6, 10, tzinfo=UTC)


def test_a_quarterly_review_counts_from_the_first_anchor(tmp_path, store, frozen_clock):
    with _engine(tmp_path, store, frozen_clock, "FREQ=MONTHLY;INTERVAL=3") as engine:
        engine.track("signed_up", account_id="a-saopaulo", id="s1")
        frozen_clock.advance(days=20)
        engine.track("signed_up", account_id="a-saopaulo", id="s2")  # a later one: not the anchor
        _run(engine, frozen_clock, until=datetime(2027, 1, 6, tzinfo=UTC), step=timedelta(days=1))
        # Anchored 2026-01-05 06:00 local (09:00 UTC); a tick a day, at 09:00 UTC.
        assert [at for _, at in _sent(engine)] == [
            datetime(2026, 4, 5, 9, tzinfo=UTC),
            datetime(2026, 7, 5, 9, tzinfo=UTC),
            datetime(2026, 10, 5, 9, tzinfo=UTC),
            datetime(2027, 1, 5, 9, tzinfo=UTC),
        ]


def test_a_contact_without_the_anchor_gets_nothing(tmp_path, store, frozen_clock):
    with _engine(tmp_path, store, frozen_clock) as engine:
        engine.track("signed_up", account_id="a-berlin", id="s1")
        engine.track("logged_in", account_id="a-jakarta", id="l1")
        _run(engine, frozen_clock, until=frozen_clock.now() + timedelta(days=7), step=SIX_HOURS)
        assert {r.contact_id for r in engine.store.outbox_rows()} == {"c-berlin"}
        assert engine.next_due("tip", "c-jakarta") is None
        assert engine.store.count("schedules") == 1


def test_by_contact_anchors_on_each_contacts_own_event(tmp_path, store, frozen_clock):
    with _engine(tmp_path, store, frozen_clock, by="contact") as engine:
        engine.track("signed_up", contact_id="c-berlin-2", account_id="a-berlin", id="s1")
        engine.track("signed_up", contact_id="c-jakarta", id="s2")
        _run(engine, frozen_clock, until=frozen_clock.now() + timedelta(days=7), step=SIX_HOURS)
        # c-berlin-2 is a viewer, not an admin: never scheduled, never looked at again.
        assert {r.contact_id for r in engine.store.outbox_rows()} == {"c-jakarta"}
        assert engine.store.count("schedules") == 1


def test_restarting_sends_nothing_twice(tmp_path, store, frozen_clock):
    with _engine(tmp_path, store, frozen_clock) as first:
        first.track("signed_up", account_id="a-berlin", id="s1")
        _run(first, frozen_clock, until=frozen_clock.now() + timedelta(days=2), step=SIX_HOURS)
        before = _sent(first)
        assert len(before) == 2
    with _engine(tmp_path, store, frozen_clock) as second:
        assert second.tick() == 0
        _run(second, frozen_clock, until=frozen_clock.now() + timedelta(days=6), step=SIX_HOURS)
        sent = _sent(second)
        assert sent[:2] == before
        assert len(sent) == len({at for _, at in sent}) == 5


def test_a_crash_between_queueing_and_advancing_refires_the_same_keys(
    tmp_path, store, frozen_clock
):
    with _engine(tmp_path, store, frozen_clock) as engine:
        engine.track("signed_up", account_id="a-berlin", id="s1")
        frozen_clock.advance(days=1)
        # What tick does, stopped before the schedules advance.
        now = frozen_clock.now()
        touches = engine.program.touches_of(cadence.KIND.trigger)
        found = cadence.KIND.candidates(engine._context(), touches, now)  # no after_queued()
        assert engine._enqueue(found.decisions, now=now, into=[]) == 1
        due = engine.next_due("tip", "c-berlin")
        assert due is not None and due < now  # not advanced
        assert engine.tick() == 0  # the same occurrence again: the outbox keeps one
        assert engine.next_due("tip", "c-berlin") > now
        assert len(engine.store.outbox_rows()) == 1


def test_missed_occurrences_send_only_the_latest_one(tmp_path, store, frozen_clock):
    with _engine(tmp_path, store, frozen_clock) as engine:
        engine.track("signed_up", account_id="a-berlin", id="s1")
        engine.tick()
        frozen_clock.advance(days=3, hours=12)  # down over four 17:00s, 5 to 8 January
        assert engine.tick() == 1
        [(queued, at)] = _sent(engine)
        assert at == datetime(2026, 1, 8, 16, tzinfo=UTC) and queued == frozen_clock.now()
        _run(engine, frozen_clock, until=frozen_clock.now() + timedelta(days=5), step=SIX_HOURS)
        assert [a.day for _, a in _sent(engine)] == [8, 9]  # then the fifth, on 9 January


def test_a_finished_rule_found_late_sends_nothing_stale(tmp_path, store, frozen_clock):
    with _engine(tmp_path, store, frozen_clock) as engine:
        engine.track("signed_up", account_id="a-berlin", id="s1")
        frozen_clock.advance(days=30)  # the cadence is added long after the anchor
        assert engine.tick() == 0
        assert engine.next_due("tip", "c-berlin") is None


def test_the_segment_is_checked_at_firing_time(tmp_path, store, frozen_clock):
    segments = {"pro": 'account.plan == "pro"'}
    with _engine(tmp_path, store, frozen_clock, segment="pro", segments=segments) as engine:
        engine.track("signed_up", account_id="a-berlin", id="s1")
        frozen_clock.advance(days=1)
        assert engine.tick() == 0  # not pro yet: skipped, and the schedule moves on
        engine.identify(Account(id="a-berlin", name="berlin", traits={"plan": "pro"}))
        frozen_clock.advance(days=1)
        assert engine.tick() == 1


def test_next_due_names_a_touch_without_a_cadence(tmp_path, store, frozen_clock):
    with _engine(tmp_path, store, frozen_clock) as engine, pytest.raises(ConfigError) as info:
        engine.next_due("nope", "c-berlin")
    assert "unknown touch" in str(info.value)


# -- the rule on the wall clock ----------------------------------------------------------------


def test_a_local_time_skipped_by_dst_is_sent_an_hour_later():
    rule = Recurrence.parse("FREQ=DAILY;BYHOUR=2;BYMINUTE=30;COUNT=3")
    berlin = ZoneInfo("Europe/Berlin")
    anchor = datetime(2026, 3, 28, 0, 0, tzinfo=berlin)
    locals_ = [at.astimezone(berlin) for at in rule.occurrences(anchor.astimezone(UTC), berlin)]
    assert [(t.day, t.hour, t.minute) for t in locals_] == [(28, 2, 30), (29, 3, 30), (30, 2, 30)]


def test_count_counts_sends_even_when_the_anchor_matches_the_rule():
    rule = Recurrence.parse("FREQ=DAILY;INTERVAL=90;COUNT=2")
    anchor = datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert list(rule.occurrences(anchor, UTC)) == [
        anchor + timedelta(days=90),
        anchor + timedelta(days=180),
    ]


def test_until_is_local_unless_it_says_utc():
    jakarta = ZoneInfo("Asia/Jakarta")
    anchor = datetime(2026, 1, 1, tzinfo=UTC)
    local = Recurrence.parse("FREQ=DAILY;BYHOUR=17;UNTIL=20260103")
    assert len(list(local.occurrences(anchor, jakarta))) == 3  # 1, 2 and all of 3 January
    utc = Recurrence.parse("FREQ=DAILY;BYHOUR=17;UNTIL=20260103T095959Z")
    assert len(list(utc.occurrences(anchor, jakarta))) == 2  # 3 Jan 17:00 WIB is 10:00Z


@given(
    offsets=st.lists(st.integers(min_value=0, max_value=10 * 24 * 60), max_size=40),
    anchor=st.integers(min_value=0, max_value=24 * 60),
)
def test_plan_never_sends_before_the_occurrence_nor_twice(offsets, anchor):
    rule = Recurrence.parse("FREQ=DAILY;BYHOUR=9,17;BYMINUTE=0;COUNT=7")
    zone = ZoneInfo("America/Sao_Paulo")
    start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=anchor)
    next_at = next(rule.occurrences(start, zone), None)
    sent = []
    for offset in sorted(offsets):
        now = start + timedelta(minutes=offset)
        if next_at is None or next_at > now:
            continue
        at, next_at, _ = plan(rule, start, zone, due=next_at, now=now)
        if at is not None:
            assert at <= now
            sent.append(at)
    assert sent == sorted(set(sent))


# -- over random tick times, on every database ---------------------------------------------------


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    ticks=st.lists(st.integers(min_value=1, max_value=12 * 24 * 60), min_size=1, max_size=25),
    rrule=st.sampled_from([DAILY_FIVE, "FREQ=HOURLY;INTERVAL=7;COUNT=20", "FREQ=WEEKLY;BYHOUR=8"]),
)
def test_each_occurrence_is_queued_at_most_once_and_never_early(tmp_path, store, ticks, rrule):
    with store.write() as conn:
        for table in (schema.outbox, schema.schedules, schema.events, schema.cursors):
            conn.execute(sa.delete(table))
    clock = FrozenClock(datetime(2026, 3, 25, 7, 13, tzinfo=UTC))
    start = clock.now()
    with _engine(tmp_path, store, clock, rrule) as engine:
        for name in ZONES:
            engine.track("signed_up", account_id=f"a-{name}", id=f"s-{name}")
        for minutes in sorted(ticks):
            clock.set(start + timedelta(minutes=minutes))
            engine.tick()
        rows = engine.store.outbox_rows()
        for name, zone in ZONES.items():
            mine = [r for r in rows if r.contact_id == f"c-{name}"]
            instants = [datetime.fromisoformat(r.payload["cadence"]["at"]) for r in mine]
            assert len(instants) == len(set(instants))
            occurrences = Recurrence.parse(rrule).occurrences(start, ZoneInfo(zone))
            every = list(itertools.takewhile(lambda at: at <= clock.now(), occurrences))
            for row, at in zip(mine, instants, strict=True):
                assert at in every
                assert row.available_at >= at


# -- bad input ---------------------------------------------------------------------------------


def test_cadence_triggers_load_from_toml(tmp_path, monkeypatch):
    monkeypatch.setenv("ACME_SMTP_PASSWORD", "x")
    toml = GOOD.replace(
        'trigger = { event = "signed_up" }',
        'trigger = { rrule = "FREQ=MONTHLY;INTERVAL=3", anchor = "signed_up", by = "contact" }',
    )
    [touch] = load_program(_folder(tmp_path, toml)).touches
    assert touch.trigger == CadenceTrigger(
        rrule="FREQ=MONTHLY;INTERVAL=3", anchor="signed_up", by="contact"
    )


BAD_CADENCES = {
    "malformed": ('"FREQ=DAILY;BYHOUR=25"', "rrule", "hour must be in 0..23"),
    "nodate": ('"FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30"', "rrule", "never fires: no date"),
    "misaligned": ('"FREQ=DAILY;INTERVAL=7;BYDAY=TU"', "rrule", "for some anchors"),
    "ended": ('"FREQ=DAILY;UNTIL=20200101"', "rrule", "UNTIL (2020-01-01) is already past"),
    "dtstart": ('"DTSTART:20260101T000000Z\\nRRULE:FREQ=DAILY"', "rrule", "DTSTART comes"),
    "spam": ('"FREQ=MINUTELY"', "rrule", "FREQ=MINUTELY"),
    "both": ('"FREQ=DAILY;COUNT=3;UNTIL=20270101"', "rrule", "COUNT and UNTIL"),
    "zero": ('"FREQ=DAILY;INTERVAL=0"', "rrule", "INTERVAL=0"),
    "noanchor": ('"FREQ=DAILY", anchor = "signed up"', "anchor", "expected a name"),
    "by": ('"FREQ=DAILY", anchor = "signed_up", by = "team"', "by", "expected one of"),
}


def test_every_bad_cadence_is_reported_at_once_with_its_key(tmp_path, monkeypatch):
    monkeypatch.setenv("ACME_SMTP_PASSWORD", "x")
    touches = "".join(
        f"""
[touches.{name}]
trigger = {{ rrule = {rule}{"" if "anchor" in rule else ', anchor = "signed_up"'} }}
channel = "email"
template = "welcome"
"""
        for name, (rule, _, _) in BAD_CADENCES.items()
    )
    with pytest.raises(ConfigErrors) as info:
        load_program(_folder(tmp_path, GOOD + touches))
    found = {e.key: e for e in info.value.errors}
    assert set(found) == {f"touches.{n}.trigger.{k}" for n, (_, k, _) in BAD_CADENCES.items()}
    for name, (_, key, reason) in BAD_CADENCES.items():
        error = found[f"touches.{name}.trigger.{key}"]
        assert reason in error.reason, (name, error.reason)
        assert error.file == str(tmp_path / "program.toml")


def test_a_cadence_built_in_python_is_checked_too():
    with pytest.raises(ValueError, match="never fires"):
        CadenceTrigger(rrule="FREQ=YEARLY;BYMONTH=4;BYMONTHDAY=31", anchor="signed_up")
