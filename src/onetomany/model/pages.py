"""Pages of contacts and accounts checked column by column, for sources that build thousands
at a time.

A sync builds one checked :class:`~onetomany.model.Contact` per record, and checking each
field of each record (text, JSON data, email, timezone) cost more than storing it. Most pages
are plain: ASCII text within its limits, flat traits of plain scalars, plain addresses, a few
distinct timezones. :func:`checked_contacts` checks such a page a column at a time (one join
and one test per text column, one pass over all trait values, each distinct timezone once)
and builds the contacts without checking each again (:func:`checked_accounts` does the same
for accounts). It accepts only what ``Contact(**fields)``
accepts, and builds the same contacts: on anything else it returns ``None``, and the caller
builds each record on its own, whose checks name the record and the field
(``tests/test_model_pages.py`` holds the two paths to the same results).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from onetomany.errors import InputError
from onetomany.model.emails import plain_email
from onetomany.model.plaindata import MAX_INT
from onetomany.model.values import (
    _ACCOUNT_NAMES,
    _CONTACT_NAMES,
    Account,
    Contact,
    _checked_phone,
)

#: Text fields checked like ``Contact``'s own: at most 255 characters, no NUL.
_LIMITED: Final = ("id", "account_id", "name", "role", "locale")
#: Fields ``Contact`` strips, an empty one reading as ``None``.
_STRIPPED: Final = frozenset({"email", "phone", "role"})
_NULLABLE: Final = frozenset({"account_id", "email", "phone", "role"})
_DEFAULTS: Final[Mapping[str, Any]] = {
    "account_id": None,
    "name": "",
    "email": None,
    "phone": None,
    "role": None,
    "locale": "en",
    "timezone": "UTC",
}
_SCALARS: Final = frozenset({str, int, float, bool, type(None)})
V = TypeVar("V", Account, Contact)


def checked_contacts(records: Sequence[Mapping[str, Any]]) -> list[Contact] | None:
    """The contacts ``Contact(**record)`` builds from each record, or ``None`` when some value
    needs the record-by-record checks (which may refuse it, naming it)."""
    if not records or not all(_CONTACT_NAMES.issuperset(r) and "id" in r for r in records):
        return None
    columns: dict[str, list[Any]] = {}
    for field, default in _DEFAULTS.items():
        column = [r.get(field, default) for r in records]
        if field in _STRIPPED:
            if not all(type(v) is str or v is None for v in column):
                return None
            column = [v.strip() or None if v is not None else None for v in column]
        columns[field] = column
    columns["id"] = [r["id"] for r in records]
    if not all(type(i) is str and i.strip() for i in columns["id"]):
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
    for field in ("consent", "traits"):
        mappings = _mappings(records, field)
        if mappings is None:
            return None
        columns[field] = mappings
    try:
        columns["phone"] = [
            _checked_phone(i, p) if p is not None else None
            for i, p in zip(columns["id"], columns["phone"], strict=True)
        ]
    except InputError:
        return None
    return [_built(Contact, given, n, columns) for n, given in enumerate(_givens(records))]


def checked_accounts(records: Sequence[Mapping[str, Any]]) -> list[Account] | None:
    """The accounts ``Account(**record)`` builds from each record, or ``None`` when some value
    needs the record-by-record checks."""
    if not records or not all(_ACCOUNT_NAMES.issuperset(r) and "id" in r for r in records):
        return None
    ids = [r["id"] for r in records]
    names = [r.get("name", "") for r in records]
    if not all(type(i) is str and i.strip() for i in ids):
        return None
    if not (
        _plain_texts(ids, nullable=False, limit=255)
        and _plain_texts(names, nullable=False, limit=255)
    ):
        return None
    traits = _mappings(records, "traits")
    if traits is None:
        return None
    columns = {"id": ids, "name": names, "traits": traits}
    return [_built(Account, given, n, columns) for n, given in enumerate(_givens(records))]


def _mappings(records: Sequence[Mapping[str, Any]], field: str) -> list[dict[str, Any]] | None:
    """Each record's ``field`` (a copy, as the value classes make; ``{}`` when not given),
    or ``None`` unless all are flat plain data."""
    if not all(type(r[field]) is dict for r in records if field in r):
        return None
    mappings = [dict(r[field]) if field in r else {} for r in records]
    return mappings if _flat_plain(mappings) else None


def _givens(records: Sequence[Mapping[str, Any]]) -> list[frozenset[str]]:
    """Each record's given fields: records of a page mostly give the same ones, which share
    one frozenset (every object a page keeps alive costs the garbage collector)."""
    shared: dict[frozenset[str], frozenset[str]] = {}
    return [shared.setdefault(given, given) for given in map(frozenset, records)]


def _built(kind: type[V], given: frozenset[str], n: int, columns: Mapping[str, list[Any]]) -> V:
    value = kind.__new__(kind)
    for field, column in columns.items():
        object.__setattr__(value, field, column[n])
    object.__setattr__(value, "given", given)
    return value


def _plain_texts(column: list[Any], *, nullable: bool, limit: int | None) -> bool:
    """Whether every value is text (or ``None`` where allowed) of ASCII without a NUL (so no
    lone surrogate either), within ``limit``."""
    texts = [v for v in column if v is not None] if nullable else column
    if not all(type(v) is str for v in texts):
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
    if not all(type(k) is str for k in keys):
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
