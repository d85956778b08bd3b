"""Clocks are injected: the engine never asks the operating system what time it is itself.

The same engine runs live on :class:`SystemClock`, in tests on :class:`FrozenClock`, and over
a simulated date range on a clock the simulator moves forward.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Tells the time (always timezone-aware, UTC) and waits."""

    def now(self) -> datetime: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))


class FrozenClock:
    """A clock that only moves when told to; ``sleep`` advances it instead of waiting."""

    def __init__(self, start: datetime | None = None) -> None:
        start = start or datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
        if start.tzinfo is None:
            raise ValueError("FrozenClock needs an aware datetime, e.g. tzinfo=timezone.utc")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def sleep(self, seconds: float) -> None:
        self.advance(seconds=max(0.0, seconds))

    def advance(self, by: timedelta | None = None, /, **delta: float) -> datetime:
        """Move forward and return the new time.

        Pass a :class:`~datetime.timedelta` (``advance(timedelta(days=2))``), its keywords
        (``advance(days=2)``), or both, which add up.
        """
        self._now += (by or timedelta()) + timedelta(**delta)
        return self._now

    def set(self, when: datetime) -> None:
        if when.tzinfo is None:
            raise ValueError("FrozenClock.set needs an aware datetime")
        self._now = when.astimezone(UTC)
