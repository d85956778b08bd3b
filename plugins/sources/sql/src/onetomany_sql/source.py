"""The SQL source: each configured query streamed with a server-side cursor, a page at a time.

A kind with a ``cursor`` column is read in that column's order, and an incremental sync reads
only the rows whose value is at or after the last one stored (``>=``: rows sharing the last
value may have been cut by a page, and reading them again is harmless, since profiles are
upserted and event ids stored once). The sync's cursor is a JSON object holding each kind's
last value with its type, so it binds back as the same type (a timestamp stays a timestamp).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from onetomany.errors import ConfigError, InputError, SourceDataError, SourceRow
from onetomany.model import Account, Contact, Event, pages
from onetomany.plugins.settings import PluginSettings
from onetomany.plugins.sources import Skipped, Source, SyncPage
from onetomany_sql.options import REQUIRED, Query, SqlOptions, option_error, read_options
from onetomany_sql.records import RowError, build, contact_columns, describe, layout

#: How a cursor value is written in the sync's cursor, and read back.
_ENCODE: Mapping[type, str] = {
    datetime: "datetime",
    date: "date",
    int: "int",
    float: "float",
    Decimal: "decimal",
    str: "str",
}
_DECODE: Mapping[str, Any] = {
    "datetime": datetime.fromisoformat,
    "date": date.fromisoformat,
    "int": int,
    "float": float,
    "decimal": Decimal,
    "str": str,
}


class SourceUnavailableError(InputError):
    """The database cannot be reached or refused a query (names the source and the URL,
    password masked)."""


class SqlSource(Source):
    """Streams accounts, contacts and events out of a database with configured queries."""

    def __init__(self, settings: PluginSettings) -> None:
        super().__init__(settings)
        self.options: SqlOptions = read_options(settings)

    def sync(self, *, cursor: str | None = None) -> Iterator[SyncPage]:
        positions = self._positions(cursor)
        engine = sa.create_engine(self.options.url, poolclass=sa.NullPool)
        try:
            for query in self.options.queries:
                yield from self._read(engine, query, positions)
        finally:
            engine.dispose()

    def _read(
        self, engine: sa.Engine, query: Query, positions: dict[str, Any]
    ) -> Iterator[SyncPage]:
        statement, params = self._statement(query, positions)
        try:
            with engine.connect() as conn:
                result = conn.execution_options(
                    stream_results=True, yield_per=self.options.page_size
                ).execute(statement, params)
                keys = list(result.keys())
                self._check_columns(query, keys)
                for rows in result.partitions(self.options.page_size):
                    yield self._page(query, keys, rows, positions)
        except SQLAlchemyError as exc:
            raise self._unavailable(query, exc) from exc

    def _statement(
        self, query: Query, positions: dict[str, Any]
    ) -> tuple[sa.TextClause, dict[str, Any]]:
        if query.cursor is None:
            return sa.text(query.sql), {}
        # The host's query is a subquery, so its own WHERE / JOIN / ORDER BY stay its own.
        column = f'onetomany_src."{query.cursor}"'
        sql = f"SELECT * FROM ({query.sql}) AS onetomany_src"
        params: dict[str, Any] = {}
        if query.kind in positions:
            sql += f" WHERE {column} >= :onetomany_after"
            params["onetomany_after"] = positions[query.kind]
        return sa.text(f"{sql} ORDER BY {column}"), params

    def _check_columns(self, query: Query, columns: list[str]) -> None:
        wanted = [query.column(f) for f in REQUIRED[query.kind]]
        if query.cursor is not None:
            wanted.append(query.cursor)
        missing = [c for c in wanted if c not in columns]
        if missing:
            raise option_error(
                self.settings,
                f"{query.kind}.query",
                f"the query returns no column {missing[0]!r} (it returns: {', '.join(columns)}); "
                f"name it in the SELECT or map it under {query.kind}.columns",
            )

    def _page(
        self,
        query: Query,
        keys: list[str],
        rows: Sequence[Sequence[Any]],
        positions: dict[str, Any],
    ) -> SyncPage:
        built, skipped = self._records(query, keys, rows)
        if query.cursor is not None and rows:
            last = dict(zip(keys, rows[-1], strict=True))[query.cursor]
            if last is None:
                raise SourceDataError(
                    self.settings.name,
                    [
                        SourceRow(
                            f"{query.kind} query", 0, query.cursor, "NULL in the cursor column"
                        )
                    ],
                )
            positions[query.kind] = last
        return SyncPage(
            accounts=[r for r in built if isinstance(r, Account)],
            contacts=[r for r in built if isinstance(r, Contact)],
            events=[r for r in built if isinstance(r, Event)],
            skipped=skipped,
            cursor=self._encode(positions),
        )

    def _records(
        self, query: Query, keys: list[str], rows: Sequence[Sequence[Any]]
    ) -> tuple[list[Account | Contact | Event], list[Skipped]]:
        """The rows' records and the rows skipped, named. A page of plain contacts is
        read and checked a column at a time; any other page, a row at a time."""
        if not rows:
            return [], []
        laid = layout(query, keys)
        if query.kind == "contacts":
            columns = contact_columns(laid, keys, rows)
            fast = pages.contact_columns(columns) if columns is not None else None
            if fast is not None:
                return list(fast), []
        built: list[Account | Contact | Event] = []
        skipped: list[Skipped] = []
        # Plain dicts from the row tuples: SQLAlchemy's RowMapping costs more per lookup
        # than the rest of reading a record.
        for row in (dict(zip(keys, r, strict=True)) for r in rows):
            try:
                built.append(build(query, row, self.options.zone, laid))
            except RowError as exc:
                skipped.append(describe(query, row, exc))
        return built, skipped

    def _positions(self, cursor: str | None) -> dict[str, Any]:
        if cursor is None:
            return {}
        try:
            raw = json.loads(cursor)
            return {kind: _DECODE[kept["type"]](kept["value"]) for kind, kept in raw.items()}
        except (ValueError, KeyError, TypeError, AttributeError):
            raise InputError(
                f"source {self.settings.name!r}: cursor {cursor!r} is not one this source "
                "wrote; run onetomany sync --full to start again"
            ) from None

    def _encode(self, positions: dict[str, Any]) -> str | None:
        if not positions:
            return None
        out = {}
        for kind, value in positions.items():
            kind_name = _ENCODE.get(type(value))
            if kind_name is None:
                raise ConfigError(
                    f"the cursor column holds {type(value).__name__} values; use a timestamp, "
                    "a date, a number or text",
                    file=self.settings.origin or None,
                    key=f"{self.settings.name}.{kind}.cursor",
                )
            shown = value.isoformat() if isinstance(value, date) else str(value)
            out[kind] = {"type": kind_name, "value": shown}
        return json.dumps(out, sort_keys=True)

    def _unavailable(self, query: Query, exc: SQLAlchemyError) -> InputError:
        # The driver's message is kept (it says what the database refused), without the URL.
        detail = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        return SourceUnavailableError(
            f"source {self.settings.name!r} ({self.options.shown_url}): the {query.kind} query "
            f"failed: {detail}"
        )
