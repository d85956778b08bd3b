"""Statements the store runs many times a second, below SQLAlchemy's execution layer.

A statement run through ``Connection.execute`` costs SQLAlchemy's per-call and per-row work
(a cache lookup, a dict of parameters per row, each value through its type's processor),
which on the delivery path cost more than the database's own work. A :class:`DriverStatement`
is compiled once per store, for its dialect, with positional parameters; its rows are tuples
the caller builds, applying the few bind processors that exist itself (this module says
which), and it runs with ``Connection.exec_driver_sql``: the same SQL and the same values the
DB-API driver would have received, in the same transaction.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from typing import Any

import attrs
import sqlalchemy as sa
from sqlalchemy.engine import Connection, CursorResult
from sqlalchemy.sql.compiler import SQLCompiler

from onetomany.errors import StoreError

#: A type's bind or result processor, as SQLAlchemy gives it (``None``: the value as is).
Processor = Callable[[Any], Any]


def positional(dialect: sa.Dialect) -> sa.Dialect:
    """``dialect`` itself if its driver takes positional parameters (SQLite's ``?``), else a
    copy that compiles them as ``%s`` (psycopg's ``format`` style, which the PostgreSQL
    drivers also accept), so that rows can be handed over as tuples."""
    if dialect.positional:
        return dialect
    if dialect.paramstyle not in ("pyformat", "format"):
        raise StoreError(
            f"the {dialect.name} driver's parameter style {dialect.paramstyle!r} is not "
            "supported; use SQLite or PostgreSQL through psycopg"
        )
    shaped = copy.copy(dialect)
    shaped.paramstyle = "format"
    shaped.positional = True
    return shaped


@attrs.frozen
class DriverStatement:
    """One statement compiled for one dialect: its SQL, the names of its parameters in the
    order rows give them, and the bind processors of those that have one."""

    sql: str
    params: tuple[str, ...]
    #: Bind processors by parameter name, only where the dialect has one.
    processors: dict[str, Processor]

    @classmethod
    def of(
        cls,
        stmt: sa.ClauseElement,
        dialect: sa.Dialect,
        params: Sequence[str],
        *,
        processed: Collection[str] = (),
    ) -> DriverStatement:
        """Compile ``stmt``; its parameters must be ``params`` in this order, and every one
        with a bind processor must be in ``processed`` (the caller applies those): a change
        of the statement or of a column's type that would silently skip one fails here."""
        # As for many rows: a single-row INSERT would ask for its new primary key back.
        compiled = stmt.compile(dialect=positional(dialect), for_executemany=True)
        assert isinstance(compiled, SQLCompiler)
        found = tuple(compiled.positiontup or ())
        if found != tuple(params):
            raise AssertionError(f"statement parameters {found} are not {tuple(params)}")
        processors: dict[str, Processor] = {}
        for name in params:
            process = compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                processors[name] = process
        if unhandled := set(processors) - set(processed):
            raise AssertionError(f"parameters {sorted(unhandled)} need their bind processor")
        return cls(sql=str(compiled), params=tuple(params), processors=processors)

    def processor(self, name: str) -> Processor:
        """The bind processor of parameter ``name``, or the identity where it has none."""
        return self.processors.get(name, _same)

    def run(self, conn: Connection, rows: Sequence[tuple[Any, ...]]) -> CursorResult[Any]:
        """Run with one row (a single execute) or many (``executemany``)."""
        if len(rows) == 1:
            return conn.exec_driver_sql(self.sql, rows[0])
        return conn.exec_driver_sql(self.sql, list(rows))


@attrs.frozen
class ResultShape:
    """How rows a :class:`DriverStatement` reads become the values SQLAlchemy would have
    handed back: each column named, and only the columns whose type has a result processor
    (JSON text, datetimes on SQLite) processed."""

    names: tuple[str, ...]
    processors: tuple[tuple[int, Processor], ...]

    @classmethod
    def of(cls, columns: Sequence[sa.Column[Any]], dialect: sa.Dialect) -> ResultShape:
        processors = []
        for index, column in enumerate(columns):
            process = column.type.dialect_impl(dialect).result_processor(dialect, None)
            if process is not None:
                processors.append((index, process))
        return cls(names=tuple(c.name for c in columns), processors=tuple(processors))

    def read(self, rows: Iterable[Sequence[Any]]) -> Iterator[dict[str, Any]]:
        """Each row as ``{column: value}``."""
        names, processors = self.names, self.processors
        for row in rows:
            values = list(row)
            for index, process in processors:
                values[index] = process(values[index])
            yield dict(zip(names, values, strict=True))


def _same(value: Any) -> Any:
    return value
