"""How transient delivery failures are retried: the waits, computed by tenacity.

The dispatcher does not sleep through these waits: it writes the next attempt's time on the
outbox row, so a retry survives a crash and one slow recipient never holds up a batch.
"""

from __future__ import annotations

from typing import Any

import attrs
import tenacity

from onetomany.errors import ConfigError

__all__ = ["MAX_ATTEMPTS", "RetryPolicy"]

#: The most attempts a policy may allow: enough for days of hourly retries, few enough that
#: a row failing forever is dead-lettered rather than retried for ever.
MAX_ATTEMPTS = 100


def _check(policy: RetryPolicy, attribute: attrs.Attribute[Any], value: Any) -> None:
    name = attribute.name
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise ConfigError(f"expected a number, got {value!r}", key=name)
    if name == "max_attempts" and not (isinstance(value, int) and 1 <= value <= MAX_ATTEMPTS):
        raise ConfigError(
            f"expected a whole number from 1 to {MAX_ATTEMPTS}, got {value!r}", key=name
        )
    if name in ("initial", "maximum") and not 0 < value < float("inf"):
        raise ConfigError(
            f"expected a positive number of seconds (a retry must wait), got {value!r}", key=name
        )
    if name == "jitter" and not 0 <= value < float("inf"):
        raise ConfigError(f"expected a number of seconds >= 0, got {value!r}", key=name)


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How transient failures are retried.

    :param max_attempts: attempts in all, the first included (1 to :data:`MAX_ATTEMPTS`); then
        the row is dead-lettered.
    :param initial: seconds before the first retry (positive); doubles each attempt.
    :param maximum: the longest wait between two attempts, in seconds (at least ``initial``).
    :param jitter: up to this many random seconds added, so retries do not arrive in step.

    A bad value raises :class:`~onetomany.errors.ConfigError` whose ``key`` names the field.
    Because every wait is positive, a retried row is never due again within the
    :meth:`~onetomany.delivery.dispatcher.Dispatcher.dispatch` call that failed it.
    """

    max_attempts: int = attrs.field(default=5, validator=_check)
    initial: float = attrs.field(default=30.0, validator=_check)
    maximum: float = attrs.field(default=3600.0, validator=_check)
    jitter: float = attrs.field(default=5.0, validator=_check)

    def __attrs_post_init__(self) -> None:
        if self.maximum < self.initial:
            raise ConfigError(
                f"must be at least initial ({self.initial!r}), got {self.maximum!r}", key="maximum"
            )

    def wait(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        strategy = tenacity.wait_exponential_jitter(
            multiplier=self.initial, max=self.maximum, jitter=self.jitter
        )
        state = tenacity.RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
        state.attempt_number = attempt
        return max(strategy(state), retry_after or 0.0)
