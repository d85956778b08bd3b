"""Topics and consent: ``[topics]`` in program.toml, each touch's topic, unsubscribe and
resubscribe with their source kept as events, and the ``consent`` policy that skips a send the
contact opted out of (SQLite and PostgreSQL)."""

from __future__ import annotations

import itertools
from datetime import timedelta

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onetomany import Contact
from onetomany.engine import Engine
from onetomany.errors import ConfigErrors, InputError
from onetomany.model import ChannelKind, OutboxStatus
from onetomany.model.clock import FrozenClock
from onetomany.plugins.settings import PluginSettings
from onetomany.program import Touch, load_program
from onetomany.rules.topics import Topic
from onetomany.store import NewTouch, Store
from onetomany.testing import RecordingChannel, make_plugins

from .conftest import PEOPLE, make_program

TOPICS = {
    "onboarding": Topic(name="onboarding"),
    "product_updates": Topic(name="product_updates"),
    "billing": Topic(name="billing", transactional=True),
}
SMS = "Hi {{ contact.first_name }}.\n"


def write_program(folder, topics: str, touch_topic: str) -> None:
    folder.mkdir(exist_ok=True)
    (folder / "templates").mkdir(exist_ok=True)
    (folder / "templates" / "hello.mjml").write_text(
        "<mjml><mj-body><mj-section><mj-column><mj-text>Hi</mj-text>"
        "</mj-column></mj-section></mj-body></mjml>"
    )
    (folder / "program.toml").write_text(
        '[program]\nname = "acme"\n\n'
        '[channels.email]\nplugin = "outbox"\nfolder = "out"\n\n'
        f"{topics}\n"
        '[touches.hello]\nchannel = "email"\ntemplate = "hello"\n'
        f"{touch_topic}\n"
    )


def test_topics_load_from_program_toml(tmp_path):
    write_program(
        tmp_path / "p",
        '[topics.onboarding]\ndescription = "Getting started"\n'
        "[topics.billing]\ntransactional = true\n",
        'topic = "onboarding"',
    )
    program = load_program(tmp_path / "p")
    assert program.topics["billing"].transactional is True
    assert program.topics["onboarding"] == Topic(name="onboarding", description="Getting started")
    assert program.touch("hello").topic == "onboarding"


@pytest.mark.parametrize(
    ("topics", "touch_topic", "key", "reason"),
    [
        ("[topics.onboarding]\n", 'topic = "newsletter"', "touches.hello.topic", "unknown topic"),
        ("", 'topic = "newsletter"', "touches.hello.topic", "none declared in [topics]"),
        ("[topics.billing]\ntransactional = 'yes'\n", "", "topics.billing.transactional", "true"),
        ("[topics.billing]\nkind = 1\n", "", "topics.billing.kind", "unknown key"),
        ("[topics]\nbilling = 3\n", "", "topics.billing", "expected a table"),
        ("[topics.onboarding]\n", "topic = 5", "touches.hello.topic", ""),
    ],
)
def test_bad_topics_are_refused_with_file_and_key(tmp_path, topics, touch_topic, key, reason):
    write_program(tmp_path / "p", topics, touch_topic)
    with pytest.raises(ConfigErrors) as caught:
        load_program(tmp_path / "p")
    [error] = caught.value.errors
    assert error.file and error.file.endswith("program.toml")
    assert error.key == key and reason in error.reason


# -- the engine -------------------------------------------------------------------------------


@pytest.fixture
def engine(tmp_path, frozen_clock, store):
    touches = [
        Touch(name=f"{topic}-{kind}", trigger=None, channel=kind, template="welcome", topic=topic)
        for topic, kind in itertools.product([*TOPICS, None], ["email", "sms"])
    ]
    program = make_program(
        tmp_path,
        *touches,
        email=PluginSettings(name="email", plugin="recording"),
        sms=PluginSettings(name="sms", plugin="recording", options={"kind": "sms"}),
    )
    (tmp_path / "templates" / "welcome.sms.txt").write_text(SMS)
    engine = Engine(
        program=attrs.evolve(program, topics=TOPICS),
        store=store,
        clock=frozen_clock,
        plugins=make_plugins(),
        channels={"email": RecordingChannel(), "sms": RecordingChannel(kind=ChannelKind.SMS)},
    )
    engine.identify(*PEOPLE, Contact(id="c9", account_id="a1", phone="+14155552671"))
    yield engine
    engine.dispatcher.close()


_keys = itertools.count()


def send_each(engine: Engine, contact_id: str) -> dict[str, str]:
    """Queue every touch for ``contact_id``, dispatch, and say what became of each."""
    engine.store.enqueue(
        [
            NewTouch(
                idempotency_key=f"{t.name}-{contact_id}-{next(_keys)}",
                program="acme",
                touch=t.name,
                channel=t.channel,
                template="welcome",
                contact_id=contact_id,
                account_id="a1",
                available_at=engine.clock.now(),
            )
            for t in engine.program.touches
        ],
        now=engine.clock.now(),
    )
    engine.dispatch()
    latest: dict[str, str] = {}
    for row in engine.store.outbox_rows():
        if row.contact_id == contact_id:
            latest[row.touch] = row.status
    return latest


def test_unsubscribing_from_a_topic_skips_it_and_only_it(engine):
    engine.identify(Contact(id="c1", phone="+14155550100"))
    prefs = engine.unsubscribe("c1", "product_updates", source="link")
    assert prefs.allows("product_updates", "email") is False
    assert prefs.allows("onboarding", "email") is True
    outcome = send_each(engine, "c1")
    assert outcome["product_updates-email"] == OutboxStatus.SKIPPED
    assert outcome["product_updates-sms"] == OutboxStatus.SKIPPED
    assert {k for k, v in outcome.items() if v != OutboxStatus.SENT} == {
        "product_updates-email",
        "product_updates-sms",
    }
    skipped = [r for r in engine.store.outbox_rows() if r.status == OutboxStatus.SKIPPED]
    assert all(
        r.last_error and r.last_error.startswith("consent: unsubscribed from topic")
        for r in skipped
    )


def test_unsubscribing_from_everything_spares_transactional_topics(engine):
    engine.identify(Contact(id="c1", phone="+14155550100"))
    engine.unsubscribe("c1", source="api")
    outcome = send_each(engine, "c1")
    sent = {k for k, v in outcome.items() if v == OutboxStatus.SENT}
    assert sent == {"billing-email", "billing-sms"}


def test_a_channel_unsubscribe_stops_that_channel_only(engine, frozen_clock):
    engine.identify(Contact(id="c1", phone="+14155550100"))
    engine.unsubscribe("c1", channel="sms", source="webhook")
    outcome = send_each(engine, "c1")
    assert {k for k, v in outcome.items() if v == OutboxStatus.SKIPPED} == {
        "onboarding-sms",
        "product_updates-sms",
        "None-sms",
    }
    # The latest answer wins: everything off, then onboarding back on.
    frozen_clock.advance(timedelta(minutes=1))
    engine.unsubscribe("c1", source="link")
    frozen_clock.advance(timedelta(minutes=1))
    engine.resubscribe("c1", "onboarding", source="link")
    outcome = send_each(engine, "c1")
    assert {k for k, v in outcome.items() if v == OutboxStatus.SENT} == {
        "onboarding-email",
        "onboarding-sms",
        "billing-email",
        "billing-sms",
    }


def test_every_change_is_an_event_with_its_source_and_time(engine, frozen_clock):
    engine.unsubscribe("c1", "onboarding", "email", source="link")
    frozen_clock.advance(timedelta(hours=1))
    engine.resubscribe("c1", "onboarding", "email", source="api")
    events = [
        engine.store.latest_events(name, by="contact", ids=["c1"], until=frozen_clock.now())["c1"]
        for name in ("resubscribed", "unsubscribed")
    ]
    names = sorted((e.name, e.properties["source"]) for e in events)
    assert names == [("resubscribed", "api"), ("unsubscribed", "link")]
    for event in events:
        assert event.properties["topic"] == "onboarding" and event.properties["channel"] == "email"
    prefs = engine.preferences("c1").as_dict()
    assert prefs["topics"]["onboarding"]["subscribed"] is True
    assert prefs["topics"]["billing"]["transactional"] is True
    [answer] = prefs["answers"]
    assert answer["source"] == "api" and answer["at"] == frozen_clock.now().isoformat()


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda e: e.unsubscribe("nobody", source="api"), "contact 'nobody' is not in the store"),
        (lambda e: e.unsubscribe("c1", "newsletter", source="api"), "unknown topic 'newsletter'"),
        (lambda e: e.unsubscribe("c1", channel="fax", source="api"), "unknown channel kind"),
        (lambda e: e.unsubscribe("c1", source=" "), "needs its source"),
        (lambda e: e.preferences("nobody"), "not in the store"),
    ],
)
def test_bad_subscription_changes_are_refused_and_change_nothing(engine, call, match):
    engine.unsubscribe("c1", "onboarding", source="link")
    before = engine.preferences("c1")
    events = engine.store.count("events")
    with pytest.raises(InputError, match=match):
        call(engine)
    assert engine.preferences("c1") == before
    assert engine.store.count("events") == events


# -- the rule for all histories ------------------------------------------------------------------

answers = st.lists(
    st.tuples(
        st.booleans(),
        st.sampled_from([None, *TOPICS]),
        st.sampled_from([None, "email", "sms"]),
    ),
    max_size=8,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(history=answers)
def test_the_latest_covering_answer_decides_every_send(tmp_path_factory, history):
    store = Store(tmp_path_factory.mktemp("prefs") / "s.db")
    clock = FrozenClock()
    program = make_program(tmp_path_factory.mktemp("prog"))
    engine = Engine(
        attrs.evolve(program, topics=TOPICS),
        store=store,
        clock=clock,
        plugins=make_plugins(),
        channels={"email": RecordingChannel()},
    )
    try:
        engine.identify(*PEOPLE)
        for subscribed, topic, channel in history:
            clock.advance(timedelta(seconds=1))
            change = engine.resubscribe if subscribed else engine.unsubscribe
            change("c1", topic, channel, source="api")
        prefs = engine.preferences("c1")
        for topic, channel in itertools.product(TOPICS, ["email", "sms"]):
            covering = [s for s, t, c in history if t in (None, topic) and c in (None, channel)]
            expected = TOPICS[topic].transactional or not covering or covering[-1]
            assert prefs.allows(topic, channel) is expected, (topic, channel)
    finally:
        engine.close()
