"""How transient delivery failures are retried: the waits, computed by tenacity.

The dispatcher does not sleep through these waits: it writes the next attempt's time on the
outbox row, so a retry survives a crash and one slow recipient never holds up a batch.
"""

from __future__ import annotations

import attrs
import tenacity

__all__ = ["RetryPolicy"]


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How transient failures are retried.

    :param max_attempts: attempts in all, the first included; then the row is dead-lettered.
    :param initial: seconds before the first retry; doubles each attempt.
    :param maximum: the longest wait between two attempts, in seconds.
    :param jitter: up to this many random seconds added, so retries do not arrive in step.
    """

    max_attempts: int = attrs.field(default=5, validator=attrs.validators.ge(1))
    initial: float = 30.0
    maximum: float = 3600.0
    jitter: float = 5.0

    def wait(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        strategy = tenacity.wait_exponential_jitter(
            multiplier=self.initial, max=self.maximum, jitter=self.jitter
        )
        state = tenacity.RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
        state.attempt_number = attempt
        return max(strategy(state), retry_after or 0.0)
