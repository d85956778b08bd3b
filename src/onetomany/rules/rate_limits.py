"""Per-channel rate limits: what ``rate = "1/s"`` means, and the token bucket arithmetic.

A rate is written ``"<count>/<period>"`` with an optional unit: ``"80/s"`` (messages),
``"1 segment/s"`` (SMS segments: a three-segment text costs three tokens), ``"600 messages/min"``.
The bucket holds at most ``count`` tokens (at least one) and refills at ``count / period`` tokens
a second, so over any span of ``T`` seconds at most ``count + T * count / period`` tokens are
spent. A message that costs more than a full bucket (a long text on ``"1 segment/s"``) is let
through once the bucket is full and leaves it in debt, so it is delayed, never refused.

Pure arithmetic: the store keeps the buckets workers share (``store/queries/rate_buckets.py``),
the delivery layer waits or defers (``delivery/ratelimit.py``).
"""

from __future__ import annotations

import re
from datetime import datetime

import attrs

from onetomany.errors import ConfigError

__all__ = ["UNITS", "Rate", "parse_rate", "settle"]

#: The units a rate may count, by the words that name them.
UNITS = {
    "message": "messages",
    "messages": "messages",
    "segment": "segments",
    "segments": "segments",
}
_PERIODS = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
}
_RATE = re.compile(
    r"\s*(?P<count>\d+(?:\.\d+)?)\s*(?P<unit>[a-z]+)?\s*/\s*(?P<period>[a-z]+)\s*",
    re.IGNORECASE,
)


@attrs.frozen(kw_only=True)
class Rate:
    """``count`` tokens per ``period`` seconds, counting ``unit`` (messages or segments)."""

    count: float
    period: float
    unit: str = "messages"
    text: str = ""

    @property
    def per_second(self) -> float:
        return self.count / self.period

    @property
    def burst(self) -> float:
        """The most tokens the bucket holds: a full period's worth, at least one."""
        return max(1.0, self.count)

    def __str__(self) -> str:
        return self.text or f"{self.count:g} {self.unit}/{self.period:g}s"


def parse_rate(value: object, *, key: str, file: str | None = None) -> Rate:
    """``value`` (``"1/s"``, ``"1 segment/s"``, ``"600 messages/min"``) as a :class:`Rate`;
    anything else is a :class:`~onetomany.errors.ConfigError` naming ``key``."""
    usage = 'expected a rate such as "1/s", "80 messages/s" or "1 segment/s"'
    if not isinstance(value, str):
        raise ConfigError(f"{usage}, got {value!r}", file=file, key=key)
    match = _RATE.fullmatch(value)
    if match is None:
        raise ConfigError(f"{usage}, got {value!r}", file=file, key=key)
    count = float(match["count"])
    unit = UNITS.get((match["unit"] or "messages").lower())
    period = _PERIODS.get(match["period"].lower())
    if unit is None:
        raise ConfigError(
            f"unknown unit {match['unit']!r} in {value!r} (units: messages, segments)",
            file=file,
            key=key,
        )
    if period is None:
        raise ConfigError(
            f"unknown period {match['period']!r} in {value!r} (periods: s, min, h)",
            file=file,
            key=key,
        )
    if count <= 0:
        raise ConfigError(f"a rate must be positive, got {value!r}", file=file, key=key)
    return Rate(count=count, period=period, unit=unit, text=value.strip())


def settle(
    tokens: float | None,
    updated: datetime | None,
    now: datetime,
    rate: Rate,
    cost: float,
) -> tuple[float, float]:
    """Take ``cost`` tokens from a bucket that held ``tokens`` at ``updated`` (None: a new,
    full bucket). Returns ``(tokens now, seconds to wait)``: a wait of 0 means the tokens were
    taken and the first value is what is left; otherwise nothing was taken and the first value
    is the refilled level, to be stored as of ``now``."""
    if tokens is None or updated is None:
        level = rate.burst
    else:
        # A worker whose clock lags another's sees no refill rather than a negative one.
        elapsed = max(0.0, (now - updated).total_seconds())
        level = min(rate.burst, tokens + elapsed * rate.per_second)
    need = min(cost, rate.burst)
    if level >= need:
        return level - cost, 0.0
    return level, (need - level) / rate.per_second
