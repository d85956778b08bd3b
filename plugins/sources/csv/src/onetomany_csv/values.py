"""Turning cell text into values: booleans, numbers, dates and timestamps.

Parsers are strict on purpose. Python's own ``int`` and ``float`` also accept ``1_000``,
``nan`` and ``inf``, which in a spreadsheet are typos rather than numbers; a value that is
not plainly what its column says is reported, never guessed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

_INTEGER: Final = re.compile(r"[+-]?\d+")
_DECIMAL: Final = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")

_TRUE: Final = frozenset({"true", "yes", "1"})
_FALSE: Final = frozenset({"false", "no", "0"})


class CellError(ValueError):
    """A cell's text is not a value of the kind its column holds; the message says why."""


def _shown(text: str, limit: int = 40) -> str:
    # Errors list every bad row at once; a runaway cell must not drown the others.
    return repr(text if len(text) <= limit else f"{text[:limit]}...")


def parse_bool(text: str) -> bool:
    """``yes``/``true``/``1`` or ``no``/``false``/``0``, in any case."""
    word = text.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise CellError(f"expected yes/no, true/false or 1/0, got {_shown(text)}")


def parse_int(text: str) -> int:
    try:
        # int() itself refuses thousands of digits, a limit against denial of service.
        if _INTEGER.fullmatch(text):
            return int(text)
    except ValueError:
        pass
    raise CellError(f"expected a whole number, got {_shown(text)}")


def parse_float(text: str) -> float:
    number = float(text) if _DECIMAL.fullmatch(text) else math.nan
    if not math.isfinite(number):  # also 1e999, which float() turns into infinity
        raise CellError(f"expected a number such as 12.5, got {_shown(text)}")
    return number


def parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise CellError(
            f"expected an ISO 8601 date such as 2024-05-01, got {_shown(text)}"
        ) from None


def parse_timestamp(text: str, zone: ZoneInfo | None) -> datetime:
    """An ISO 8601 timestamp, in UTC.

    One without an offset is read in ``zone``; without a zone it is refused, because
    guessing UTC would silently shift every event of a file written in local time.
    """
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CellError(
            f"expected an ISO 8601 timestamp such as 2024-05-01T09:30:00Z, got {_shown(text)}"
        ) from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        if zone is None:
            raise CellError(
                f"timestamp {_shown(text)} has no timezone; add an offset (Z, +02:00) "
                "or set the source's timezone option"
            )
        moment = _localised(moment, zone, text)
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # 0001-01-01 east of UTC, 9999-12-31 west of it
        raise CellError(f"timestamp {_shown(text)} is out of range in UTC") from None


def _localised(moment: datetime, zone: ZoneInfo, text: str) -> datetime:
    # A wall-clock time skipped by a daylight-saving jump does not exist; refuse it rather
    # than let zoneinfo shift it by an hour. A repeated one takes its first occurrence.
    local = moment.replace(tzinfo=zone)
    try:
        exists = local.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == moment
    except OverflowError:
        raise CellError(f"timestamp {_shown(text)} is out of range in UTC") from None
    if not exists:
        raise CellError(
            f"timestamp {_shown(text)} does not exist in {zone.key} (a daylight-saving gap)"
        )
    return local


def converter(type_name: str, zone: ZoneInfo | None) -> Callable[[str], Any]:
    """The parser for a trait declared ``type_name`` in the ``types`` option.

    Dates and timestamps come out as normalised ISO 8601 strings, not ``date`` objects: the
    store keeps traits as JSON and would hand back strings anyway, so a trait reads the same
    before and after it is stored. Timestamps are in UTC, so they also sort as strings.
    """
    if type_name == "datetime":
        return lambda text: parse_timestamp(text, zone).isoformat()
    return _PARSERS[type_name]


_PARSERS: Final[Mapping[str, Callable[[str], Any]]] = {
    "str": str,
    "int": parse_int,
    "float": parse_float,
    "bool": parse_bool,
    "date": lambda text: parse_date(text).isoformat(),
}
