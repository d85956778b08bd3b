"""An email touch sent through the recording channel with ``[tracking]`` on, and the web app
over its engine: what the tracking and NPS tests click."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import attrs
from starlette.testclient import TestClient

from onetomany import Account, Contact
from onetomany.engine import Engine
from onetomany.model.clock import FrozenClock
from onetomany.plugins.settings import PluginSettings
from onetomany.program import EngagementTrigger, EventTrigger, Program, Touch
from onetomany.rules.tracking_links import TrackingSettings
from onetomany.rules.unsubscribe import UnsubscribeSettings
from onetomany.store import Store
from onetomany.store.queries.events import events_of
from onetomany.testing import RecordingChannel, make_plugins
from onetomany.web import create_app

from ..conftest import write_templates
from .conftest import KEYS

BASE = "https://app.acme.test/onetomany"
WELCOME = """\
+++
subject = "Welcome, {{ contact.first_name }}"
+++
<mjml><mj-body><mj-section><mj-column>
<mj-text>Read <a href="https://acme.test/docs?a=1&amp;b=2">the docs</a>, then
<a href='https://acme.test/pricing'>pricing</a> or <a href="mailto:help@acme.test">mail us</a>.
<a href="{{ unsubscribe_url }}">Unsubscribe</a>
How likely are you to recommend us?
<a href="{{ nps_url(3) }}">3</a> <a href="{{ nps_url(9) }}">9</a></mj-text>
<mj-button href="https://acme.test/start">Start</mj-button>
</mj-column></mj-section></mj-body></mjml>
"""
NUDGE = """\
+++
subject = "Did you see it?"
+++
<mjml><mj-body><mj-section><mj-column><mj-text>Have a look.</mj-text></mj-column></mj-section>
</mj-body></mjml>
"""
KEYSET = UnsubscribeSettings(
    url="https://app.acme.test/onetomany/unsubscribe/{token}",
    keys={"2026-12": "t" * 40},
    current="2026-12",
)
TRACKING = TrackingSettings(
    base_url=BASE, utm={"utm_source": "onetomany", "utm_campaign": "{touch}"}
)
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
APPLE_PROXY = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
)


def tracked_program(tmp_path: Path, *, track: bool = True) -> Program:
    templates = write_templates(tmp_path / "templates", welcome=WELCOME, nudge=NUDGE)
    return Program(
        name="acme",
        touches=(
            Touch(
                name="welcome",
                trigger=EventTrigger(event="signed_up"),
                channel="email",
                template="welcome",
                track=track,
            ),
            Touch(
                name="nudge",
                trigger=EngagementTrigger(touch="welcome", outcome="not_opened", days=2),
                channel="email",
                template="nudge",
            ),
        ),
        channels={"email": PluginSettings(name="email", plugin="recording")},
        templates_dir=templates,
        sender="Acme <success@acme.test>",
        unsubscribe=KEYSET,
        tracking=TRACKING,
        base_dir=tmp_path,
    )


@attrs.define
class Sent:
    engine: Engine
    recorder: RecordingChannel
    client: TestClient

    @property
    def html(self) -> str:
        return self.recorder.sent[0].html or ""

    @property
    def key(self) -> str:
        return self.recorder.sent[0].idempotency_key

    def links(self, route: str) -> list[str]:
        """The tokens of the message's links to the app's ``route`` (``c``, ``o``, ``nps``)."""
        return re.findall(re.escape(BASE) + f"/{route}/([^\"']+)", self.html)

    def clicks(self) -> list[str]:
        return self.links("c")

    def pixel(self) -> str:
        (token,) = self.links("o")
        return token


def events_named(engine: Engine, name: str) -> list[dict[str, object]]:
    contact = engine.store.get_contact("c1")
    assert contact is not None
    return [dict(e.properties) for e in events_of(engine.store, contact, names=[name])]


def send_welcome(
    tmp_path: Path, clock: FrozenClock, store: Store, *, track: bool = True
) -> Iterator[Sent]:
    recorder = RecordingChannel()
    with Engine(
        tracked_program(tmp_path, track=track),
        store=store,
        clock=clock,
        plugins=make_plugins(),
        channels={"email": recorder},
    ) as engine:
        engine.identify(
            Account(id="a1", name="Northwind"),
            Contact(id="c1", account_id="a1", name="Nancy Davolio", email="nancy@northwind.test"),
        )
        engine.track("signed_up", contact_id="c1", account_id="a1")
        engine.tick()
        engine.dispatch()
        with TestClient(create_app(engine, keys=KEYS), follow_redirects=False) as client:
            yield Sent(engine, recorder, client)


def flip(token: str, part: int) -> str:
    """``token`` with one character of its ``part`` (0 key, 1 payload, 2 signature) changed."""
    pieces = token.split(".")
    piece = pieces[part]
    pieces[part] = piece[:-2] + ("A" if piece[-2] != "A" else "B") + piece[-1]
    return ".".join(pieces)
