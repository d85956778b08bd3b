"""Calendar days: holidays that close send windows, and days a team reserves for one segment.

Both are sets of local dates, read in the recipient's timezone.

* A **holiday calendar** closes whole days for every channel with a send window. It is given
  per locale, as a list of ISO dates or as an ICS file (RFC 5545: each ``VEVENT``'s
  ``DTSTART``, its ``DTEND`` for a run of days, its ``RRULE`` for a yearly holiday). A contact
  gets the calendar of its locale (``pt-BR``, else ``pt``), else the ``default`` one.
* A **reserved run of days** (:class:`Reservation`) belongs to one segment: on those days its
  members receive only the touches the reservation names (a launch, a webinar), and every other
  touch waits for the day after.

Everything here is pure: the program loader reads the files and hands their text in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta

import attrs
from dateutil import rrule as rr

from onetomany.errors import ConfigError

__all__ = [
    "Holidays",
    "Reservation",
    "parse_dates",
    "parse_ics",
    "read_reserved",
]

#: How far a recurring ICS holiday is expanded past its first date.
ICS_YEARS = 60
#: The most days one ICS file may close (a daily RRULE without an end would close them all).
ICS_MAX_DAYS = 10_000
_ICS_DATE = re.compile(r"^(\d{8})(?:T\d{6}Z?)?$")


def parse_dates(values: Iterable[object]) -> frozenset[date]:
    """ISO dates (``"2026-12-25"``); ValueError names the first one that does not parse."""
    days = set()
    for value in values:
        if not isinstance(value, (str, date)) or isinstance(value, datetime):
            raise ValueError(f'expected an ISO date such as "2026-12-25", got {value!r}')
        try:
            days.add(value if isinstance(value, date) else date.fromisoformat(value))
        except ValueError:
            raise ValueError(f'expected an ISO date such as "2026-12-25", got {value!r}') from None
    return frozenset(days)


def _unfold(text: str) -> list[str]:
    # RFC 5545 3.1: a line starting with a space or tab continues the previous one.
    lines: list[str] = []
    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if raw[:1] in (" ", "\t") and lines:
            lines[-1] += raw[1:]
        elif raw.strip():
            lines.append(raw.rstrip())
    return lines


def _ics_date(value: str, line: int) -> date:
    match = _ICS_DATE.match(value.strip())
    if match is None:
        raise ValueError(f"line {line}: {value!r} is not an ICS date (YYYYMMDD)")
    try:
        return datetime.strptime(match.group(1), "%Y%m%d").date()
    except ValueError:
        raise ValueError(f"line {line}: {value!r} is not a calendar date") from None


def parse_ics(text: str) -> frozenset[date]:
    """The days an ICS calendar's events cover; ValueError says which line is wrong.

    Each ``VEVENT`` closes its ``DTSTART`` day, through the day before its ``DTEND`` (an
    all-day event's end is exclusive), and, with an ``RRULE``, every recurrence of that run
    for :data:`ICS_YEARS` years. Times of day are ignored: a holiday closes the whole day.
    """
    days: set[date] = set()
    event: dict[str, tuple[str, int]] | None = None
    for number, line in enumerate(_unfold(text), start=1):
        name, sep, value = line.partition(":")
        if not sep:
            raise ValueError(f"line {number}: {line!r} is not NAME:VALUE")
        prop = name.split(";", 1)[0].upper()
        if prop == "BEGIN" and value.upper() == "VEVENT":
            event = {}
        elif prop == "END" and value.upper() == "VEVENT":
            if event is None:
                raise ValueError(f"line {number}: END:VEVENT without BEGIN:VEVENT")
            days |= _event_days(event, number)
            event = None
        elif event is not None and prop in ("DTSTART", "DTEND", "RRULE"):
            event[prop] = (value, number)
        if len(days) > ICS_MAX_DAYS:
            raise ValueError(f"line {number}: the calendar closes more than {ICS_MAX_DAYS} days")
    if event is not None:
        raise ValueError("the calendar ends inside a VEVENT (no END:VEVENT)")
    return frozenset(days)


def _event_days(event: Mapping[str, tuple[str, int]], end_line: int) -> set[date]:
    if "DTSTART" not in event:
        raise ValueError(f"line {end_line}: a VEVENT without DTSTART")
    first = _ics_date(*event["DTSTART"])
    last = first
    if "DTEND" in event:
        end = _ics_date(*event["DTEND"])
        last = max(first, end - timedelta(days=1))
    length = (last - first).days
    starts = [first]
    if "RRULE" in event:
        text, line = event["RRULE"]
        try:
            rule = rr.rrulestr(text, dtstart=datetime.combine(first, datetime.min.time()))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"line {line}: RRULE {text!r} does not parse: {exc}") from None
        horizon = datetime.combine(first.replace(year=first.year + ICS_YEARS), datetime.min.time())
        starts = []
        for when in rule:
            if when >= horizon or len(starts) > ICS_MAX_DAYS:
                break
            starts.append(when.date())
    return {start + timedelta(days=n) for start in starts for n in range(length + 1)}


@attrs.frozen(kw_only=True)
class Holidays:
    """Closed days per locale; ``default`` for a locale with no calendar of its own."""

    by_locale: Mapping[str, frozenset[date]] = attrs.field(factory=dict)

    def closed(self, locale: str | None) -> frozenset[date]:
        """The closed days of ``locale``: its own calendar, its language's, else the default."""
        if locale:
            for key in (locale, locale.split("-", 1)[0]):
                if key in self.by_locale:
                    return self.by_locale[key]
        return self.by_locale.get("default", frozenset())


@attrs.frozen(kw_only=True)
class Reservation:
    """Days reserved for ``segment``: its members get only ``touches`` on them.

    ``days`` are local dates in each member's timezone; a touch not in ``touches`` that would
    reach a member on one of them waits until the first local day after the run.
    """

    name: str
    segment: str
    days: frozenset[date]
    touches: frozenset[str] = frozenset()

    def __attrs_post_init__(self) -> None:
        if not self.days:
            raise ValueError("a reservation reserves at least one day")

    def holds(self, touch: str, day: date) -> bool:
        """Whether ``touch`` must wait on the local ``day``."""
        return day in self.days and touch not in self.touches

    def first_free_day(self, day: date) -> date:
        """The first day on or after ``day`` that this reservation leaves free."""
        while day in self.days:
            day += timedelta(days=1)
        return day


def read_reserved(
    section: Mapping[str, object] | None,
    *,
    file: str,
    segments: Iterable[str],
    touches: Iterable[str],
) -> tuple[tuple[Reservation, ...], list[ConfigError]]:
    """Read ``[reserved]``; every problem is a ConfigError with file and key.

    ::

        [reserved.launch_week]
        segment = "paying"                        # whose days these are
        days = ["2026-10-14", "2026-10-15"]       # local dates
        touches = ["launch_webinar"]              # the only touches its members get then
    """
    found: list[Reservation] = []
    errors: list[ConfigError] = []
    known_segments, known_touches = sorted(segments), sorted(touches)
    for name, body in (section or {}).items():
        path = f"reserved.{name}"
        before = len(errors)

        def error(key: str, reason: str, path: str = path) -> None:
            errors.append(ConfigError(reason, file=file, key=f"{path}.{key}" if key else path))

        if not isinstance(body, dict):
            error("", 'expected a table: { segment = "...", days = ["2026-10-14"], touches = [] }')
            continue
        for key in sorted(set(body) - {"segment", "days", "touches"}):
            error(key, "unknown key (known: segment, days, touches)")
        segment = body.get("segment")
        if segment not in known_segments:
            error("segment", f"unknown segment {segment!r} (segments: {', '.join(known_segments)})")
        days: frozenset[date] = frozenset()
        listed = body.get("days")
        if not isinstance(listed, list) or not listed:
            error("days", f'expected a list of ISO dates, e.g. ["2026-10-14"], got {listed!r}')
        else:
            try:
                days = parse_dates(listed)
            except ValueError as exc:
                error("days", str(exc))
        allowed = body.get("touches", [])
        if not isinstance(allowed, list) or not all(isinstance(t, str) for t in allowed):
            error("touches", f"expected a list of touch names, got {allowed!r}")
            allowed = []
        for touch in sorted(set(allowed) - set(known_touches)):
            error("touches", f"unknown touch {touch!r} (touches: {', '.join(known_touches)})")
        if len(errors) == before:
            found.append(
                Reservation(name=name, segment=str(segment), days=days, touches=frozenset(allowed))
            )
    return tuple(found), errors
