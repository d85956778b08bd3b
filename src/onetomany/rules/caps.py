"""Frequency caps: at most ``max`` touches per contact (or account) in any rolling window.

::

    [caps.email_weekly]           # at most 2 emails per contact in any 7 days
    per = "contact"               # or "account": every contact of the account counts
    channel = "email"             # a channel of the program; leave it out for all channels
    max = 2
    days = 7                      # or hours = 24
    touches = ["nps", "welcome"]  # only these touches count and wait (default: all)
    drop_after_days = 3           # a capped touch still waiting this long is dropped

A touch over a cap waits for the cap's next free slot: when enough of the sends counted in the
window have aged out of it. With ``drop_after_days`` it is dropped (skipped, with the reason)
instead once it has waited that long since it was queued. When rows compete for the last
slots, higher touch ``priority`` goes first (``priority = 10`` on a touch; default 0), then the
earlier row: an overdue invoice outranks a newsletter.

What counts is a reservation the caps policy takes, in the same transaction that counts, when
it lets a row through (``store/queries/caps.py``); a reservation whose row is dead-lettered no
longer counts. This module is pure: the caps, their TOML form, the checks that refuse caps
that can never be met, and :func:`allocate`, which hands out slots.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs
from dateutil import rrule as rr

from onetomany.errors import ConfigError
from onetomany.rules.recurrence import Recurrence

__all__ = [
    "Cap",
    "Grant",
    "Hold",
    "Request",
    "allocate",
    "cadence_conflicts",
    "next_free_slot",
    "read_caps",
]

PER = ("contact", "account")
_KEYS = ("per", "channel", "max", "days", "hours", "touches", "drop_after_days")


@attrs.frozen(kw_only=True)
class Cap:
    """At most ``max`` touches per ``per`` in any ``window``, on ``channel`` (None: all)."""

    name: str
    per: str = attrs.field(validator=attrs.validators.in_(PER))
    max: int
    window: timedelta
    channel: str | None = None
    #: The touches it counts and holds; None for every touch.
    touches: frozenset[str] | None = None
    #: A held touch that has waited this long since it was queued is dropped.
    drop_after: timedelta | None = None

    def __attrs_post_init__(self) -> None:
        if self.max < 1:
            raise ValueError(f"a cap allows at least 1 touch, not {self.max}: it is never met")
        if self.window <= timedelta(0):
            raise ValueError("a cap's window is positive")
        if self.drop_after is not None and self.drop_after <= timedelta(0):
            raise ValueError("drop_after is positive")

    def covers(self, touch: str, channel: str) -> bool:
        """Whether a row of ``touch`` on ``channel`` counts towards this cap."""
        return (self.channel is None or self.channel == channel) and (
            self.touches is None or touch in self.touches
        )

    def describe(self) -> str:
        what = f"{self.channel} touches" if self.channel else "touches"
        return f"at most {self.max} {what} per {self.per} in {_span(self.window)}"


def _span(window: timedelta) -> str:
    if window % timedelta(days=1) == timedelta(0):
        days = window // timedelta(days=1)
        return f"{days} day{'s' if days != 1 else ''}"
    hours = window / timedelta(hours=1)
    return f"{hours:g} hour{'s' if hours != 1 else ''}"


def next_free_slot(times: Sequence[datetime], cap: Cap, now: datetime) -> datetime | None:
    """When a slot of ``cap`` frees, given the counted ``times`` in its window (None: free now).

    A slot frees when enough of them have aged out: with ``n`` counted and ``max`` allowed, the
    ``n - max + 1``-th oldest one must leave the window.
    """
    counted = sorted(t for t in times if t > now - cap.window)
    if len(counted) < cap.max:
        return None
    return counted[len(counted) - cap.max] + cap.window


@attrs.frozen(kw_only=True)
class Request:
    """One row asking for a slot of each of its caps, keyed by (cap name, scope id)."""

    row_id: int
    #: ``(cap name, scope)`` of every cap that covers the row; scope is a contact or account id.
    keys: tuple[tuple[str, str], ...]


@attrs.frozen(kw_only=True)
class Grant:
    """The row may go: it holds a slot of each of its caps (``new``: the slots taken now)."""

    row_id: int
    new: tuple[tuple[str, str], ...]


@attrs.frozen(kw_only=True)
class Hold:
    """The row waits: ``cap`` (and scope) is full until ``until``."""

    row_id: int
    cap: str
    scope: str
    counted: int
    until: datetime


def allocate(
    requests: Sequence[Request],
    caps: Mapping[str, Cap],
    counted: Mapping[tuple[str, str], Sequence[datetime]],
    held: Mapping[int, frozenset[tuple[str, str]]],
    now: datetime,
) -> list[Grant | Hold]:
    """Hand out slots to ``requests`` in their order (put the higher priority first).

    ``counted`` are the times already counted per key within the window (other rows');
    ``held`` the keys a row already holds a slot of (a row sent again after a crash, or
    retried, keeps its slot and takes no second one). A row goes only when every cap covering
    it has room; a row that waits takes nothing, so it never blocks a later row of another cap.
    """
    times = {key: list(values) for key, values in counted.items()}
    answers: list[Grant | Hold] = []
    for request in requests:
        mine = held.get(request.row_id, frozenset())
        full: list[Hold] = []
        for key in request.keys:
            if key in mine:
                continue
            until = next_free_slot(times.get(key, ()), caps[key[0]], now)
            if until is not None:
                counted_now = sum(1 for t in times.get(key, ()) if t > now - caps[key[0]].window)
                full.append(
                    Hold(
                        row_id=request.row_id,
                        cap=key[0],
                        scope=key[1],
                        counted=counted_now,
                        until=until,
                    )
                )
        if full:
            # It waits for the last of its caps to free a slot.
            answers.append(max(full, key=lambda h: h.until))
            continue
        new = tuple(key for key in request.keys if key not in mine)
        for key in new:
            times.setdefault(key, []).append(now)
        answers.append(Grant(row_id=request.row_id, new=new))
    return answers


# -- program.toml ------------------------------------------------------------------------------


def read_caps(
    section: Mapping[str, Any] | None,
    *,
    file: str,
    channels: Iterable[str],
    touches: Iterable[str],
) -> tuple[dict[str, Cap], list[ConfigError]]:
    """Read ``[caps]``; every problem is a ConfigError with file and key."""
    caps: dict[str, Cap] = {}
    errors: list[ConfigError] = []
    if not section:
        return caps, errors
    known_channels, known_touches = sorted(channels), sorted(touches)

    for name, body in section.items():
        path = f"caps.{name}"

        def error(key: str, reason: str, path: str = path) -> None:
            errors.append(ConfigError(reason, file=file, key=f"{path}.{key}" if key else path))

        before = len(errors)
        if not isinstance(body, dict):
            error("", 'expected a table, e.g. { per = "contact", max = 2, days = 7 }')
            continue
        for key in set(body) - set(_KEYS):
            error(key, f"unknown key (known: {', '.join(_KEYS)})")
        fields: dict[str, Any] = {"name": name}
        per = body.get("per", "contact")
        if per not in PER:
            error("per", f'expected "contact" or "account", got {per!r}')
        fields["per"] = per
        count = body.get("max")
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            error("max", f"expected a whole number >= 1 (a cap of 0 is never met), got {count!r}")
        fields["max"] = count
        fields["window"] = _read_window(body, error)
        channel = body.get("channel")
        if channel is not None and channel not in known_channels:
            error("channel", f"unknown channel {channel!r} (channels: {', '.join(known_channels)})")
        fields["channel"] = channel
        listed = body.get("touches")
        if listed is not None:
            if not isinstance(listed, list) or not all(isinstance(t, str) for t in listed):
                error("touches", f"expected a list of touch names, got {listed!r}")
            else:
                for touch in sorted(set(listed) - set(known_touches)):
                    known = ", ".join(known_touches)
                    error("touches", f"unknown touch {touch!r} (touches: {known})")
                fields["touches"] = frozenset(listed)
        drop = body.get("drop_after_days")
        if drop is not None:
            if not _number(drop) or drop <= 0:
                error("drop_after_days", f"expected a number of days > 0, got {drop!r}")
            else:
                fields["drop_after"] = timedelta(days=drop)
        if len(errors) == before:
            try:
                caps[name] = Cap(**fields)
            except (ValueError, TypeError) as exc:
                error("", str(exc))
    return caps, errors


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _read_window(body: Mapping[str, Any], error: Any) -> timedelta | None:
    given = [key for key in ("days", "hours") if key in body]
    if len(given) != 1:
        error("", "give the rolling window as days = N or hours = N (one of them)")
        return None
    value = body[given[0]]
    if not _number(value) or value <= 0:
        error(given[0], f"expected a number > 0, got {value!r}")
        return None
    return timedelta(**{given[0]: value})


# -- caps that can never be met ----------------------------------------------------------------

#: How many occurrences of a cadence are looked at for its densest stretch.
_CADENCE_SAMPLE = 400


def cadence_density(rrule_text: str, window: timedelta) -> int:
    """The most occurrences a cadence rule has within any ``window`` (from its start)."""
    recurrence = Recurrence.parse(rrule_text)
    start = datetime(2026, 1, 1)  # any start: the rule's spacing is what matters
    rule = rr.rrulestr(recurrence.body, dtstart=start)
    times: list[datetime] = []
    for when in rule:
        times.append(when)
        if len(times) >= _CADENCE_SAMPLE or when - start > timedelta(days=3 * 366):
            break
    densest, first = 0, 0
    for last, when in enumerate(times):
        while when - times[first] >= window:
            first += 1
        densest = max(densest, last - first + 1)
    return densest


def cadence_conflicts(
    caps: Mapping[str, Cap],
    cadences: Iterable[tuple[str, str, str]],
    *,
    file: str,
) -> list[ConfigError]:
    """Caps a cadence the program requires can never fit in: ``cadences`` are ``(touch,
    channel, rrule)``; a cap that covers the touch and allows fewer sends in its window than
    the cadence itself makes there is refused."""
    errors = []
    for touch, channel, text in cadences:
        for cap in caps.values():
            if not cap.covers(touch, channel):
                continue
            try:
                needed = cadence_density(text, cap.window)
            except ValueError:
                continue  # the trigger's own check reports a rule that does not parse
            if needed > cap.max:
                errors.append(
                    ConfigError(
                        f"{cap.describe()}, but touch {touch!r} alone is sent {needed} times "
                        f"in {_span(cap.window)} (rrule {text}): the cap can never be met",
                        file=file,
                        key=f"caps.{cap.name}",
                    )
                )
    return errors
