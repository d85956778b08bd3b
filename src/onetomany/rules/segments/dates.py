"""Dates inside segment values: which strings are dates, and whole days between instants.

Both evaluators share these rules, and the SQL compiler re-implements them with plain integer
arithmetic (no database date functions), because SQLite's and PostgreSQL's date parsers each
accept a different set of strings and PostgreSQL raises on bad input instead of yielding NULL.

A date string is, exactly (``re.fullmatch`` of :data:`ISO_DATE`):

- ``YYYY-MM-DD``, midnight UTC of that day; or
- ``YYYY-MM-DDTHH:MM:SS`` (``T`` or a space), then optional fractional seconds (ignored),
  then optional ``Z`` or ``+HH:MM`` / ``-HH:MM``; no offset means UTC.

with year >= 1, a real day of that month (leap years per the Gregorian calendar), hour <= 23,
minute and second <= 59, offset hour <= 23 and offset minute <= 59. Anything else is missing.
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime

ISO_DATE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
    r"(?:[T ]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.[0-9]+)?(?:Z|([+-])([0-9]{2}):([0-9]{2}))?)?"
)
SECONDS_PER_DAY = 86400


def days_in_month(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


def days_from_civil(year: int, month: int, day: int) -> int:
    """Days from 1970-01-01 to the given day (year >= 1), by integer arithmetic only.

    H. Hinnant's algorithm with years counted from March, so that every intermediate value
    is non-negative and SQL's truncating integer division gives the same result.
    """
    y = year - (1 if month <= 2 else 0)
    shifted_month = (month + 9) % 12  # March = 0 ... February = 11
    return (
        365 * y + y // 4 - y // 100 + y // 400 + (153 * shifted_month + 2) // 5 + day - 1 - 719468
    )


def iso_epoch(text: str) -> int | None:
    """Whole seconds since the epoch of a date string, or None if it is not one."""
    match = ISO_DATE.fullmatch(text)
    if match is None:
        return None
    year, month, day = (int(match.group(i)) for i in (1, 2, 3))
    if year < 1 or not 1 <= month <= 12 or not 1 <= day <= days_in_month(year, month):
        return None
    seconds = days_from_civil(year, month, day) * SECONDS_PER_DAY
    if match.group(4) is None:
        return seconds
    hour, minute, second = (int(match.group(i)) for i in (4, 5, 6))
    if hour > 23 or minute > 59 or second > 59:
        return None
    seconds += hour * 3600 + minute * 60 + second
    if match.group(7) is not None:
        offset_hour, offset_minute = int(match.group(8)), int(match.group(9))
        if offset_hour > 23 or offset_minute > 59:
            return None
        offset = offset_hour * 3600 + offset_minute * 60
        seconds -= offset if match.group(7) == "+" else -offset
    return seconds


def epoch(moment: datetime) -> int:
    """Whole seconds since the epoch, microseconds dropped (rounded down)."""
    return calendar.timegm(moment.astimezone(UTC).utctimetuple())


def whole_days(now_epoch: int, then_epoch: int) -> int:
    """Whole days from ``then`` to ``now``, rounded down (negative when ``then`` is later)."""
    return (now_epoch - then_epoch) // SECONDS_PER_DAY
