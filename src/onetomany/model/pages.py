"""Pages of contacts and accounts checked column by column, for sources that build thousands
at a time.

A sync builds one checked :class:`~onetomany.model.Contact` per record, and checking each
field of each record (text, JSON data, email, timezone) cost more than storing it. Most pages
are plain: ASCII text within its limits, flat traits of plain scalars, plain addresses, a few
distinct timezones. Such a page is checked a column at a time (one join and one test per text
column, one pass over all trait values, each distinct timezone once) and its contacts are
built without checking each again. It accepts only what ``Contact(**fields)`` accepts, and
builds the same contacts: on anything else the functions here return ``None``, and the caller
builds each record on its own, whose checks name the record and the field
(``tests/test_model_pages.py`` holds the two paths to the same results).

A page comes as records (:func:`checked_contacts`, :func:`checked_accounts`: one mapping of
fields per record, each giving its own) or, from a source that reads rows, as columns
(:func:`contact_columns`, :func:`account_columns`: every record gives the same fields), which
spares a mapping per record.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import repeat
from typing import Any, Final, TypeVar, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

from onetomany.errors import InputError
from onetomany.model.emails import plain_email
from onetomany.model.plaindata import MAX_INT
from onetomany.model.values import (
    _ACCOUNT_NAMES,
    _CONTACT_NAMES,
    Account,
    Contact,
    _checked_phone,
    _optional_str,
)

#: Text fields checked like ``Contact``'s own: at most 255 characters, no NUL.
_LIMITED: Final = ("id", "account_id", "name", "role", "locale")
#: The default of each field of a contact a record may leave out, as ``Contact`` declares
#: it (consent and traits, whose default is a new empty dict, are made per record).
_DEFAULTS: Final[Mapping[str, Any]] = {
    field.name: field.default
    for field in attrs.fields(Contact)
    if field.init and field.name != "id" and not isinstance(field.default, attrs.Factory)  # type: ignore[arg-type]
}
#: Fields ``Contact`` strips, an empty one reading as ``None``.
_STRIPPED: Final = frozenset(
    f.name for f in attrs.fields(Contact) if f.converter is cast("Any", _optional_str)
)
#: Text fields a record may give as ``None`` (which clears them).
_NULLABLE: Final = frozenset(name for name, default in _DEFAULTS.items() if default is None)
_DATA: Final = ("consent", "traits")
_SCALARS: Final = frozenset({str, int, float, bool, type(None)})
# Type tests of a whole column (``issuperset(map(type, column))``) run their loop in C.
_TEXT: Final = frozenset({str})
_TEXT_OR_NONE: Final = frozenset({str, type(None)})
_DICTS: Final = frozenset({dict})
V = TypeVar("V", Account, Contact)


def checked_contacts(records: Sequence[Mapping[str, Any]]) -> list[Contact] | None:
    """The contacts ``Contact(**record)`` builds from each record, or ``None`` when some value
    needs the record-by-record checks (which may refuse it, naming it)."""
    if not records or not all(_CONTACT_NAMES.issuperset(r) and "id" in r for r in records):
        return None
    columns = {f: [r.get(f, default) for r in records] for f, default in _DEFAULTS.items()}
    columns["id"] = [r["id"] for r in records]
    for field in _DATA:
        mappings = _copied(records, field)
        if mappings is None:
            return None
        columns[field] = mappings
    return _contacts(columns, _givens(records))


def contact_columns(columns: Mapping[str, list[Any]]) -> list[Contact] | None:
    """The contacts of a page given column by column: the n-th contact gives the n-th value
    of each column (``id`` among them), as ``Contact(**fields)`` builds it, or ``None`` when
    some value needs the record-by-record checks.

    The consent and traits dicts are taken over, not copied (a source builds them for this
    page only): pass dicts nothing else holds.
    """
    size = len(columns.get("id", ()))
    if not size or not _CONTACT_NAMES.issuperset(columns):
        return None
    if any(len(column) != size for column in columns.values()):
        raise ValueError("the columns of a page must be of the same length")
    full = {f: columns[f] if f in columns else [d] * size for f, d in _DEFAULTS.items()}
    full["id"] = columns["id"]
    for field in _DATA:
        if field not in columns:
            full[field] = [{} for _ in range(size)]
        elif not _DICTS.issuperset(map(type, columns[field])):
            return None
        else:
            full[field] = columns[field]
    return _contacts(full, [frozenset(columns)] * size)


def checked_accounts(records: Sequence[Mapping[str, Any]]) -> list[Account] | None:
    """The accounts ``Account(**record)`` builds from each record, or ``None`` when some value
    needs the record-by-record checks."""
    if not records or not all(_ACCOUNT_NAMES.issuperset(r) and "id" in r for r in records):
        return None
    traits = _copied(records, "traits")
    if traits is None:
        return None
    columns = {
        "id": [r["id"] for r in records],
        "name": [r.get("name", "") for r in records],
        "traits": traits,
    }
    return _accounts(columns, _givens(records))


def account_columns(columns: Mapping[str, list[Any]]) -> list[Account] | None:
    """The accounts of a page given column by column, as :func:`contact_columns` builds
    contacts (the traits dicts taken over, not copied)."""
    size = len(columns.get("id", ()))
    if not size or not _ACCOUNT_NAMES.issuperset(columns):
        return None
    if any(len(column) != size for column in columns.values()):
        raise ValueError("the columns of a page must be of the same length")
    traits = columns["traits"] if "traits" in columns else [{} for _ in range(size)]
    if not _DICTS.issuperset(map(type, traits)):
        return None
    full = {"id": columns["id"], "name": columns.get("name") or [""] * size, "traits": traits}
    return _accounts(full, [frozenset(columns)] * size)


def _contacts(columns: dict[str, list[Any]], givens: list[frozenset[str]]) -> list[Contact] | None:
    """Contacts of every field's column, each giving its ``givens``; ``None`` unless plain."""
    for field in _STRIPPED:
        column = columns[field]
        if not _TEXT_OR_NONE.issuperset(map(type, column)):
            return None
        columns[field] = [v.strip() or None if v is not None else None for v in column]
    ids = columns["id"]
    if not (_TEXT.issuperset(map(type, ids)) and all(map(str.strip, ids))):
        return None
    for field in _LIMITED:
        if not _plain_texts(columns[field], nullable=field in _NULLABLE, limit=255):
            return None
    if not _plain_texts(columns["timezone"], nullable=False, limit=None):
        return None
    if not all(_zone(name) for name in set(columns["timezone"])):
        return None
    emails = [e for e in columns["email"] if e is not None]
    if not all(map(plain_email, emails)):
        return None
    if not all(_flat_plain(columns[field]) for field in _DATA):
        return None
    try:
        columns["phone"] = [
            _checked_phone(i, p) if p is not None else None
            for i, p in zip(ids, columns["phone"], strict=True)
        ]
    except InputError:
        return None
    return _built(Contact, columns, givens)


def _accounts(columns: dict[str, list[Any]], givens: list[frozenset[str]]) -> list[Account] | None:
    ids, names = columns["id"], columns["name"]
    if not (_TEXT.issuperset(map(type, ids)) and all(map(str.strip, ids))):
        return None
    if not (
        _plain_texts(ids, nullable=False, limit=255)
        and _plain_texts(names, nullable=False, limit=255)
        and _flat_plain(columns["traits"])
    ):
        return None
    return _built(Account, columns, givens)


def _copied(records: Sequence[Mapping[str, Any]], field: str) -> list[dict[str, Any]] | None:
    """Each record's ``field`` (a copy, as the value classes make; ``{}`` when not given),
    or ``None`` unless all are dicts."""
    if not all(type(r[field]) is dict for r in records if field in r):
        return None
    return [dict(r[field]) if field in r else {} for r in records]


def _givens(records: Sequence[Mapping[str, Any]]) -> list[frozenset[str]]:
    """Each record's given fields: records of a page mostly give the same ones, which share
    one frozenset (every object a page keeps alive costs the garbage collector)."""
    shared: dict[frozenset[str], frozenset[str]] = {}
    return [shared.setdefault(given, given) for given in map(frozenset, records)]


def _setters(kind: type[Any]) -> dict[str, Callable[[Any, Any], None]]:
    """Each slot's own setter (what ``object.__setattr__`` ends in, minus the look-up): the
    value classes are frozen and slotted, and a page sets thousands of slots."""
    return {name: kind.__dict__[name].__set__ for name in kind.__slots__ if name != "__weakref__"}


_SETTERS: Final = {Contact: _setters(Contact), Account: _setters(Account)}
#: Runs an iterator of slot settings to its end, without keeping what they return.
_drain: Final[Callable[[Iterable[Any]], None]] = deque(maxlen=0).extend


def _built(
    kind: type[V], columns: Mapping[str, list[Any]], givens: list[frozenset[str]]
) -> list[V]:
    """The values of ``kind`` holding the checked ``columns``: set a column at a time, the
    loop over records running in C (``map``), not once per record and field in Python."""
    values: list[V] = list(map(object.__new__, repeat(kind, len(givens))))
    setters = _SETTERS[kind]
    for field, column in columns.items():
        _drain(map(setters[field], values, column))
    _drain(map(setters["given"], values, givens))
    return values


def _plain_texts(column: list[Any], *, nullable: bool, limit: int | None) -> bool:
    """Whether every value is text (or ``None`` where allowed) of ASCII without a NUL (so no
    lone surrogate either), within ``limit``."""
    texts = [v for v in column if v is not None] if nullable else column
    if not _TEXT.issuperset(map(type, texts)):
        return False
    joined = "".join(texts)
    if not joined.isascii() or "\x00" in joined:
        return False
    return limit is None or max(map(len, texts), default=0) <= limit


def _flat_plain(mappings: Iterable[dict[Any, Any]]) -> bool:
    """Whether every mapping is one level of ASCII text keys and plain scalars (as
    ``plaindata.json_problem``'s fast path asks, for a whole column at once)."""
    keys = [k for m in mappings for k in m]
    values = [v for m in mappings for v in m.values()]
    if not _TEXT.issuperset(map(type, keys)):
        return False
    if not _SCALARS.issuperset(map(type, values)):
        return False
    texts = [*keys, *(v for v in values if type(v) is str)]
    joined = "".join(texts)
    if not joined.isascii() or "\x00" in joined:
        return False
    ints = [v for v in values if type(v) is int]
    if ints and not (min(ints) >= -MAX_INT - 1 and max(ints) <= MAX_INT):
        return False
    return all(math.isfinite(v) for v in values if type(v) is float)


def _zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True
