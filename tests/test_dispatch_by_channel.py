"""A dispatch limited to some channels claims only their rows, so each channel can have
workers (or a Celery queue) of its own and a slow provider holds up no other."""

from __future__ import annotations

import pytest

from onetomany.engine import Engine
from onetomany.errors import ConfigError
from onetomany.plugins.settings import PluginSettings
from onetomany.program import Audience, EventTrigger, Touch
from onetomany.testing import RecordingChannel, make_plugins

from .conftest import PEOPLE, make_program


def _engine(tmp_path, store, clock, email, chat) -> Engine:
    touches = [
        Touch(
            name=f"hello_{channel}",
            trigger=EventTrigger(event="signed_up"),
            channel=channel,
            template="welcome",
            audience=Audience(roles=("admin", "sponsor")),
        )
        for channel in ("email", "chat")
    ]
    program = make_program(
        tmp_path,
        *touches,
        email=PluginSettings(name="email", plugin="recording"),
        chat=PluginSettings(name="chat", plugin="recording"),
    )
    engine = Engine(
        program,
        store=store,
        clock=clock,
        plugins=make_plugins(),
        channels={"email": email, "chat": chat},
    )
    engine.identify(*PEOPLE)
    return engine


def test_a_dispatch_for_one_channel_leaves_the_others_rows(tmp_path, store, frozen_clock):
    email, chat = RecordingChannel(), RecordingChannel()
    with _engine(tmp_path, store, frozen_clock, email, chat) as engine:
        engine.track("signed_up", account_id="a1")
        engine.track("signed_up", account_id="a2")
        assert engine.tick() == 4
        report = engine.dispatch(channels=["chat"])
        assert (report.claimed, report.sent) == (2, 2)
        assert len(chat.sent) == 2
        assert email.sent == []
        assert {r.channel for r in store.outbox_rows(status="pending")} == {"email"}
        assert engine.dispatch(channels=["chat"]).claimed == 0
        assert engine.dispatch(channels=["email"]).sent == 2
        assert len(email.sent) == 2


def test_an_unknown_channel_is_refused_by_name(tmp_path, store, frozen_clock):
    with _engine(tmp_path, store, frozen_clock, RecordingChannel(), RecordingChannel()) as engine:
        engine.track("signed_up", account_id="a1")
        engine.tick()
        with pytest.raises(ConfigError, match=r"unknown channel 'sms'.*chat, email"):
            engine.dispatch(channels=["sms"])
        # Nothing was claimed by the refused call.
        assert len(store.outbox_rows(status="pending")) == 2
