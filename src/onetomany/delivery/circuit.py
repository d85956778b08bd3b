"""A circuit breaker per provider of a failover group.

Closed, it lets every call through and counts transient failures (and unknown outcomes: the
provider did not answer); ``failures`` of them within ``window`` open it. Open, it lets nothing
through for ``cooldown``, so a failover group sends through its next provider at once instead of
waiting for a timeout per message. Then it half-opens: one call goes through as a probe; a
success closes it, a failure opens it again for another cool-down.

The state lives in memory, per worker process: each worker finds out on its own that a
provider is down (after ``failures`` failures of its own), which costs a few failed attempts per
worker and no shared write per message. Time is the engine's clock, so a test moves through
a cool-down without waiting.
"""

from __future__ import annotations

import enum
import threading
from collections import deque
from datetime import datetime, timedelta
from typing import Any

import attrs

from onetomany.errors import ConfigError
from onetomany.model.clock import Clock

__all__ = ["Circuit", "CircuitSettings", "State"]


class State(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


def _positive(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigError(f"expected a positive number, got {value!r}", key=attribute.name)
    if attribute.name == "failures" and not isinstance(value, int):
        raise ConfigError(f"expected a whole number, got {value!r}", key=attribute.name)


@attrs.frozen(kw_only=True)
class CircuitSettings:
    """``failures`` transient failures within ``window`` seconds open the circuit for
    ``cooldown`` seconds (``circuit = { failures = 5, window = 60, cooldown = 30 }``)."""

    failures: int = attrs.field(default=5, validator=_positive)
    window: float = attrs.field(default=60.0, validator=_positive)
    cooldown: float = attrs.field(default=30.0, validator=_positive)


class Circuit:
    """One provider's breaker; safe to share between threads."""

    def __init__(self, settings: CircuitSettings, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock
        self.state = State.CLOSED
        self._failures: deque[datetime] = deque()
        self._opened_at: datetime | None = None
        self._probing = False
        self._lock = threading.Lock()

    def allows(self) -> bool:
        """Whether a call may go to the provider now; in half-open, only the probe may."""
        with self._lock:
            if self.state is State.CLOSED:
                return True
            if self.state is State.OPEN:
                if self.clock.now() < self.reopens_at():
                    return False
                self.state = State.HALF_OPEN
                self._probing = False
            if self._probing:
                return False
            self._probing = True
            return True

    def reopens_at(self) -> datetime:
        """When an open circuit lets its probe through."""
        opened = self._opened_at or self.clock.now()
        return opened + timedelta(seconds=self.settings.cooldown)

    def succeeded(self) -> None:
        with self._lock:
            self.state = State.CLOSED
            self._failures.clear()
            self._opened_at = None
            self._probing = False

    def failed(self) -> None:
        with self._lock:
            now = self.clock.now()
            if self.state is State.HALF_OPEN:
                self._open(now)
                return
            if self.state is State.OPEN:
                return  # a call that began before it opened: the cool-down stands
            horizon = now - timedelta(seconds=self.settings.window)
            self._failures.append(now)
            while self._failures and self._failures[0] <= horizon:
                self._failures.popleft()
            if len(self._failures) >= self.settings.failures:
                self._open(now)

    def _open(self, now: datetime) -> None:
        self.state = State.OPEN
        self._opened_at = now
        self._failures.clear()
        self._probing = False
