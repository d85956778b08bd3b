from datetime import timedelta

import pytest

from onetomany import Event
from onetomany.delivery.retry import RetryPolicy
from onetomany.engine import Engine
from onetomany.errors import ConfigErrors, PermanentDeliveryError, TransientDeliveryError
from onetomany.plugins.settings import PluginSettings
from onetomany.program import Audience, EventTrigger, Touch
from onetomany.testing import RecordingChannel, make_plugins

from .conftest import make_program


def test_track_only_writes_and_tick_then_dispatch_delivers(engine, recorder):
    engine.track("signed_up", account_id="a1", id="ev-1")
    assert recorder.attempts == []  # nothing is sent inline
    assert engine.tick() == 1
    assert recorder.attempts == []
    report = engine.dispatch()
    assert (report.sent, report.dead, report.retrying) == (1, 0, 0)
    [message] = recorder.sent
    assert message.to == "Nancy Davolio <nancy@northwind.test>"
    assert message.subject == "Welcome, Nancy"
    assert "Hello Nancy from Northwind." in message.html
    assert "Hello Nancy from Northwind." in message.text
    assert message.idempotency_key == "acme:welcome:c1:ev-1"
    assert message.sender == "Acme <success@acme.test>"


def test_audience_falls_back_through_roles(engine, recorder):
    engine.track("signed_up", account_id="a2", id="ev-2")  # a2 has no admin, only a sponsor
    engine.tick()
    engine.dispatch()
    assert [m.to for m in recorder.sent] == ["Janet Leverling <janet@tailspin.test>"]


def test_the_same_event_never_queues_a_second_touch(engine, recorder):
    event = Event(id="ev-3", name="signed_up", account_id="a1", occurred_at=engine.clock.now())
    engine.track(event)
    engine.track(event)
    assert engine.tick() == 1
    assert engine.tick() == 0
    engine.dispatch()
    engine.dispatch()
    assert recorder.keys() == ["acme:welcome:c1:ev-3"]


def test_transient_failures_are_retried_then_delivered_exactly_once(frozen_clock, make_engine):
    flaky = RecordingChannel(
        failures=[TransientDeliveryError("421 busy"), TransientDeliveryError("421 busy"), None]
    )
    with make_engine(flaky, RetryPolicy(max_attempts=5, initial=10, jitter=0)) as engine:
        engine.track("signed_up", account_id="a1", id="ev-4")
        engine.tick()
        assert engine.dispatch().retrying == 1
        assert engine.dispatch().claimed == 0  # not due yet: backoff is durable, not a sleep
        frozen_clock.advance(seconds=10)
        assert engine.dispatch().retrying == 1
        frozen_clock.advance(seconds=19)
        assert engine.dispatch().claimed == 0  # second wait doubles to 20 s
        frozen_clock.advance(seconds=1)
        assert engine.dispatch().sent == 1
        assert len(flaky.attempts) == 3
        assert flaky.keys() == ["acme:welcome:c1:ev-4"]
        statuses = [d.status for d in engine.store.deliveries()]
        assert statuses == ["retrying", "retrying", "sent"]
        [row] = engine.store.outbox_rows()
        assert (row.status, row.attempts) == ("sent", 3)


def test_retry_after_from_the_provider_is_honoured(frozen_clock, make_engine):
    limited = RecordingChannel(failures=[TransientDeliveryError("429", retry_after=600), None])
    with make_engine(limited, RetryPolicy(initial=1, jitter=0)) as engine:
        engine.track("signed_up", account_id="a1", id="ev-5")
        engine.tick()
        engine.dispatch()
        frozen_clock.advance(seconds=599)
        assert engine.dispatch().claimed == 0
        frozen_clock.advance(seconds=1)
        assert engine.dispatch().sent == 1


def test_a_permanent_failure_is_dead_lettered_with_its_reason(frozen_clock, make_engine):
    refusing = RecordingChannel(failures=[PermanentDeliveryError("550 mailbox unavailable")])
    with make_engine(refusing) as engine:
        engine.track("signed_up", account_id="a1", id="ev-6")
        engine.tick()
        assert engine.dispatch().dead == 1
        [row] = engine.store.outbox_rows()
        assert row.status == "dead"
        assert row.last_error == "550 mailbox unavailable"
        assert len(refusing.attempts) == 1
        frozen_clock.advance(days=1)
        assert engine.dispatch().claimed == 0


def test_exhausted_retries_are_dead_lettered(frozen_clock, make_engine):
    down = RecordingChannel(failures=[TransientDeliveryError("timeout")] * 3)
    with make_engine(down, RetryPolicy(max_attempts=3, initial=1, jitter=0)) as engine:
        engine.track("signed_up", account_id="a1", id="ev-7")
        engine.tick()
        for _ in range(3):
            engine.dispatch()
            frozen_clock.advance(hours=1)
        [row] = engine.store.outbox_rows()
        assert row.status == "dead"
        assert row.last_error == "gave up after 3 attempts: timeout"


def test_a_missing_template_variable_dead_letters_with_its_name(recorder, make_engine):
    touch = Touch(
        name="oops",
        trigger=EventTrigger(event="signed_up"),
        channel="email",
        template="broken",
        audience=Audience(roles=("admin",)),
    )
    with make_engine(recorder, touches=(touch,)) as engine:
        engine.track("signed_up", account_id="a1", id="ev-8")
        engine.tick()
        assert engine.dispatch().dead == 1
        [row] = engine.store.outbox_rows()
        assert "no_such_trait" in row.last_error
        assert recorder.attempts == []


def test_a_plugin_bug_is_charged_to_one_message_only(make_engine):
    class Buggy(RecordingChannel):
        def send(self, message):
            if "nancy@" in message.to:
                raise ValueError("plugin bug")
            return super().send(message)

    buggy = Buggy()
    touch = Touch(
        name="all",
        trigger=EventTrigger(event="signed_up"),
        channel="email",
        template="welcome",
        audience=Audience(every=True),
    )
    with make_engine(buggy, touches=(touch,)) as engine:
        engine.track("signed_up", account_id="a1", id="ev-9")
        engine.tick()
        report = engine.dispatch()
        assert (report.sent, report.dead) == (1, 1)
        assert [m.to for m in buggy.sent] == ["Andrew Fuller <andrew@northwind.test>"]


def test_a_contact_without_consent_is_not_sent_to(engine, recorder):
    from onetomany import Contact

    engine.identify(
        Contact(
            id="c1",
            account_id="a1",
            name="Nancy",
            email="nancy@northwind.test",
            role="admin",
            consent={"email": False},
        )
    )
    engine.track("signed_up", account_id="a1", id="ev-10")
    engine.tick()
    # The consent policy skips it: final, and not a failed attempt.
    assert engine.dispatch().skipped == {"consent": 1}
    [row] = engine.store.outbox_rows()
    assert row.status == "skipped" and row.attempts == 0
    assert "has not consented to email" in (row.last_error or "")
    assert recorder.attempts == []


def test_delivery_outcomes_become_events(engine):
    engine.track("signed_up", account_id="a1", id="ev-11")
    engine.tick()
    engine.dispatch()
    names = [e.name for _, e in engine.store.events_after(0)]
    assert names == ["signed_up", "message_sent"]


def test_a_touch_naming_an_unknown_channel_is_a_config_error(tmp_path, store):
    touch = Touch(name="t", trigger=EventTrigger(event="x"), channel="pigeon", template="welcome")
    with pytest.raises(ConfigErrors) as info:
        Engine(make_program(tmp_path, touch), store=store, plugins=make_plugins())
    assert "touches.t.channel: unknown channel 'pigeon'" in str(info.value)


def test_a_channel_naming_an_uninstalled_plugin_is_a_config_error(tmp_path, store):
    program = make_program(tmp_path, email=PluginSettings(name="email", plugin="carrier_pigeon"))
    with pytest.raises(
        ConfigErrors, match=r"channels\.email\.plugin: no channel plugin 'carrier_pigeon'"
    ):
        Engine(program, store=store, plugins=make_plugins())


def test_in_app_inbox_lists_counts_and_marks_read(tmp_path, frozen_clock, store):
    touch = Touch(
        name="tip",
        trigger=EventTrigger(event="report_created"),
        channel="inapp",
        template="welcome",
    )
    program = make_program(tmp_path, touch, inapp=PluginSettings(name="inapp", plugin="inapp"))
    with Engine(program, store=store, clock=frozen_clock, plugins=make_plugins()) as engine:
        from .conftest import PEOPLE

        engine.identify(*PEOPLE)
        engine.track("report_created", contact_id="c2", id="r1")
        engine.track("report_created", contact_id="c2", id="r2")
        engine.tick()
        assert engine.dispatch().sent == 2
        items = engine.inbox("c2")
        assert [i.title for i in items] == ["Welcome, Andrew", "Welcome, Andrew"]
        assert "Hello Andrew from Northwind." in items[0].body
        assert engine.unread_count("c2") == 2
        assert engine.mark_read("c2", [items[0].id]) == 1
        assert engine.unread_count("c2") == 1
        assert [i.id for i in engine.inbox("c2", unread_only=True)] == [items[1].id]
        assert engine.mark_read("c2") == 1
        assert engine.unread_count("c2") == 0


def test_hook_onetomany_delivery_recorded(tmp_path, frozen_clock, recorder, store):
    seen = []

    class Observer:
        from onetomany import hookimpl

        @hookimpl
        def onetomany_delivery_recorded(self, delivery):
            seen.append((delivery.idempotency_key, delivery.status, delivery.attempt))

    class Exploding:
        from onetomany import hookimpl

        @hookimpl
        def onetomany_delivery_recorded(self, delivery):
            raise RuntimeError("observer bug must not stop delivery")

    plugins = make_plugins(("observer", Observer()), ("exploding", Exploding()))
    engine = Engine(
        make_program(tmp_path),
        store=store,
        clock=frozen_clock,
        plugins=plugins,
        channels={"email": recorder},
    )
    from .conftest import PEOPLE

    engine.identify(*PEOPLE)
    engine.track("signed_up", account_id="a1", id="ev-12")
    engine.tick()
    assert engine.dispatch().sent == 1
    assert seen == [("acme:welcome:c1:ev-12", "sent", 1)]


def test_retry_waits_grow_and_respect_the_cap():
    policy = RetryPolicy(initial=30, maximum=100, jitter=0)
    assert [policy.wait(n) for n in (1, 2, 3, 4)] == [30, 60, 100, 100]
    assert policy.wait(1, retry_after=300) == 300
    jittery = RetryPolicy(initial=30, jitter=5)
    assert all(30 <= jittery.wait(1) <= 35 for _ in range(50))


def test_lease_expiry_returns_a_dead_workers_rows(frozen_clock, recorder, make_engine):
    with make_engine(recorder) as engine:
        engine.track("signed_up", account_id="a1", id="ev-13")
        engine.tick()
        engine.store.claim(
            worker="dead-worker", now=frozen_clock.now(), lease=timedelta(minutes=5), limit=10
        )
        assert engine.dispatch().claimed == 0
        frozen_clock.advance(minutes=6)
        assert engine.dispatch().sent == 1


def test_a_touch_never_reacts_to_its_own_deliveries(recorder, make_engine):
    echo = Touch(
        name="echo",
        trigger=EventTrigger(event="message_sent"),
        channel="email",
        template="welcome",
        audience=Audience(roles=("admin",)),
    )
    welcome = Touch(
        name="welcome",
        trigger=EventTrigger(event="signed_up"),
        channel="email",
        template="welcome",
        audience=Audience(roles=("admin",)),
    )
    with make_engine(recorder, touches=(welcome, echo)) as engine:
        engine.track("signed_up", account_id="a1", id="ev-14")
        for _ in range(4):
            engine.tick()
            engine.dispatch()
        assert [m.touch for m in recorder.sent] == ["welcome", "echo"]
