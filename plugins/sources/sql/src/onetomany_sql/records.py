"""Query rows into accounts, contacts and events; a row that cannot be one is a skip.

The mapped columns fill the record's fields; every other column (but the cursor column) is a
trait or an event property, converted to plain JSON data: a datetime or date becomes its ISO
text, a Decimal a number, a UUID its text. A NULL trait removes it from the stored profile
(that is what the database says).
"""

from __future__ import annotations

import decimal
import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any, Final, NamedTuple
from zoneinfo import ZoneInfo

from onetomany.errors import InputError
from onetomany.model import Account, Contact, Event
from onetomany.plugins.sources import Skipped
from onetomany_sql.options import FIELDS, Query

Record = Account | Contact | Event
#: The text fields a NULL clears (the others it leaves out).
_CLEARED: Final = frozenset({"account_id", "email", "phone", "role"})


class RowError(Exception):
    """One row's problem, turned into a :class:`Skipped` naming the row."""


class Layout(NamedTuple):
    """Where a page's rows keep each field, and which of their columns are traits (worked out
    once per page: every row of a query result has the same columns)."""

    #: Each field of the query's kind with its column, for the columns the rows have.
    fields: tuple[tuple[str, str], ...]
    #: The other columns, but the cursor: traits or event properties.
    extra: tuple[str, ...]


def layout(query: Query, columns: Iterable[str]) -> Layout:
    columns = list(columns)
    fields = tuple(
        (field, query.column(field))
        for field in FIELDS[query.kind]
        if query.column(field) in columns
    )
    used = {column for _, column in fields} | {query.cursor}
    return Layout(fields=fields, extra=tuple(c for c in columns if c not in used))


def build(
    query: Query,
    row: Mapping[Any, Any],
    zone: ZoneInfo,
    laid: Layout | None = None,
) -> Record:
    """The record of ``row``; raises :class:`RowError` saying what is wrong with it."""
    fields, extra = _read(row, laid or layout(query, row))
    try:
        if query.kind == "accounts":
            return Account(id=_id(fields), **_texts(fields, "name"), traits=extra)
        if query.kind == "contacts":
            return Contact(**_contact_fields(fields, extra))
        return _event(fields, extra, zone)
    except InputError as exc:
        raise RowError(str(exc)) from exc


def contact_fields(row: Mapping[Any, Any], laid: Layout) -> dict[str, Any]:
    """The keyword arguments of the contact ``row`` is (unchecked: ``Contact`` checks them).
    A page of rows is read by :func:`contact_columns`, which the plugin's tests hold to
    this, row by row."""
    return _contact_fields(*_read(row, laid))


def contact_columns(
    laid: Layout, keys: Sequence[str], rows: Sequence[Sequence[Any]]
) -> dict[str, list[Any]] | None:
    """The contact fields of a page's rows (value tuples in the order of ``keys``), column by
    column, as :func:`contact_fields` reads each row (for
    :func:`onetomany.model.pages.contact_columns`); ``None`` when some row must be read on its
    own: an empty id (a skip), or a NULL in a field it then does not give."""
    if not rows:
        return None
    at = {key: n for n, key in enumerate(keys)}
    table = list(zip(*rows, strict=True))
    columns: dict[str, list[Any]] = {}
    for field, column in laid.fields:
        values = table[at[column]]
        if None in values:
            if field not in _CLEARED:
                return None
            columns[field] = [None if v is None else str(v).strip() for v in values]
        elif _TEXT.issuperset(map(type, values)):
            columns[field] = list(map(str.strip, values))
        else:
            columns[field] = [str(v).strip() for v in values]
    if not all(columns.get("id", ())):
        return None
    extra = [_plain_column(table[at[name]]) for name in laid.extra]
    if extra:
        columns["traits"] = [
            dict(zip(laid.extra, values, strict=True)) for values in zip(*extra, strict=True)
        ]
    else:
        columns["traits"] = [{} for _ in rows]
    return columns


def _plain_column(values: Sequence[Any]) -> Sequence[Any]:
    """A column's values as plain data (most columns are already: returned as they are)."""
    return values if _AS_IS.issuperset(map(type, values)) else list(map(_plain, values))


def _read(row: Mapping[Any, Any], laid: Layout) -> tuple[dict[str, Any], dict[str, Any]]:
    """The row's mapped fields, and the rest of its columns as traits or properties."""
    fields = {field: row[column] for field, column in laid.fields}
    return fields, {name: _plain(row[name]) for name in laid.extra}


def _contact_fields(fields: Mapping[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    texts = ("account_id", "name", "email", "phone", "role", "locale", "timezone")
    return {"id": _id(fields), **_texts(fields, *texts), "traits": extra}


def describe(query: Query, row: Mapping[Any, Any], error: RowError) -> Skipped:
    """A skip that names the row by its id (or its cursor value) and the query it came from."""
    key = query.column("id")
    if row.get(key) is not None:
        where = f"{key}={row[key]!r}"
    elif query.cursor is not None and row.get(query.cursor) is not None:
        where = f"{query.cursor}={_plain(row[query.cursor])!r}"
    else:
        where = json.dumps({k: _plain(v) for k, v in row.items()}, default=str)[:200]
    return Skipped(record=f"{query.kind} row {where}", reason=str(error))


def _id(fields: Mapping[str, Any]) -> str:
    value = fields.get("id")
    if value is None or not str(value).strip():
        raise RowError("the id column is empty")
    return str(value).strip()


def _texts(fields: Mapping[str, Any], *names: str) -> dict[str, Any]:
    """The given text fields; a NULL clears an optional field and is left out otherwise."""
    out: dict[str, Any] = {}
    for name in names:
        if name not in fields:
            continue
        value = fields[name]
        if value is None:
            if name in _CLEARED:
                out[name] = None
            continue
        out[name] = str(value).strip()
    return out


def _event(fields: Mapping[str, Any], properties: dict[str, Any], zone: ZoneInfo) -> Event:
    name = fields.get("name")
    if name is None or not str(name).strip():
        raise RowError("the event name column is empty")
    when = _timestamp(fields.get("occurred_at"), zone)
    subjects = {k: str(fields[k]) for k in ("account_id", "contact_id") if fields.get(k)}
    event_id = fields.get("id")
    if event_id is None:
        # A stable id from the row, so reading it again stores it once.
        content = json.dumps(
            [str(name), when.isoformat(), subjects, properties], sort_keys=True, default=str
        )
        event_id = hashlib.sha256(content.encode()).hexdigest()[:32]
    return Event(
        id=str(event_id),
        name=str(name),
        occurred_at=when,
        properties=properties,
        **subjects,
    )


def _timestamp(value: Any, zone: ZoneInfo) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise RowError(f"occurred_at {value!r} is not an ISO 8601 timestamp") from None
    elif isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if not isinstance(value, datetime):
        raise RowError(f"occurred_at {value!r} is not a timestamp")
    # A timestamp without an offset is read in the source's timezone option.
    return value if value.utcoffset() is not None else value.replace(tzinfo=zone)


#: Column values that are plain JSON data as they come (most are): returned at once.
_AS_IS: Final = frozenset({str, int, float, bool, type(None)})
_TEXT: Final = frozenset({str})


def _plain(value: Any) -> Any:
    if type(value) in _AS_IS:
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            # As a float, so the model's check refuses it by name ("not a JSON number").
            return float("nan") if value.is_nan() else float(value)
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    return value
