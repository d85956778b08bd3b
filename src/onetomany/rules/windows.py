"""Send windows and quiet hours, on the recipient's wall clock.

A :class:`SendWindow` says when a channel kind may reach a person: local hours (``08:00-20:00``)
on some weekdays. Outside it are the quiet hours; a touch due then waits for
:func:`next_opening`. The defaults (:data:`DEFAULT_WINDOWS`): email 08:00-20:00 Monday to
Friday; SMS and WhatsApp 08:00-21:00 every day, the hours TCPA allows texts in; in-app
messages and CSM tasks at any time (nobody's phone buzzes for them).

The recipient's timezone is the contact's, else the account's ``timezone`` trait, else the
program's default (``[windows] timezone``). A stored contact always has a timezone, UTC when it
was never given, so a contact's UTC counts as unknown and the account's or program's zone is
used when there is one.

Openings are computed on the wall clock, DST-safe: the window is open at an instant when the
recipient's local time then lies in its hours on an open day. So on the day clocks jump from
02:00 to 03:00 a window opening at 02:30 opens at 03:00, and on the day clocks go back a
window opening at 01:30 opens at the first 01:30. A holiday calendar closes whole local days.

Pure: no I/O. ``[windows]`` in program.toml is read by :func:`read_windows`.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

from onetomany.errors import ConfigError
from onetomany.model import Account, ChannelKind, Contact
from onetomany.rules.calendar import Holidays, parse_dates, parse_ics

__all__ = [
    "DEFAULT_WINDOWS",
    "WEEKDAYS",
    "SendWindow",
    "WindowNeverOpens",
    "WindowSettings",
    "is_open",
    "next_opening",
    "read_windows",
    "recipient_zone",
]

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
_DAY = 1440
#: How far :func:`next_opening` looks before it says a window never opens.
HORIZON = timedelta(days=3 * 366)
#: The step at which offset changes are looked for; zones change offset at most twice a year,
#: never twice within this.
_PROBE = timedelta(hours=6)


class WindowNeverOpens(ValueError):
    """No opening within :data:`HORIZON` (a holiday calendar that closes every day)."""


def _minutes(hour: str, minute: str) -> int:
    h, m = int(hour), int(minute)
    if m > 59 or h > 24 or (h == 24 and m):
        raise ValueError(f"{hour}:{minute} is not a time of day")
    return h * 60 + m


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@attrs.frozen(kw_only=True)
class SendWindow:
    """Local hours ``[start, end)`` in minutes after midnight, on ``days`` (0 is Monday)."""

    start: int
    end: int
    days: frozenset[int] = frozenset(range(7))

    def __attrs_post_init__(self) -> None:
        if not 0 <= self.start < self.end <= _DAY:
            raise ValueError(
                f"a window opens before it closes on the same day (between 00:00 and 24:00), "
                f"not {_clock(self.start)}-{_clock(self.end)}: it would never open"
            )
        if not self.days or not self.days <= set(range(7)):
            raise ValueError("a window is open on at least one weekday: it would never open")

    @classmethod
    def parse(cls, hours: str, days: object = None) -> SendWindow:
        """From ``"08:00-20:00"`` and ``["mon", ...]`` or ``"mon-fri"`` (default: every day)."""
        match = _HOURS.match(hours)
        if match is None:
            raise ValueError(f'expected hours as "08:00-20:00", got {hours!r}')
        start = _minutes(match.group(1), match.group(2))
        end = _minutes(match.group(3), match.group(4))
        return cls(start=start, end=end, days=_parse_days(days))

    def describe(self) -> str:
        return _describe(self.start, self.end, self.days)

    def contains(self, local: datetime) -> bool:
        """Whether the wall-clock time ``local`` is inside the window (closed days aside)."""
        minute = local.hour * 60 + local.minute
        return local.weekday() in self.days and self.start <= minute < self.end


def _parse_days(days: object) -> frozenset[int]:
    if days is None:
        return frozenset(range(7))
    if isinstance(days, str):
        first, sep, last = days.lower().partition("-")
        if first in WEEKDAYS and (not sep or last in WEEKDAYS):
            a, b = WEEKDAYS.index(first), WEEKDAYS.index(last if sep else first)
            return frozenset((a + n) % 7 for n in range((b - a) % 7 + 1))
    elif isinstance(days, list) and all(isinstance(d, str) and d.lower() in WEEKDAYS for d in days):
        return frozenset(WEEKDAYS.index(d.lower()) for d in days)
    raise ValueError(f'expected weekdays as "mon-fri" or ["mon", "wed"], got {days!r}')


# Cached: the quiet-hours policy describes its window in every row's check.
@functools.lru_cache(maxsize=64)
def _describe(start: int, end: int, days: frozenset[int]) -> str:
    return f"{_clock(start)}-{_clock(end)} {_describe_days(days)}"


def _describe_days(days: frozenset[int]) -> str:
    if days == frozenset(range(7)):
        return "every day"
    ordered = sorted(days)
    if ordered == list(range(ordered[0], ordered[-1] + 1)) and len(ordered) > 2:
        return f"{WEEKDAYS[ordered[0]]}-{WEEKDAYS[ordered[-1]]}"
    return ",".join(WEEKDAYS[d] for d in ordered)


#: When each channel kind may reach a person unless ``[windows]`` says otherwise; None is
#: at any time.
DEFAULT_WINDOWS: Mapping[str, SendWindow | None] = {
    ChannelKind.EMAIL: SendWindow(start=8 * 60, end=20 * 60, days=frozenset(range(5))),
    ChannelKind.SMS: SendWindow(start=8 * 60, end=21 * 60),
    ChannelKind.WHATSAPP: SendWindow(start=8 * 60, end=21 * 60),
    ChannelKind.INAPP: None,
    ChannelKind.CSM: None,
}


def _open_at(when: datetime, window: SendWindow, zone: tzinfo, closed: frozenset[date]) -> bool:
    local = when.astimezone(zone)
    return window.contains(local) and local.date() not in closed


def is_open(
    moment: datetime, window: SendWindow, zone: tzinfo, closed: frozenset[date] = frozenset()
) -> bool:
    """Whether ``window`` is open at the instant ``moment`` on the clock of ``zone``."""
    return _open_at(moment, window, zone, closed)


def _offset(when: datetime, zone: tzinfo) -> timedelta:
    offset = when.astimezone(zone).utcoffset()
    assert offset is not None
    return offset


def _segment_end(start: datetime, zone: tzinfo, limit: datetime) -> datetime:
    """The first instant after ``start`` (before ``limit``) where the zone's offset changes."""
    offset = _offset(start, zone)
    probe = start
    while probe < limit:
        nxt = min(probe + _PROBE, limit)
        if _offset(nxt, zone) != offset:
            # Offsets change on whole seconds: bisect to the first second of the new one.
            lo, hi = math.floor(probe.timestamp()), math.ceil(nxt.timestamp())
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if _offset(datetime.fromtimestamp(mid, UTC), zone) == offset:
                    lo = mid
                else:
                    hi = mid
            return datetime.fromtimestamp(hi, UTC)
        probe = nxt
    return limit


def _first_in_segment(
    start: datetime,
    end: datetime,
    offset: timedelta,
    window: SendWindow,
    closed: frozenset[date],
) -> datetime | None:
    """The first instant in ``[start, end)`` the window is open, where the offset is fixed:
    local time is the instant plus ``offset``, so openings are plain arithmetic."""
    local = (start + offset).replace(tzinfo=None)
    last_day = (end + offset).replace(tzinfo=None).date()
    day = local.date()
    while day <= last_day:
        if day.weekday() in window.days and day not in closed:
            midnight = datetime.combine(day, datetime.min.time())
            opens = max(local, midnight + timedelta(minutes=window.start))
            if opens < midnight + timedelta(minutes=window.end):
                instant = (opens - offset).replace(tzinfo=UTC)
                return instant if instant < end else None
        day += timedelta(days=1)
    return None


def next_opening(
    moment: datetime, window: SendWindow, zone: tzinfo, closed: frozenset[date] = frozenset()
) -> datetime:
    """The first instant at or after ``moment`` at which ``window`` is open in ``zone``.

    ``moment`` itself when the window is open then. ``closed`` holds local dates on which it
    stays shut (holidays). Returned in UTC. Raises :class:`WindowNeverOpens` when nothing
    opens within :data:`HORIZON`.
    """
    if moment.tzinfo is None:
        raise ValueError(f"next_opening needs an aware moment, got {moment!r}")
    at = moment.astimezone(UTC)
    limit = at + HORIZON
    while at < limit:
        # Between two offset changes local time is the instant plus a fixed offset; each such
        # stretch is searched by arithmetic, and a change of offset starts the next one (so a
        # window whose hours fall in a skipped or repeated hour is handled like any other).
        end = _segment_end(at, zone, limit)
        found = _first_in_segment(at, end, _offset(at, zone), window, closed)
        if found is not None:
            return found
        at = end
    raise WindowNeverOpens(
        f"the window {window.describe()} does not open within {HORIZON.days} days "
        f"of {moment.isoformat()} ({len(closed)} closed day(s))"
    )


def _zone(name: object) -> ZoneInfo | None:
    if not isinstance(name, str) or not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def recipient_zone(
    contact: Contact | None, account: Account | None, default: str | None
) -> tuple[ZoneInfo, str]:
    """The recipient's zone and where it came from (``contact``, ``account``, ``program``).

    A contact's ``UTC`` is what the store holds when no timezone was given, so it yields to
    the account's ``timezone`` trait and the program's default; a trait that is not an IANA
    zone is passed over.
    """
    if contact is not None and contact.timezone != "UTC":
        zone = _zone(contact.timezone)
        if zone is not None:
            return zone, "contact"
    if account is not None:
        zone = _zone(account.traits.get("timezone"))
        if zone is not None:
            return zone, "account"
    zone = _zone(default)
    if zone is not None:
        return zone, "program"
    return ZoneInfo("UTC"), "contact"


@attrs.frozen(kw_only=True)
class WindowSettings:
    """``[windows]``: each channel kind's window, the default timezone and the holidays."""

    windows: Mapping[str, SendWindow | None] = attrs.field(factory=lambda: dict(DEFAULT_WINDOWS))
    timezone: str | None = None
    holidays: Holidays = attrs.field(factory=Holidays)

    def window(self, kind: str) -> SendWindow | None:
        return self.windows.get(kind, DEFAULT_WINDOWS.get(kind))


_KEYS = ("timezone", "holidays", *(str(k) for k in ChannelKind))


def read_windows(
    section: Mapping[str, Any] | None,
    *,
    file: str,
    read_calendar: Callable[[str], str],
) -> tuple[WindowSettings, list[ConfigError]]:
    """Read ``[windows]``; every problem is a ConfigError with file and key.

    ::

        [windows]
        timezone = "America/New_York"     # for recipients whose zone is unknown
        email = { hours = "08:00-20:00", days = "mon-fri" }
        sms = { hours = "09:00-20:00" }    # days default to every day
        inapp = "always"
        holidays = { default = ["2026-12-25"], pt-BR = "calendars/br.ics" }

    ``read_calendar`` returns the text of an ICS file named relative to the program (it may
    raise OSError). A window that never opens (``00:00-00:00``, no days) is refused.
    """
    errors: list[ConfigError] = []
    if section is None:
        return WindowSettings(), errors

    def error(key: str, reason: str) -> None:
        errors.append(ConfigError(reason, file=file, key=f"windows.{key}"))

    windows: dict[str, SendWindow | None] = dict(DEFAULT_WINDOWS)
    timezone: str | None = None
    holidays = Holidays()
    for key, value in section.items():
        if key not in _KEYS:
            error(key, f"unknown key (known: {', '.join(_KEYS)})")
        elif key == "timezone":
            if _zone(value) is None:
                error(key, f"expected an IANA timezone such as 'Europe/Berlin', got {value!r}")
            else:
                timezone = str(value)
        elif key == "holidays":
            holidays = _read_holidays(value, error, read_calendar)
        else:
            windows[key] = _read_window(value, key, error)
    return WindowSettings(windows=windows, timezone=timezone, holidays=holidays), errors


def _read_window(value: object, key: str, error: Callable[[str, str], None]) -> SendWindow | None:
    if value == "always":
        return None
    if not isinstance(value, dict) or set(value) - {"hours", "days"} or "hours" not in value:
        error(
            key,
            f'expected "always" or {{ hours = "08:00-20:00", days = "mon-fri" }}, got {value!r}',
        )
        return DEFAULT_WINDOWS.get(key)
    if not isinstance(value["hours"], str):
        error(f"{key}.hours", f'expected hours as "08:00-20:00", got {value["hours"]!r}')
        return DEFAULT_WINDOWS.get(key)
    try:
        return SendWindow.parse(value["hours"], value.get("days"))
    except ValueError as exc:
        error(key, str(exc))
        return DEFAULT_WINDOWS.get(key)


def _read_holidays(
    value: object, error: Callable[[str, str], None], read_calendar: Callable[[str], str]
) -> Holidays:
    if not isinstance(value, dict):
        error("holidays", 'expected a table of locale = ["2026-12-25", ...] or "file.ics"')
        return Holidays()
    by_locale: dict[str, frozenset[date]] = {}
    for locale, dates in value.items():
        key = f"holidays.{locale}"
        try:
            if isinstance(dates, str):
                try:
                    text = read_calendar(dates)
                except OSError as exc:
                    error(key, f"cannot read the calendar {dates!r}: {exc}")
                    continue
                by_locale[locale] = parse_ics(text)
            elif isinstance(dates, list):
                by_locale[locale] = parse_dates(dates)
            else:
                error(key, f"expected a list of ISO dates or an ICS file name, got {dates!r}")
        except ValueError as exc:
            where = f" ({dates})" if isinstance(dates, str) else ""
            error(key, f"{exc}{where}")
    return Holidays(by_locale=by_locale)
