"""Fixtures for the SQL source tests: a host database on SQLite or on the project's throwaway
PostgreSQL cluster (the core tests' fixtures, reused), and sources reading it."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from onetomany.plugins.settings import PluginSettings
from onetomany_sql import SqlSource

ROOT = Path(__file__).resolve().parents[4]
if str(ROOT) not in sys.path:  # run alone (pytest plugins/sources/sql), the core's tests too
    sys.path.insert(0, str(ROOT))

from tests.conftest import pg_url, postgres_admin, postgres_url  # noqa: E402

__all__ = ["pg_url", "postgres_admin", "postgres_url"]

MakeSource = Callable[..., SqlSource]

SCHEMA = """
CREATE TABLE companies (id TEXT PRIMARY KEY, company TEXT, plan TEXT, seats INTEGER,
                        mrr NUMERIC(12, 2), changed_at TIMESTAMP);
CREATE TABLE users (id TEXT, company_id TEXT, full_name TEXT, email TEXT,
                    job TEXT, changed_at TIMESTAMP);
CREATE TABLE app_events (seq INTEGER PRIMARY KEY, kind TEXT, at TIMESTAMP, user_id TEXT,
                         feature TEXT);
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def host_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """The host's own database, with its tables created and empty, on each dialect."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'host.db'}"
    else:
        url = request.getfixturevalue("pg_url").replace("postgresql://", "postgresql+psycopg://")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for statement in SCHEMA.split(";"):
            if statement.strip():
                conn.execute(sa.text(statement))
    yield engine
    engine.dispose()


@pytest.fixture
def make_source(tmp_path: Path, host_db: sa.Engine) -> MakeSource:
    """A source named ``usage`` on ``host_db``; options as in program.toml."""

    def make(**options: Any) -> SqlSource:
        options.setdefault("url", host_db.url.render_as_string(hide_password=False))
        return SqlSource(
            PluginSettings(name="usage", plugin="sql", options=options, base_dir=tmp_path)
        )

    return make
