"""Recurrence rules: an RFC 5545 RRULE run on a recipient's wall clock from an anchor instant.

A cadence is written without DTSTART: the start is the anchor event, converted to the
recipient's IANA timezone. The rule is expanded in that zone's *local* time and each local
occurrence is then converted to a UTC instant, so ``BYHOUR=17`` stays 17:00 local across a
daylight-saving change. Three conventions make rules mean what people expect:

* occurrences are strictly after the anchor (the anchor's own instant is not one), and
  ``COUNT=5`` is five sends even when the anchor itself would have matched the rule;
* ``BYHOUR=17`` means 17:00:00: a minute or second finer than the finest ``BY`` time part
  given defaults to zero rather than to the anchor's (RFC 5545 would take the anchor's);
* ``UNTIL`` is read in the recipient's local time, or in UTC when it ends with ``Z``; a
  date alone includes that whole local day.

A local time that does not exist on a daylight-saving day (02:30 when clocks jump from 02:00
to 03:00) is sent when it would have been, one hour later by the new clock; an ambiguous one
(when clocks go back) is sent at its first passing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, tzinfo

import attrs
from dateutil import rrule as rr

#: Frequencies a cadence may use: a touch more often than hourly is not a cadence but spam.
FREQUENCIES = ("YEARLY", "MONTHLY", "WEEKLY", "DAILY", "HOURLY")
_UNTIL = re.compile(r"^(?P<date>\d{8})(?:T(?P<time>\d{6})(?P<utc>Z?))?$")


@attrs.frozen
class Recurrence:
    """A parsed cadence rule; :meth:`parse` is the way in."""

    text: str
    #: The rule as dateutil reads it: normalised, without UNTIL (applied per recipient).
    body: str
    #: The count of occurrences after the anchor, when the rule has COUNT.
    count: int | None
    #: UNTIL: aware (UTC) when written with ``Z``, else naive local wall-clock time.
    until: datetime | None

    @classmethod
    def parse(cls, text: str) -> Recurrence:
        """Read ``text`` (with or without the ``RRULE:`` prefix); ValueError says what is wrong."""
        body = text.strip()
        if body.upper().startswith("RRULE:"):
            body = body[6:].strip()
        if "DTSTART" in body.upper():
            raise ValueError("DTSTART comes from the anchor event; leave it out of the rule")
        if any(c in body for c in "\r\n:"):
            raise ValueError("one RRULE only, without EXDATE, RDATE or other properties")
        parts: dict[str, str] = {}
        for item in body.split(";"):
            if not item.strip():
                continue
            name, sep, value = item.partition("=")
            name, value = name.strip().upper(), value.strip().upper()
            if not sep or not name or not value:
                raise ValueError(f"{item.strip()!r} is not NAME=VALUE")
            if name in parts:
                raise ValueError(f"{name} is given twice")
            parts[name] = value
        freq = parts.get("FREQ")
        if freq is None:
            raise ValueError("FREQ is required, e.g. FREQ=DAILY")
        if freq not in FREQUENCIES:
            raise ValueError(f"FREQ={freq}: a cadence is one of {', '.join(FREQUENCIES)}")
        if "COUNT" in parts and "UNTIL" in parts:
            raise ValueError("COUNT and UNTIL together; RFC 5545 allows one or the other")
        for name in ("COUNT", "INTERVAL"):
            if name in parts and (not parts[name].isdigit() or int(parts[name]) < 1):
                raise ValueError(f"{name}={parts[name]}: expected a whole number >= 1")
        until = _read_until(parts.pop("UNTIL")) if "UNTIL" in parts else None
        if "BYHOUR" in parts:
            parts.setdefault("BYMINUTE", "0")
        if "BYHOUR" in parts or "BYMINUTE" in parts:
            parts.setdefault("BYSECOND", "0")
        normal = ";".join(f"{name}={value}" for name, value in parts.items())
        try:
            rr.rrulestr(normal, dtstart=datetime(2026, 1, 1))
        except (ValueError, TypeError, KeyError) as exc:
            raise ValueError(str(exc)) from None
        count = int(parts["COUNT"]) if "COUNT" in parts else None
        return cls(text=text, body=normal, count=count, until=until)

    def without_until(self) -> Recurrence:
        return attrs.evolve(self, until=None)

    def rule(self, anchor_at: datetime, zone: tzinfo) -> rr.rrule:
        """The dateutil rule from ``anchor_at`` in ``zone``'s local (naive) time."""
        start = anchor_at.astimezone(zone).replace(tzinfo=None, microsecond=0)
        rule = rr.rrulestr(self.body, dtstart=start)
        assert isinstance(rule, rr.rrule)
        if self.until is not None:
            until = self.until
            if until.tzinfo is not None:
                until = until.astimezone(zone).replace(tzinfo=None)
            rule = rule.replace(until=until)
        if self.count is not None:
            first = next(iter(rule), None)
            if first is not None and _instant(first, zone) <= anchor_at:
                rule = rule.replace(count=self.count + 1)  # COUNT counts sends, not the anchor
        return rule

    def occurrences(self, anchor_at: datetime, zone: tzinfo) -> Iterator[datetime]:
        """Every occurrence after ``anchor_at``, as UTC instants, in order."""
        for local in self.rule(anchor_at, zone):
            at = _instant(local, zone)
            if at > anchor_at:
                yield at


def _instant(local: datetime, zone: tzinfo) -> datetime:
    # fold=0: a skipped local time maps to the instant it would have been before the change;
    # a repeated one to its first passing.
    return local.replace(tzinfo=zone).astimezone(UTC)


def _read_until(value: str) -> datetime:
    match = _UNTIL.match(value)
    if match is None:
        raise ValueError(
            f"UNTIL={value}: expected YYYYMMDD, YYYYMMDDTHHMMSS (local) or YYYYMMDDTHHMMSSZ (UTC)"
        )
    try:
        day = datetime.strptime(match["date"], "%Y%m%d")
        if match["time"] is None:
            return day + timedelta(days=1, seconds=-1)  # the whole local day
        at = datetime.strptime(match["date"] + match["time"], "%Y%m%d%H%M%S")
    except ValueError as exc:
        raise ValueError(f"UNTIL={value}: {exc}") from None
    return at.replace(tzinfo=UTC) if match["utc"] else at


#: Where "never fires" is judged from: the rule's UNTIL must reach past this date.
REFERENCE = datetime(2026, 1, 1, tzinfo=UTC)
#: How far after its anchor a cadence must fire at least once.
HORIZON = timedelta(days=3 * 366)
# Anchors that cover every weekday, month end and leap day. They sit near the end of the
# calendar because dateutil searches a rule that matches nothing up to year 9999: from here
# that costs a few years of iteration, not eight thousand. Only weekdays, month lengths and
# leap years matter to whether a rule fires, and these years have all three kinds.
_PROBES = (
    tuple(datetime(9990, 1, 1, 10, tzinfo=UTC) + timedelta(days=d) for d in range(7))
    + tuple(
        datetime(year, month, day, 10, tzinfo=UTC)
        for year in (9992, 9993)
        for month in range(1, 13)
        for day in (1, 28)
    )
    + (datetime(9992, 2, 29, 10, tzinfo=UTC),)
)


def never_fires(recurrence: Recurrence) -> str | None:
    """Why ``recurrence`` never fires for some anchor (within :data:`HORIZON`), or None."""
    if recurrence.until is not None and recurrence.until.replace(tzinfo=UTC) < REFERENCE:
        return f"its UNTIL ({recurrence.until:%Y-%m-%d}) is already past"
    free = recurrence.without_until()

    def fires(anchor: datetime) -> bool:
        first = next(free.occurrences(anchor, UTC), None)
        return first is not None and first - anchor <= HORIZON

    failing = next((anchor for anchor in _PROBES if not fires(anchor)), None)
    if failing is not None:
        if failing is _PROBES[0] and not any(fires(anchor) for anchor in _PROBES[1:]):
            return "no date matches it (no occurrence within three years of any anchor)"
        leap = "a leap year" if failing.year % 4 == 0 else "a common year"
        return (
            f"it never fires for some anchors (e.g. one on a {failing:%A} {failing.day} "
            f"{failing:%B} of {leap}): its INTERVAL steps over every date its BY parts allow"
        )
    first = next(recurrence.occurrences(REFERENCE, UTC), None)
    if first is None:
        return "its UNTIL comes before its first occurrence"
    return None
