"""onetomany-sql: a onetomany source that streams accounts, contacts and events out of any
database SQLAlchemy reaches (the host's own product database, a warehouse replica).

Installing the distribution registers the ``sql`` source type, which a program uses with
``[sources.NAME] plugin = "sql"``.
"""

from __future__ import annotations

from onetomany import hookimpl
from onetomany.plugins.registry import Register
from onetomany.plugins.sources import Source
from onetomany_sql.source import SqlSource

__all__ = ["SqlSource", "onetomany_register_sources"]


@hookimpl
def onetomany_register_sources(register: Register[type[Source]]) -> None:
    register("sql", SqlSource)
