"""Engagement outcomes and escalation ladders: email -> resend -> SMS -> CSM task."""

from __future__ import annotations

import email
import json
from datetime import timedelta
from email.policy import default as default_policy
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from onetomany import Account, Contact
from onetomany.engine import Engine
from onetomany.errors import ConfigError, InputError
from onetomany.model import OutboxStatus
from onetomany.model.clock import FrozenClock
from onetomany.plugins.settings import PluginSettings
from onetomany.program import Audience, EngagementTrigger, EventTrigger, Program, Touch
from onetomany.store import Store
from onetomany.testing import RecordingChannel, make_plugins
from onetomany.tracking.engagement import occurrence, unengaged
from onetomany.tracking.reentry import idempotency_key

from .conftest import WELCOME, write_templates

RESEND = """\
+++
subject = "Did you see this, {{ contact.first_name }}?"
+++
<mjml><mj-body><mj-section><mj-column>
<mj-text>A second look at {{ account.name }}'s welcome.</mj-text>
</mj-column></mj-section></mj-body></mjml>
"""

CSM_CALL = """\
+++
subject = "Call {{ contact.name }} at {{ account.name }}"
+++
<mjml><mj-body><mj-section><mj-column>
<mj-text>{{ escalation.reason }}. Book a meeting with {{ contact.name }}.</mj-text>
</mj-column></mj-section></mj-body></mjml>
"""

PEOPLE = (
    Account(id="a1", name="Northwind", traits={"owner": "maria@acme.test"}),
    Contact(
        id="c1",
        account_id="a1",
        name="Nancy Davolio",
        email="nancy@northwind.test",
        phone="+14155552671",
        role="admin",
    ),
    Contact(id="c2", account_id="a1", name="Andrew Fuller", role="admin"),  # no email
)


def _program(tmp_path: Path, outcome: str = "not_opened", days: int = 3) -> Program:
    templates = write_templates(
        tmp_path / "templates", welcome=WELCOME, resend=RESEND, csm_call=CSM_CALL
    )
    (templates / "nudge.sms.txt").write_text("Hi {{ contact.first_name }}, your welcome mail.")

    def ladder(name: str, after: str, channel: str, template: str, wait: int) -> Touch:
        trigger = EngagementTrigger(touch=after, outcome=outcome, days=wait)
        return Touch(name=name, trigger=trigger, channel=channel, template=template)

    def folder(name: str, kind: str) -> PluginSettings:
        options = {"folder": str(tmp_path / "out" / name), "kind": kind}
        return PluginSettings(name=name, plugin="outbox", options=options)

    return Program(
        name="acme",
        touches=(
            Touch(
                name="welcome",
                trigger=EventTrigger(event="signed_up"),
                channel="email",
                template="welcome",
                audience=Audience(roles=("admin",), every=True),
            ),
            ladder("resend", "welcome", "email", "resend", days),
            ladder("sms_nudge", "resend", "sms", "nudge", days),
            ladder("csm_call", "sms_nudge", "csm", "csm_call", 2),
        ),
        channels={
            "email": folder("email", "email"),
            "sms": folder("sms", "sms"),
            "csm": folder("csm", "csm"),
        },
        templates_dir=templates,
        sender="Acme <success@acme.test>",
        base_dir=tmp_path,
    )


def _engine(tmp_path: Path, store: Store, clock: FrozenClock, **kwargs: object) -> Engine:
    engine = Engine(
        _program(tmp_path, **kwargs),  # type: ignore[arg-type]
        store=store,
        clock=clock,
        plugins=make_plugins(),
    )
    engine.identify(*PEOPLE)
    return engine


def _signed_up(engine: Engine) -> str:
    """Nancy signs up and gets the welcome email; returns its key."""
    engine.track("signed_up", account_id="a1", contact_id="c1", id="s1")
    assert engine.tick() == 2  # Nancy, and Andrew who has no email address
    engine.dispatch()
    sent = engine.store.outbox_rows(status=OutboxStatus.SENT)
    assert [r.contact_id for r in sent] == ["c1"]
    dead = engine.store.outbox_rows(status=OutboxStatus.DEAD)
    assert [r.contact_id for r in dead] == ["c2"]
    return sent[0].idempotency_key


def _touches(engine: Engine) -> list[tuple[str, str | None, str]]:
    return [(r.touch, r.contact_id, r.status) for r in engine.store.outbox_rows()]


def _files(tmp_path: Path, channel: str, pattern: str) -> list[Path]:
    return sorted((tmp_path / "out" / channel).glob(pattern))


def test_the_whole_ladder_from_welcome_to_a_csm_task_for_the_owner(tmp_path, store, frozen_clock):
    with _engine(tmp_path, store, frozen_clock) as engine:
        welcome_key = _signed_up(engine)
        [first] = _files(tmp_path, "email", "*.eml")
        assert email.message_from_bytes(first.read_bytes())["Subject"] == "Welcome, Nancy"

        frozen_clock.advance(days=3, seconds=-1)
        assert engine.tick() == 0  # not yet three days
        frozen_clock.advance(seconds=1)
        assert engine.tick() == 1
        assert engine.tick() == 0
        engine.dispatch()
        [resend] = [r for r in engine.store.outbox_rows() if r.touch == "resend"]
        welcome_row = next(r for r in engine.store.outbox_rows() if r.touch == "welcome")
        assert resend.idempotency_key == idempotency_key(
            "acme", "resend", "c1", occurrence(welcome_row.id)
        )
        assert resend.payload["ladder"] == [welcome_key]
        subjects = {
            email.message_from_bytes(p.read_bytes(), policy=default_policy)["Subject"]
            for p in _files(tmp_path, "email", "*.eml")
        }
        assert subjects == {"Welcome, Nancy", "Did you see this, Nancy?"}

        frozen_clock.advance(days=3)
        assert engine.tick() == 1
        engine.dispatch()
        [sms_file] = _files(tmp_path, "sms", "*.json")
        sms = json.loads(sms_file.read_text())
        assert (sms["to"], sms["kind"], sms["touch"]) == ("+14155552671", "sms", "sms_nudge")
        assert sms["text"].startswith("Hi Nancy")

        frozen_clock.advance(days=2)
        assert engine.tick() == 1
        engine.dispatch()
        [task_file] = _files(tmp_path, "csm", "*.json")
        task = json.loads(task_file.read_text())
        assert task["to"] == "maria@acme.test"  # the account's owner, not Nancy
        assert (task["kind"], task["touch"]) == ("csm", "csm_call")
        assert (task["account_id"], task["contact_id"]) == ("a1", "c1")
        assert task["subject"] == "Call Nancy Davolio at Northwind"
        assert "'sms_nudge' sent" in task["text"] and "was not opened within 2 days" in task["text"]
        record = task["data"]["task"]
        assert record["owner"] == "maria@acme.test"
        assert record["account"] == {"id": "a1", "name": "Northwind"}
        assert record["contact"]["phone"] == "+14155552671"
        assert [s["touch"] for s in record["ladder"]] == ["welcome", "resend", "sms_nudge"]
        assert record["ladder"][0]["key"] == welcome_key
        assert record["due"] == (frozen_clock.now() + timedelta(days=2)).date().isoformat()

        # The ladder ends; nothing climbs twice, in this engine or in a new one.
        frozen_clock.advance(days=30)
        assert engine.tick() == 0
    with _engine(tmp_path, store, frozen_clock) as again:
        assert again.tick() == 0
        assert [t for t, _, _ in _touches(again)] == [
            "welcome",
            "welcome",
            "resend",
            "sms_nudge",
            "csm_call",
        ]


def test_an_open_after_the_first_email_stops_the_whole_ladder(tmp_path, store, frozen_clock):
    with _engine(tmp_path, store, frozen_clock) as engine:
        key = _signed_up(engine)
        frozen_clock.advance(days=1)
        event = engine.track_engagement(key, "opened")
        assert event.name == "message_opened"
        assert (event.contact_id, event.account_id) == ("c1", "a1")
        assert event.properties == {"idempotency_key": key, "touch": "welcome", "channel": "email"}
        for _ in range(5):
            frozen_clock.advance(days=3)
            assert engine.tick() == 0
            engine.dispatch()
        assert {t for t, _, _ in _touches(engine)} == {"welcome"}


def test_a_click_counts_as_an_open(tmp_path, store, frozen_clock):
    with _engine(tmp_path, store, frozen_clock) as engine:
        key = _signed_up(engine)
        engine.track_engagement(key, "clicked")
        frozen_clock.advance(days=10)
        assert engine.tick() == 0


def test_not_clicked_escalates_an_opened_message_and_a_click_stops_it(
    tmp_path, store, frozen_clock
):
    with _engine(tmp_path, store, frozen_clock, outcome="not_clicked") as engine:
        key = _signed_up(engine)
        engine.track_engagement(key, "opened")  # opening is not enough
        frozen_clock.advance(days=3)
        assert engine.tick() == 1
        engine.dispatch()
        resend = next(r for r in engine.store.outbox_rows() if r.touch == "resend")
        engine.track_engagement(resend.idempotency_key, "clicked")
        frozen_clock.advance(days=10)
        assert engine.tick() == 0
        assert [t for t, _, _ in _touches(engine)] == ["welcome", "welcome", "resend"]


def test_an_open_of_the_first_email_after_the_resend_stops_the_later_steps(
    tmp_path, store, frozen_clock
):
    with _engine(tmp_path, store, frozen_clock) as engine:
        key = _signed_up(engine)
        frozen_clock.advance(days=3)
        assert engine.tick() == 1  # not opened within the window: the resend goes
        engine.dispatch()
        frozen_clock.advance(days=1)
        engine.track_engagement(key, "opened")  # late, and on the original email
        frozen_clock.advance(days=10)
        assert engine.tick() == 0  # no SMS, and so no CSM task
        assert [t for t, _, _ in _touches(engine)] == ["welcome", "welcome", "resend"]


def test_dead_rows_and_unsent_rows_do_not_escalate(tmp_path, store, frozen_clock):
    with _engine(tmp_path, store, frozen_clock) as engine:
        engine.track("signed_up", account_id="a1", contact_id="c1", id="s1")
        engine.tick()
        frozen_clock.advance(days=10)
        assert engine.tick() == 0  # queued but never dispatched: not sent, so never unread
        engine.dispatch()  # Nancy's is sent now; Andrew's (no email) dies
        frozen_clock.advance(days=3)
        assert engine.tick() == 1
        assert [(t, c) for t, c, _ in _touches(engine) if t == "resend"] == [("resend", "c1")]


def test_tracking_an_unknown_key_is_an_error_that_stores_nothing(tmp_path, store, frozen_clock):
    with _engine(tmp_path, store, frozen_clock) as engine:
        key = _signed_up(engine)
        events = engine.store.count("events")
        with pytest.raises(InputError, match="'acme:welcome:nobody:x'"):
            engine.track_engagement("acme:welcome:nobody:x", "opened")
        with pytest.raises(InputError, match="'bounced'"):
            engine.track_engagement(key, "bounced")
        assert engine.store.count("events") == events


def test_a_redelivered_webhook_with_the_same_id_counts_once(tmp_path, store, frozen_clock):
    with _engine(tmp_path, store, frozen_clock) as engine:
        key = _signed_up(engine)
        events = engine.store.count("events")
        engine.track_engagement(key, "opened", id="provider-1")
        engine.track_engagement(key, "opened", id="provider-1")
        assert engine.store.count("events") == events + 1


def test_a_bad_due_days_option_is_named(tmp_path):
    settings_ = PluginSettings(
        name="csm",
        plugin="outbox",
        options={"folder": str(tmp_path), "kind": "csm", "due_days": -1},
    )
    from onetomany.plugins.builtin.outbox_folder import OutboxFolderChannel

    with pytest.raises(ConfigError, match="due_days"):
        OutboxFolderChannel(settings_)


# -- the rule, for all open, click and tick times ---------------------------------------------

_HOURS = st.integers(min_value=0, max_value=24 * 14)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    ticks=st.lists(_HOURS, min_size=1, max_size=8),
    engagements=st.lists(
        st.tuples(_HOURS, st.sampled_from(["opened", "clicked"]), st.integers(0, 3)), max_size=3
    ),
    outcome=st.sampled_from(["not_opened", "not_clicked"]),
)
def test_each_sent_message_escalates_at_most_once_never_early_never_after_engagement(
    tmp_path_factory, ticks, engagements, outcome
):
    tmp_path = tmp_path_factory.mktemp("ladder")
    clock = FrozenClock()
    start = clock.now()
    counted = {"not_opened": {"opened", "clicked"}, "not_clicked": {"clicked"}}[outcome]
    store = Store(tmp_path / "store.db")
    program = _program(tmp_path, outcome=outcome, days=1)
    recorder = RecordingChannel()
    channels = {name: recorder for name in ("email", "sms")}
    channels["csm"] = RecordingChannel()
    events = sorted(engagements)
    engaged: dict[str, object] = {}  # key -> first counting engagement time
    with Engine(
        program, store=store, clock=clock, plugins=make_plugins(), channels=channels
    ) as engine:
        engine.identify(*PEOPLE[:2])
        engine.track("signed_up", account_id="a1", contact_id="c1", id="s1")
        for hour in sorted(ticks):
            moment = start + timedelta(hours=hour)
            # Engagements due by this moment are tracked first, on a step that was sent.
            while events and start + timedelta(hours=events[0][0]) <= moment:
                at_hour, kind, step = events.pop(0)
                clock.set(start + timedelta(hours=at_hour))
                sent = engine.store.outbox_rows(status=OutboxStatus.SENT)
                if sent:
                    row = sent[min(step, len(sent) - 1)]
                    engine.track_engagement(row.idempotency_key, kind)
                    if kind in counted:
                        engaged.setdefault(row.idempotency_key, clock.now())
            clock.set(moment)
            engine.tick()
            engine.dispatch()
        rows = engine.store.outbox_rows()
        by_id = {r.id: r for r in rows}
        sent_at = {
            r.id: min(d.at for d in engine.store.deliveries(outbox_id=r.id) if d.status == "sent")
            for r in rows
            if r.status == OutboxStatus.SENT
        }
        created = {r.id: _created(engine.store, r.id) for r in rows}
    store.close()
    event(f"steps queued: {len(rows) - 1}")
    escalated_from: dict[int, int] = {}
    for row in rows:
        if row.touch == "welcome":
            continue
        parent = int(row.idempotency_key.rsplit(":after-", 1)[1])
        assert parent not in escalated_from, "a message escalated twice"
        escalated_from[parent] = row.id
        # Never before the message was sent plus the step's days.
        wait = timedelta(days=2 if row.touch == "csm_call" else 1)
        assert created[row.id] >= sent_at[parent] + wait
        # Never after an engagement with any step of its ladder run.
        assert row.payload["ladder"][-1] == by_id[parent].idempotency_key
        for key in row.payload["ladder"]:
            first = engaged.get(key)
            assert first is None or first > created[row.id]  # type: ignore[operator]


def _created(store: Store, row_id: int):
    import sqlalchemy as sa

    from onetomany.store import schema

    with store.engine.connect() as conn:
        return conn.execute(
            sa.select(schema.outbox.c.created_at).where(schema.outbox.c.id == row_id)
        ).scalar_one()


def test_the_sql_key_of_the_next_step_is_the_engines_key(tmp_path, store, frozen_clock):
    with _engine(tmp_path, store, frozen_clock) as engine:
        _signed_up(engine)
        frozen_clock.advance(days=3)
        touch = engine.program.touch("resend")
        assert isinstance(touch.trigger, EngagementTrigger)
        now = frozen_clock.now()
        assert len(unengaged(engine.store, "acme", touch, touch.trigger, now=now)) == 1
        engine.tick()
        # Once queued, the anti-join on the next step's key drops the row in SQL.
        assert unengaged(engine.store, "acme", touch, touch.trigger, now=now) == []
