"""The SQL source's options, checked when the source is created.

Each mistake is a :class:`~onetomany.errors.ConfigError` naming the option key, so a typo in
``program.toml`` fails when the program loads, not on the first sync.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs
import sqlalchemy as sa
from sqlalchemy.exc import ArgumentError

from onetomany.errors import ConfigError
from onetomany.plugins.settings import PluginSettings

#: What a SQL source reads, in the order it reads them (accounts before the contacts and
#: events that name them).
KINDS: Final = ("accounts", "contacts", "events")

#: The fields each kind maps from the query's columns; every other column is a trait
#: (accounts, contacts) or a property (events).
FIELDS: Final[Mapping[str, tuple[str, ...]]] = {
    "accounts": ("id", "name"),
    "contacts": ("id", "account_id", "name", "email", "phone", "role", "locale", "timezone"),
    "events": ("id", "name", "occurred_at", "account_id", "contact_id"),
}
#: The fields a query must provide (under their own name or through ``columns``).
REQUIRED: Final[Mapping[str, tuple[str, ...]]] = {
    "accounts": ("id",),
    "contacts": ("id",),
    "events": ("name", "occurred_at"),
}

_KNOWN: Final = frozenset({"url", "url_env", "page_size", "timezone", *KINDS})
_KIND_KEYS: Final = frozenset({"query", "cursor", "columns"})
_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@attrs.frozen(kw_only=True)
class Query:
    """One kind's query: the SQL, its cursor column (or none) and field -> column names."""

    kind: str
    sql: str
    cursor: str | None
    columns: Mapping[str, str]

    def column(self, field: str) -> str:
        return self.columns.get(field, field)


@attrs.frozen(kw_only=True, repr=False)
class SqlOptions:
    """The checked options of one SQL source; ``url`` is kept out of ``repr``."""

    url: sa.URL
    page_size: int
    zone: ZoneInfo
    queries: tuple[Query, ...]

    def __repr__(self) -> str:
        return f"SqlOptions(url={self.shown_url!r}, queries={[q.kind for q in self.queries]})"

    @property
    def shown_url(self) -> str:
        """The URL with its password masked: the only form that goes into a message."""
        return self.url.render_as_string(hide_password=True)


def read_options(settings: PluginSettings) -> SqlOptions:
    unknown = sorted(set(settings.options) - _KNOWN)
    if unknown:
        known = ", ".join(sorted(_KNOWN))
        raise option_error(settings, unknown[0], f"unknown option (known: {known})")
    queries = tuple(_query(settings, kind) for kind in KINDS if kind in settings.options)
    if not queries:
        raise option_error(
            settings, "accounts", "the sql source needs at least one of: accounts, contacts, events"
        )
    page_size = settings.get("page_size", int, 1000)
    if page_size < 1:
        raise option_error(settings, "page_size", f"expected a positive number, got {page_size}")
    return SqlOptions(
        url=_url(settings), page_size=page_size, zone=_zone(settings), queries=queries
    )


def option_error(settings: PluginSettings, key: str, reason: str) -> ConfigError:
    return ConfigError(reason, file=settings.origin or None, key=f"{settings.name}.{key}")


def _url(settings: PluginSettings) -> sa.URL:
    if ("url" in settings.options) == ("url_env" in settings.options):
        raise option_error(
            settings,
            "url",
            "give either url (a SQLAlchemy URL) or url_env (the environment variable holding "
            "it, to keep a password out of program.toml)",
        )
    if "url_env" in settings.options:
        variable = settings.require("url_env", str)
        raw = os.environ.get(variable)
        if not raw:
            raise option_error(settings, "url_env", f"the environment variable {variable} is unset")
        key = "url_env"
    else:
        raw, key = settings.require("url", str), "url"
    try:
        url = sa.make_url(raw)
    except ArgumentError:
        # The text may hold a password: say what is wrong without repeating it.
        raise option_error(
            settings, key, "not a SQLAlchemy URL (dialect+driver://user:password@host/db)"
        ) from None
    database = url.database or ""
    # A relative SQLite file is the program's, like every other path in program.toml.
    relative = database not in ("", ":memory:") and not os.path.isabs(database)
    if url.get_backend_name() == "sqlite" and relative and not database.startswith("file:"):
        url = url.set(database=str(settings.base_dir / database))
    return url


def _zone(settings: PluginSettings) -> ZoneInfo:
    name = settings.get("timezone", str, "UTC")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise option_error(settings, "timezone", f"unknown IANA zone {name!r}") from None


def _query(settings: PluginSettings, kind: str) -> Query:
    raw: Mapping[Any, Any] = settings.get(kind, dict, {})
    unknown = sorted(set(raw) - _KIND_KEYS)
    if unknown:
        raise option_error(
            settings, f"{kind}.{unknown[0]}", "unknown key (known: columns, cursor, query)"
        )
    sql = raw.get("query")
    if not isinstance(sql, str) or not sql.strip():
        raise option_error(settings, f"{kind}.query", "expected the SELECT that reads them")
    cursor = raw.get("cursor")
    if cursor is not None and (not isinstance(cursor, str) or not _NAME.match(cursor)):
        raise option_error(
            settings, f"{kind}.cursor", f"expected a column name of the query, got {cursor!r}"
        )
    columns = raw.get("columns", {})
    if not isinstance(columns, Mapping):
        raise option_error(settings, f"{kind}.columns", "expected a table of field = column")
    for field, column in columns.items():
        if field not in FIELDS[kind]:
            raise option_error(
                settings,
                f"{kind}.columns.{field}",
                f"not a field of {kind} (fields: {', '.join(FIELDS[kind])}); other columns "
                "are read as they are named",
            )
        if not isinstance(column, str) or not column.strip():
            raise option_error(settings, f"{kind}.columns.{field}", "expected a column name")
    return Query(
        kind=kind,
        sql=sql.strip().rstrip(";"),
        cursor=cursor,
        columns={str(k): str(v) for k, v in columns.items()},
    )
