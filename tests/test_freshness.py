"""The freshness guard: a touch that acts on a source's data holds while that data is stale."""

from datetime import timedelta

import attrs
import pytest

from onetomany import Account, Contact
from onetomany.cli.explain import explain
from onetomany.engine import Engine
from onetomany.errors import ConfigErrors
from onetomany.plugins.settings import PluginSettings
from onetomany.program import AbsenceTrigger, Audience, EventTrigger, Touch, load_program
from onetomany.rules.freshness import stale_reason
from onetomany.store.queries.source_syncs import sync_states
from onetomany.testing import FrozenClock, RecordingChannel, make_plugins

from .conftest import make_program

SIX_HOURS = timedelta(hours=6)


def _engine(tmp_path, store, clock, *touches, freshness=None):
    usage = PluginSettings(name="usage", plugin="static", options={"accounts": []})
    program = attrs.evolve(
        make_program(tmp_path, *touches),
        sources={"usage": usage},
        freshness={"usage": SIX_HOURS} if freshness is None else freshness,
    )
    engine = Engine(
        program,
        store=store,
        clock=clock,
        plugins=make_plugins(),
        channels={"email": RecordingChannel()},
    )
    engine.identify(
        Account(id="acc-1", name="Initech"),
        Contact(id="ct-1", account_id="acc-1", email="ann@initech.test"),
    )
    return engine


def _touch(name, trigger, **fields):
    return Touch(
        name=name,
        trigger=trigger,
        channel="email",
        template="welcome",
        audience=Audience(),
        **fields,
    )


def test_a_stale_usage_source_holds_the_absence_touch_until_it_syncs_again(tmp_path, store):
    clock = FrozenClock()
    engine = _engine(
        tmp_path, store, clock, _touch("miss_you", AbsenceTrigger(event="login", days=30))
    )
    engine.track("login", account_id="acc-1", contact_id="ct-1", id="l1")
    engine.sync()
    clock.advance(days=31)  # the pipeline broke: no sync, no logins, everyone looks absent
    assert engine.tick() == 0
    [held] = engine.last_decisions
    assert held.outcome == "skipped"
    assert held.checks[-1].name == "freshness"
    assert "source 'usage' last synced at 2026-01-05 09:00 UTC" in (held.reason or "")
    why = explain(engine, "ct-1", "miss_you").recipient("ct-1")
    assert why.verdict.startswith("would not fire: freshness: source 'usage' last synced")
    engine.sync()
    assert engine.tick() == 1
    assert engine.last_decisions[0].checks[-1].name == "re-entry"


def test_a_source_that_never_synced_or_failed_is_stale(tmp_path, store):
    now = FrozenClock().now()
    assert stale_reason("usage", SIX_HOURS, None, now=now) == (
        "source 'usage' has never synced successfully"
    )
    clock = FrozenClock()
    engine = _engine(
        tmp_path, store, clock, _touch("miss_you", AbsenceTrigger(event="login", days=1))
    )
    engine.track("login", account_id="acc-1", contact_id="ct-1", id="l1")
    clock.advance(days=2)
    assert engine.tick() == 0  # never synced
    engine.sync()
    state = sync_states(store)["usage"]
    failed = attrs.evolve(state, error="HTTP 500 from the warehouse", failed_at=clock.now())
    assert "failed its last sync (HTTP 500 from the warehouse)" in (
        stale_reason("usage", SIX_HOURS, failed, now=clock.now()) or ""
    )


def test_an_event_touch_holds_only_when_it_names_the_source(tmp_path, store):
    clock = FrozenClock()
    engine = _engine(
        tmp_path,
        store,
        clock,
        _touch("welcome", EventTrigger(event="signed_up")),
        _touch("billing_alert", EventTrigger(event="invoice_overdue"), needs=("usage",)),
    )
    engine.track("signed_up", account_id="acc-1", contact_id="ct-1", id="e1")
    engine.track("invoice_overdue", account_id="acc-1", contact_id="ct-1", id="e2")
    outcomes = {d.touch: d.outcome for d in (engine.tick(), engine.last_decisions)[1]}
    assert outcomes == {"welcome": "queued", "billing_alert": "skipped"}


def test_max_staleness_and_needs_are_checked_in_program_toml(tmp_path):
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "welcome.mjml").write_text(
        "---\nsubject: Hi\n---\n<mjml><mj-body><mj-section><mj-column><mj-text>Hi"
        "</mj-text></mj-column></mj-section></mj-body></mjml>"
    )
    (tmp_path / "program.toml").write_text(
        """
[program]
name = "acme"
templates = "templates"

[channels.email]
plugin = "outbox"

[sources.usage]
plugin = "static"
max_staleness = "soon"

[sources.crm]
plugin = "static"

[touches.nudge]
trigger = { absence = "login", days = 30 }
channel = "email"
template = "welcome"
needs = ["crm"]
"""
    )
    with pytest.raises(ConfigErrors) as info:
        load_program(tmp_path)
    text = str(info.value)
    assert "sources.usage.max_staleness" in text
    assert 'expected a positive duration such as "6h"' in text
    toml = (tmp_path / "program.toml").read_text().replace('"soon"', '"6h"')
    (tmp_path / "program.toml").write_text(toml)
    with pytest.raises(ConfigErrors, match=r"touches\.nudge\.needs: source 'crm' declares no max"):
        load_program(tmp_path)
