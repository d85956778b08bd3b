"""Applying the Alembic migrations that ship inside the package."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

MIGRATIONS = Path(__file__).with_name("migrations")


def _config(conn: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = conn
    return config


def head() -> str:
    """The newest revision this version of onetomany knows."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    revision = ScriptDirectory.from_config(config).get_current_head()
    assert revision is not None
    return revision


def current(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def upgrade(conn: Connection) -> list[str]:
    """Bring the database on ``conn`` to the head revision; returns what was applied."""
    config = _config(conn)
    script = ScriptDirectory.from_config(config)
    now = current(conn)
    target = script.get_current_head()
    if now == target:
        return []
    pending = [rev.revision for rev in script.iterate_revisions(target, now)]
    command.upgrade(config, "head")
    return list(reversed(pending))
