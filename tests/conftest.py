"""Shared builders for the core's tests: a small program with real templates on disk."""

from __future__ import annotations

import contextlib
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from onetomany import Account, Contact
from onetomany.engine import Engine
from onetomany.plugins.settings import PluginSettings
from onetomany.program import Audience, EventTrigger, Program, Touch
from onetomany.store import Store
from onetomany.testing import RecordingChannel, make_plugins

from .postgres import PostgresUnavailable, running_postgres, unavailable

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
def make_engine(tmp_path, frozen_clock, store):
    """Build an engine on ``store`` (each database in turn) with ``PEOPLE`` identified."""

    def build(channel, retry=None, touches=()):
        engine = Engine(
            make_program(tmp_path, *touches),
            store=store,
            clock=frozen_clock,
            plugins=make_plugins(),
            channels={"email": channel},
            retry=retry,
        )
        engine.identify(*PEOPLE)
        return engine

    return build


@pytest.fixture
def engine(make_engine, recorder):
    engine = make_engine(recorder)
    yield engine
    engine.close()


# -- stores on every supported database --------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL cluster for the session, as the URL of its test database."""
    with contextlib.ExitStack() as stack:
        try:
            cluster = stack.enter_context(running_postgres())
        except PostgresUnavailable as exc:
            unavailable(str(exc))
        yield cluster.url()


@pytest.fixture(scope="session")
def postgres_admin(postgres_url: str) -> Iterator[sa.Engine]:
    """An AUTOCOMMIT engine on the cluster, for CREATE/DROP DATABASE."""
    engine = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_url(postgres_url: str, postgres_admin: sa.Engine) -> Iterator[str]:
    """The URL of a fresh, empty database, dropped after the test."""
    name = f"t_{uuid.uuid4().hex}"
    with postgres_admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield sa.make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    with postgres_admin.connect() as conn:
        # FORCE: a test that failed half-way may have left a connection open.
        conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A migrated, empty store on each supported database in turn."""
    if request.param == "sqlite":
        url = str(tmp_path / "store.db")
    else:
        url = request.getfixturevalue("pg_url")
    store = Store(url)
    yield store
    store.close()
