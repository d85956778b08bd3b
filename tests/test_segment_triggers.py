"""Segment triggers: entering and leaving a segment, recorded each round and sent once."""

import logging

import attrs
import sqlalchemy as sa

from onetomany import Account, Contact
from onetomany.engine import Engine
from onetomany.program import SegmentTrigger, Touch
from onetomany.store import schema
from onetomany.store.queries.segment_members import segment_members
from onetomany.testing import make_plugins
from onetomany.tracking.segments import crossing_id

from .conftest import make_program

SEGMENTS = {"low_adoption": "account.active_users / account.seats < 0.5"}


def _touch(name, on):
    return Touch(
        name=name,
        trigger=SegmentTrigger(segment="low_adoption", on=on),
        channel="email",
        template="welcome",
    )


def _engine(tmp_path, store, clock, recorder, *touches):
    program = attrs.evolve(make_program(tmp_path, *touches), segments=SEGMENTS)
    engine = Engine(
        program, store=store, clock=clock, plugins=make_plugins(), channels={"email": recorder}
    )
    engine.identify(
        Account(id="a1", name="Northwind", traits={"seats": 20, "active_users": 4}),
        Account(id="a2", name="Tailspin", traits={"seats": 10, "active_users": 9}),
        Contact(id="c1", account_id="a1", name="Nancy", email="nancy@a1.test"),
        Contact(id="c2", account_id="a2", name="Janet", email="janet@a2.test"),
    )
    return engine


def _adoption(engine, account_id, active_users):
    account = engine.store.get_account(account_id)
    engine.identify(attrs.evolve(account, traits={**account.traits, "active_users": active_users}))


def test_entering_and_leaving_a_segment_send_their_touches_once(
    tmp_path, store, frozen_clock, recorder
):
    touches = (_touch("nudge", "enter"), _touch("well_done", "leave"))
    with _engine(tmp_path, store, frozen_clock, recorder, *touches) as engine:
        engine.step()  # the first evaluation: current members enter
        assert [(m.touch, m.contact_id) for m in recorder.sent] == [("nudge", "c1")]
        engine.step()
        assert len(recorder.sent) == 1  # still inside: nothing new

        frozen_clock.advance(days=1)
        _adoption(engine, "a1", 15)  # Northwind adopts: leaves the segment
        _adoption(engine, "a2", 2)  # Tailspin drops: enters it
        engine.step()
        assert [(m.touch, m.contact_id) for m in recorder.sent[1:]] == [
            ("nudge", "c2"),
            ("well_done", "c1"),
        ]
        engine.step()
        assert len(recorder.sent) == 3


def test_each_crossing_is_an_event_with_a_deterministic_id(tmp_path, store, frozen_clock, recorder):
    with _engine(tmp_path, store, frozen_clock, recorder, _touch("nudge", "enter")) as engine:
        start = frozen_clock.now()
        [entered] = engine.update_segments()
        assert (entered.segment, entered.contact_id, entered.account_id) == (
            "low_adoption",
            "c1",
            "a1",
        )
        assert entered.change == "entered"
        assert entered.event_id == crossing_id("low_adoption", "c1", start, "entered")
        assert engine.update_segments() == []
        assert segment_members(engine.store, "low_adoption") == {"c1": start}

        frozen_clock.advance(hours=2)
        _adoption(engine, "a1", 20)
        [left] = engine.update_segments()
        # The leave is keyed by the membership it ends, so it too is recorded once.
        assert left.change == "left"
        assert left.event_id == crossing_id("low_adoption", "c1", start, "left")
        assert segment_members(engine.store, "low_adoption") == {}

        frozen_clock.advance(hours=2)
        _adoption(engine, "a1", 1)
        [again] = engine.update_segments()  # a second entry is a second crossing
        assert again.event_id not in {entered.event_id, left.event_id}

        stored = [
            (e.name, e.contact_id, e.account_id, dict(e.properties))
            for _, e in engine.store.events_after(0)
        ]
        assert stored == [
            ("segment_entered", "c1", "a1", {"segment": "low_adoption"}),
            ("segment_left", "c1", "a1", {"segment": "low_adoption"}),
            ("segment_entered", "c1", "a1", {"segment": "low_adoption"}),
        ]


def test_a_deleted_contact_leaves_without_an_event(tmp_path, store, frozen_clock, recorder, caplog):
    touches = (_touch("nudge", "enter"), _touch("well_done", "leave"))
    with _engine(tmp_path, store, frozen_clock, recorder, *touches) as engine:
        engine.update_segments()
        with engine.store.engine.begin() as conn:
            conn.execute(sa.delete(schema.contacts).where(schema.contacts.c.id == "c1"))
        with caplog.at_level(logging.INFO, logger="onetomany.tracking.segments"):
            assert engine.update_segments() == []
        assert "contact 'c1' no longer exists" in caplog.text
        assert segment_members(engine.store, "low_adoption") == {}
        assert [e.name for _, e in engine.store.events_after(0)] == ["segment_entered"]


def test_only_segments_that_triggers_watch_are_tracked(tmp_path, store, frozen_clock, recorder):
    with _engine(tmp_path, store, frozen_clock, recorder) as engine:  # no segment trigger
        assert engine.update_segments() == []
        assert engine.store.count("segment_members") == 0
