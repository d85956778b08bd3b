"""An engine with an in-app touch and a ``not_opened`` ladder on it, and the web app over it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from onetomany import Account, Contact
from onetomany.engine import Engine
from onetomany.model.clock import FrozenClock
from onetomany.plugins.settings import PluginSettings
from onetomany.program import EngagementTrigger, EventTrigger, Program, Touch
from onetomany.store import Store
from onetomany.testing import make_plugins
from onetomany.web import SigningKeys, create_app
from onetomany.web.tokens import ContactTokens

from ..conftest import write_templates

TIP = """\
+++
subject = "Tip {{ event.properties.n }} for {{ contact.first_name }}"
url = "/tips/{{ event.properties.n }}"
+++
<mjml><mj-body><mj-section><mj-column>
<mj-text>Hello {{ contact.first_name }}, here is tip {{ event.properties.n }}.</mj-text>
</mj-column></mj-section></mj-body></mjml>
"""

NUDGE = """\
+++
subject = "Did you see our tip, {{ contact.first_name }}?"
+++
<mjml><mj-body><mj-section><mj-column><mj-text>Have a look.</mj-text></mj-column></mj-section>
</mj-body></mjml>
"""

PEOPLE = (
    Account(id="a1", name="Northwind"),
    Contact(id="c1", account_id="a1", name="Nancy Davolio", email="nancy@northwind.test"),
    Contact(
        id="c2",
        account_id="a1",
        name="Andrew Fuller",
        email="andrew@northwind.test",
        timezone="America/Sao_Paulo",
        locale="pt",
    ),
)
SECRET = "s" * 40
KEYS = SigningKeys.of({"k1": SECRET})


def inbox_program(tmp_path: Path) -> Program:
    templates = write_templates(tmp_path / "templates", tip=TIP, nudge=NUDGE)
    return Program(
        name="acme",
        touches=(
            Touch(name="tip", trigger=EventTrigger(event="tip"), channel="inapp", template="tip"),
            Touch(
                name="nudge",
                trigger=EngagementTrigger(touch="tip", outcome="not_opened", days=2),
                channel="email",
                template="nudge",
            ),
        ),
        channels={
            "inapp": PluginSettings(name="inapp", plugin="inapp"),
            "email": PluginSettings(name="email", plugin="recording"),
        },
        templates_dir=templates,
        sender="Acme <success@acme.test>",
        base_dir=tmp_path,
    )


def deliver_tips(engine: Engine, contact_id: str, count: int, *, start: int = 1) -> None:
    """``count`` tips reach the contact's inbox, a minute apart (oldest first)."""
    for n in range(start, start + count):
        engine.track("tip", contact_id=contact_id, account_id="a1", properties={"n": n})
        engine.tick()
        engine.dispatch()
        assert isinstance(engine.clock, FrozenClock)
        engine.clock.advance(minutes=1)


def _engine(tmp_path: Path, clock: FrozenClock, store: Store) -> Iterator[Engine]:
    with Engine(inbox_program(tmp_path), store=store, clock=clock, plugins=make_plugins()) as e:
        e.identify(*PEOPLE)
        yield e


@pytest.fixture
def engine(tmp_path: Path, frozen_clock: FrozenClock, store: Store) -> Iterator[Engine]:
    """On each database (the core's ``store`` fixture)."""
    yield from _engine(tmp_path, frozen_clock, store)


@pytest.fixture
def sqlite_engine(tmp_path: Path, frozen_clock: FrozenClock, temp_store: Store) -> Iterator[Engine]:
    """On SQLite only: for the HTTP and browser tests, which test the web layer."""
    yield from _engine(tmp_path, frozen_clock, temp_store)


@pytest.fixture
def client(sqlite_engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(sqlite_engine, keys=KEYS)) as c:
        yield c


def token(engine: Engine, contact_id: str, ttl: timedelta = timedelta(hours=1)) -> str:
    return ContactTokens(KEYS).issue(contact_id, now=engine.clock.now(), ttl=ttl)


def auth(engine: Engine, contact_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(engine, contact_id)}"}
