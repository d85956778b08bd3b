"""Absence triggers: "no login for 30 days", found set-based, sent once per absence."""

import threading
from datetime import timedelta

import attrs
import pytest
import sqlalchemy as sa

from onetomany import Account, Contact
from onetomany.engine import Engine
from onetomany.errors import ConfigErrors
from onetomany.model import Event
from onetomany.program import AbsenceTrigger, Audience, Touch, load_program
from onetomany.testing import make_plugins

from .conftest import PEOPLE, make_program
from .test_program import GOOD, _folder

ADMINS_FIRST = Audience(roles=("admin", "sponsor"))


def _engine(tmp_path, store, clock, recorder, trigger, audience=ADMINS_FIRST):
    touch = Touch(
        name="nudge", trigger=trigger, channel="email", template="welcome", audience=audience
    )
    engine = Engine(
        make_program(tmp_path, touch),
        store=store,
        clock=clock,
        plugins=make_plugins(),
        channels={"email": recorder},
    )
    engine.identify(*PEOPLE)
    return engine


def test_an_absence_fires_once_after_the_days_pass_and_again_after_the_next_one(
    tmp_path, store, frozen_clock, recorder
):
    trigger = AbsenceTrigger(event="login", days=30)
    with _engine(tmp_path, store, frozen_clock, recorder, trigger) as engine:
        engine.track("login", contact_id="c2", account_id="a1", id="l1")
        frozen_clock.advance(days=29, hours=23)
        assert engine.tick() == 0
        frozen_clock.advance(hours=1)
        assert engine.tick() == 1  # Northwind: its admin hears about it
        assert engine.tick() == 0  # once per absence
        engine.dispatch()
        assert [m.contact_id for m in recorder.sent] == ["c1"]

        engine.track("login", contact_id="c1", account_id="a1", id="l2")  # back again
        frozen_clock.advance(days=10)
        assert engine.tick() == 0
        frozen_clock.advance(days=20)
        assert engine.tick() == 1  # a second absence is a second touch
        # Tailspin (a2) never logged in: never absent from what it never did.
        assert {r.account_id for r in engine.store.outbox_rows()} == {"a1"}


def test_an_absence_by_contact_counts_each_contacts_own_events(
    tmp_path, store, frozen_clock, recorder
):
    trigger = AbsenceTrigger(event="login", days=7, by="contact")
    with _engine(tmp_path, store, frozen_clock, recorder, trigger, Audience()) as engine:
        engine.track("login", contact_id="c1", account_id="a1", id="l1")
        engine.track("login", contact_id="c2", account_id="a1", id="l2")
        frozen_clock.advance(days=3)
        engine.track("login", contact_id="c2", account_id="a1", id="l3")
        frozen_clock.advance(days=4)
        assert engine.tick() == 1
        assert [r.contact_id for r in engine.store.outbox_rows()] == ["c1"]
        frozen_clock.advance(days=3)
        assert engine.tick() == 1
        assert sorted(r.contact_id for r in engine.store.outbox_rows()) == ["c1", "c2"]


def test_absence_triggers_load_from_toml(tmp_path, monkeypatch):
    monkeypatch.setenv("ACME_SMTP_PASSWORD", "x")
    toml = GOOD.replace(
        'trigger = { event = "signed_up" }',
        'trigger = { absence = "login", days = 30, by = "contact" }',
    )
    [touch] = load_program(_folder(tmp_path, toml)).touches
    assert touch.trigger == AbsenceTrigger(event="login", days=30, by="contact")


@pytest.mark.parametrize(
    ("trigger", "key"),
    [
        ('{ absence = "login", days = 0 }', "touches.welcome.trigger.days"),
        ('{ absence = "login" }', "touches.welcome.trigger.days"),
        ('{ absence = "login", days = 30, by = "team" }', "touches.welcome.trigger.by"),
        ('{ absence = "log in", days = 30 }', "touches.welcome.trigger.absence"),
        ('{ absence = "login", days = 30, every = 2 }', "touches.welcome.trigger"),
    ],
)
def test_bad_absence_triggers_are_named(tmp_path, monkeypatch, trigger, key):
    monkeypatch.setenv("ACME_SMTP_PASSWORD", "x")
    toml = GOOD.replace('trigger = { event = "signed_up" }', f"trigger = {trigger}")
    with pytest.raises(ConfigErrors) as info:
        load_program(_folder(tmp_path, toml))
    assert [e.key for e in info.value.errors] == [key]


def test_events_from_the_future_do_not_count(tmp_path, store, frozen_clock, recorder):
    trigger = AbsenceTrigger(event="login", days=1)
    with _engine(tmp_path, store, frozen_clock, recorder, trigger) as engine:
        # track() refuses it; the store holds what it is given, and the rule must still hold.
        later = frozen_clock.now() + timedelta(days=5)
        engine.store.add_events(
            [Event(name="login", account_id="a2", occurred_at=later, id="f")],
            now=frozen_clock.now(),
        )
        frozen_clock.advance(days=2)
        assert engine.tick() == 0  # an event from the future is not yet the latest one


def test_absences_with_a_segment_cost_the_same_queries_for_many_accounts_as_for_few(
    tmp_path, store, frozen_clock, recorder
):
    # The segment filters the recipients the audience picked (admin first): an account with
    # an admin and a sponsor gets nothing, an account with only a sponsor gets its sponsor.
    touch = Touch(
        name="nudge",
        trigger=AbsenceTrigger(event="login", days=30),
        channel="email",
        template="welcome",
        audience=ADMINS_FIRST,
        segment="sponsors",
    )
    program = attrs.evolve(
        make_program(tmp_path, touch), segments={"sponsors": 'contact.role == "sponsor"'}
    )
    statements: list[str] = []
    tick_thread = threading.get_ident()

    def listen(*args: object) -> None:
        # The tick's own statements: not the store's checkpoint thread, whose PRAGMA may run
        # during either round.
        if threading.get_ident() == tick_thread:
            statements.append(str(args[2]))

    sa.event.listen(store.engine, "before_cursor_execute", listen)

    def absent_after(accounts: int, prefix: str) -> tuple[int, list[str]]:
        for i in range(accounts):
            account = f"{prefix}{i}"
            people = [Contact(id=f"{account}-s", account_id=account, role="sponsor")]
            if i % 2:
                people.append(Contact(id=f"{account}-a", account_id=account, role="admin"))
            engine.identify(Account(id=account), *people)
            engine.track("login", account_id=account, id=f"login-{account}")
        frozen_clock.advance(days=30)
        statements.clear()
        queued = engine.tick()
        return queued, list(statements)

    with Engine(
        program,
        store=store,
        clock=frozen_clock,
        plugins=make_plugins(),
        channels={"email": recorder},
    ) as engine:
        # A first round reads everyone; the two measured ones read what changed since.
        engine.tick()
        few, few_statements = absent_after(4, "few")
        many, many_statements = absent_after(40, "many")
    assert (few, many) == (2, 20)
    assert {r.contact_id for r in store.outbox_rows() if r.contact_id.startswith("few")} == {
        "few0-s",
        "few2-s",
    }
    # One question per step, not one per account: 44 absent accounts ask what 4 did.
    assert len(many_statements) == len(few_statements)
