"""Touches conditioned on segments, and manual broadcasts to a segment."""

import pytest

from onetomany import Account, Contact
from onetomany.engine import Engine
from onetomany.errors import ConfigError, ConfigErrors
from onetomany.program import Audience, EventTrigger, Touch
from onetomany.testing import make_plugins

from .conftest import make_program

SEGMENTS = {
    "paying": "account.plan in ['pro', 'enterprise']",
    "low_adoption": "segment('paying') and account.active_users / account.seats < 0.5",
}


def _engine(tmp_path, store, clock, recorder, *touches, segments=SEGMENTS):
    import attrs

    program = attrs.evolve(make_program(tmp_path, *touches), segments=segments)
    engine = Engine(
        program, store=store, clock=clock, plugins=make_plugins(), channels={"email": recorder}
    )
    engine.identify(
        Account(id="a1", name="Northwind", traits={"plan": "pro", "seats": 20, "active_users": 4}),
        Account(id="a2", name="Tailspin", traits={"plan": "pro", "seats": 10, "active_users": 9}),
        Account(
            id="a3", name="Fabrikam", traits={"plan": "starter", "seats": 5, "active_users": 1}
        ),
        Account(id="a4", name="Contoso", traits={"plan": "enterprise"}),  # no seat data
        *(
            Contact(
                id=f"{a}-{role}",
                account_id=a,
                name=f"{role} {a}",
                email=f"{role}@{a}.test",
                role=role,
            )
            for a in ("a1", "a2", "a3", "a4")
            for role in ("admin", "sponsor")
        ),
    )
    return engine


WEBINAR = Touch(
    name="webinar",
    trigger=None,
    channel="email",
    template="welcome",
    audience=Audience(roles=("sponsor", "admin")),
    segment="low_adoption",
)


def test_a_touch_with_a_segment_reaches_only_its_members(tmp_path, store, frozen_clock, recorder):
    nudge = Touch(
        name="nudge",
        trigger=EventTrigger(event="weekly_review"),
        channel="email",
        template="welcome",
        audience=Audience(roles=("admin",)),
        segment="low_adoption",
    )
    with _engine(tmp_path, store, frozen_clock, recorder, nudge) as engine:
        for account in ("a1", "a2", "a3", "a4"):
            engine.track("weekly_review", account_id=account, id=f"r-{account}")
        assert engine.tick() == 1
        engine.dispatch()
        assert [m.contact_id for m in recorder.sent] == ["a1-admin"]


def test_a_broadcast_previews_then_sends_once(tmp_path, store, frozen_clock, recorder):
    with _engine(tmp_path, store, frozen_clock, recorder, WEBINAR) as engine:
        preview = engine.broadcast("webinar")
        assert preview.count == 1
        assert [c.id for c in preview.recipients] == ["a1-sponsor"]
        assert preview.queued == 0
        assert store.count("outbox") == 0  # a preview queues nothing

        sent = engine.broadcast("webinar", occurrence="webinar-2026-01", send=True)
        assert (sent.queued, sent.already_queued) == (1, 0)
        engine.dispatch()
        assert [m.idempotency_key for m in recorder.sent] == [
            "acme:webinar:a1-sponsor:webinar-2026-01"
        ]

        again = engine.broadcast("webinar", occurrence="webinar-2026-01", send=True)
        assert (again.queued, again.already_queued) == (0, 1)


def test_a_broadcast_can_name_another_segment(tmp_path, store, frozen_clock, recorder):
    with _engine(tmp_path, store, frozen_clock, recorder, WEBINAR) as engine:
        plan = engine.broadcast("webinar", segment="paying")
        assert [c.id for c in plan.recipients] == ["a1-sponsor", "a2-sponsor", "a4-sponsor"]


def test_a_broadcast_without_a_segment_is_refused(tmp_path, store, frozen_clock, recorder):
    touch = Touch(name="all_hands", trigger=None, channel="email", template="welcome")
    with (
        _engine(tmp_path, store, frozen_clock, recorder, touch) as engine,
        pytest.raises(ConfigError, match="needs a segment"),
    ):
        engine.broadcast("all_hands")


def test_unknown_and_cyclic_segments_are_reported(tmp_path, store, frozen_clock, recorder):
    touch = Touch(name="t", trigger=None, channel="email", template="welcome", segment="nope")
    cyclic = {"a": "segment('b')", "b": "segment('a')", "bad": "account.mrr >"}
    with pytest.raises(ConfigErrors) as info:
        _engine(tmp_path, store, frozen_clock, recorder, touch, segments=cyclic)
    text = str(info.value)
    assert "touches.t.segment: unknown segment 'nope'" in text
    assert "segments.bad" in text
    assert "cycle" in text
