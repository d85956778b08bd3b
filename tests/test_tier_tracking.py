"""Accounts change tier in the engine only after hold_days, and the change is an event."""

import attrs

from onetomany import Account, Contact
from onetomany.engine import Engine
from onetomany.program import Audience, EventTrigger, Touch
from onetomany.rules.tiers_toml import read_tiers
from onetomany.testing import make_plugins

from .conftest import make_program

TIERS = {"hold_days": 14, "high": {"mrr": 5000, "hours_per_month": 4}, "mid": {"mrr": 1000}}


def _engine(tmp_path, store, clock, recorder):
    settings, errors = read_tiers(TIERS, file="test")
    assert errors == []
    upgrade = Touch(
        name="welcome",  # the conftest template; here it greets an account that moved up
        trigger=EventTrigger(event="tier_changed"),
        channel="email",
        template="welcome",
        audience=Audience(roles=("admin",)),
    )
    program = attrs.evolve(make_program(tmp_path, upgrade), tiers=settings)
    engine = Engine(
        program, store=store, clock=clock, plugins=make_plugins(), channels={"email": recorder}
    )
    engine.identify(
        Account(id="a1", name="Northwind", traits={"mrr": 1200}),
        Contact(id="c1", account_id="a1", name="Nancy", email="nancy@northwind.test", role="admin"),
    )
    return engine


def _tier_events(store):
    return [
        (e.properties["from"], e.properties["to"])
        for _, e in store.events_after(0)
        if e.name == "tier_changed"
    ]


def test_a_tier_change_waits_for_hold_days_then_emits_an_event(
    tmp_path, store, frozen_clock, recorder
):
    with _engine(tmp_path, store, frozen_clock, recorder) as engine:
        [first] = engine.update_tiers()
        assert (first.from_tier, str(first.to_tier)) == (None, "mid")

        engine.identify(Account(id="a1", name="Northwind", traits={"mrr": 6000}))
        assert engine.update_tiers() == []  # the 14 days start with this observation
        for _ in range(13):
            frozen_clock.advance(days=1)
            assert engine.update_tiers() == []
        frozen_clock.advance(days=1)
        [change] = engine.update_tiers()
        assert (str(change.from_tier), str(change.to_tier)) == ("mid", "high")
        assert _tier_events(store) == [(None, "mid"), ("mid", "high")]
        assert engine.tier_counts()["high"] == 1

        engine.tick()
        engine.dispatch()
        assert len(recorder.sent) == 2  # touches react to tier_changed like any event


def test_a_brief_dip_does_not_move_the_account(tmp_path, store, frozen_clock, recorder):
    with _engine(tmp_path, store, frozen_clock, recorder) as engine:
        engine.update_tiers()
        engine.identify(Account(id="a1", name="Northwind", traits={"mrr": 300}))
        frozen_clock.advance(days=10)
        engine.update_tiers()
        engine.identify(Account(id="a1", name="Northwind", traits={"mrr": 1200}))
        frozen_clock.advance(days=10)
        assert engine.update_tiers() == []
        assert _tier_events(store) == [(None, "mid")]
