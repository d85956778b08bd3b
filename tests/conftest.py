"""Shared builders for the core's tests: a small program with real templates on disk."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from onetomany import Account, Contact
from onetomany.engine import Engine
from onetomany.program import Audience, EventTrigger, Program, Touch
from onetomany.settings import PluginSettings
from onetomany.store import Store
from onetomany.testing import RecordingChannel, make_plugins

WELCOME = """\
+++
subject = "Welcome, {{ contact.first_name }}"
+++
<mjml><mj-body><mj-section><mj-column>
<mj-text>Hello {{ contact.first_name }} from {{ account.name }}.</mj-text>
</mj-column></mj-section></mj-body></mjml>
"""

BROKEN = """\
+++
subject = "Hi {{ contact.first_name }}"
+++
<mjml><mj-body><mj-section><mj-column>
<mj-text>Your plan: {{ account.traits.no_such_trait }}</mj-text>
</mj-column></mj-section></mj-body></mjml>
"""


def write_templates(folder: Path, **templates: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, body in templates.items():
        (folder / f"{name}.mjml").write_text(textwrap.dedent(body))
    return folder


def make_program(tmp_path: Path, *touches: Touch, **channels: PluginSettings) -> Program:
    write_templates(tmp_path / "templates", welcome=WELCOME, broken=BROKEN)
    return Program(
        name="acme",
        touches=touches
        or (
            Touch(
                name="welcome",
                trigger=EventTrigger(event="signed_up"),
                channel="email",
                template="welcome",
                audience=Audience(roles=("admin", "sponsor")),
            ),
        ),
        channels=channels or {"email": PluginSettings(name="email", plugin="recording")},
        templates_dir=tmp_path / "templates",
        sender="Acme <success@acme.test>",
        base_dir=tmp_path,
    )


PEOPLE = (
    Account(id="a1", name="Northwind", traits={"plan": "pro"}),
    Account(id="a2", name="Tailspin", traits={"plan": "starter"}),
    Contact(
        id="c1", account_id="a1", name="Nancy Davolio", email="nancy@northwind.test", role="admin"
    ),
    Contact(
        id="c2",
        account_id="a1",
        name="Andrew Fuller",
        email="andrew@northwind.test",
        role="sponsor",
    ),
    Contact(
        id="c3",
        account_id="a2",
        name="Janet Leverling",
        email="janet@tailspin.test",
        role="sponsor",
    ),
)


@pytest.fixture
def recorder() -> RecordingChannel:
    return RecordingChannel()


@pytest.fixture
def engine(tmp_path, frozen_clock, recorder):
    engine = Engine(
        make_program(tmp_path),
        store=Store(tmp_path / "store.db"),
        clock=frozen_clock,
        plugins=make_plugins(),
        channels={"email": recorder},
    )
    engine.identify(*PEOPLE)
    yield engine
    engine.close()
