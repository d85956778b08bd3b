"""Per-channel rate limits at send time: take a token before each message, wait a little or
defer the row.

The buckets are shared by every worker of a PostgreSQL store (one row per bucket, locked while
it is spent: ``store/queries/rate_buckets.py``) and kept in memory on SQLite, where one worker
process dispatches. Before each message the limiter takes its cost (one token, or its SMS
segments for a ``segments`` rate); when none is left it sleeps on the engine's clock until one
is, as long as the waits of one batch stay within ``max_wait`` seconds, so a batch's lease is
renewed in time. Past that, the message and the rest of its batch are deferred
(:class:`~onetomany.errors.DeliveryDeferred`): back to pending until a token is due, without
counting an attempt. A row is delayed by a limit, never dropped.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from onetomany.delivery.sms import count_segments
from onetomany.errors import DeliveryDeferred
from onetomany.model import ChannelKind, Message
from onetomany.model.clock import Clock
from onetomany.rules.rate_limits import Rate, settle
from onetomany.store.queries import rate_buckets

if TYPE_CHECKING:
    from onetomany.store import Store

__all__ = ["DEFAULT_MAX_WAIT", "Buckets", "LocalBuckets", "RateLimiter", "StoreBuckets"]

#: The longest a batch waits for tokens in all before its remaining rows are deferred; well
#: under half the dispatcher's lease, which is renewed between batches.
DEFAULT_MAX_WAIT = 10.0


class Buckets(Protocol):
    """Where token buckets live."""

    def take(self, name: str, rate: Rate, cost: float, *, clock: Clock) -> float:
        """Spend ``cost`` tokens at ``clock``'s time; 0 when taken, else the seconds until
        they may be."""
        ...


class LocalBuckets:
    """Buckets in this process's memory: one worker's limit (SQLite, tests)."""

    def __init__(self) -> None:
        self._levels: dict[str, tuple[float, datetime]] = {}
        self._lock = threading.Lock()

    def take(self, name: str, rate: Rate, cost: float, *, clock: Clock) -> float:
        with self._lock:
            now = clock.now()
            tokens, updated = self._levels.get(name, (None, None))
            left, wait = settle(tokens, updated, now, rate, cost)
            self._levels[name] = (left, max(now, updated) if updated is not None else now)
            return wait


class StoreBuckets:
    """Buckets in the store, shared by every worker that uses it (PostgreSQL)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def take(self, name: str, rate: Rate, cost: float, *, clock: Clock) -> float:
        return rate_buckets.take(self.store, name, rate, cost, clock=clock)


def buckets_for(store: Store | None) -> Buckets:
    """Shared buckets on PostgreSQL, where several workers dispatch; in memory otherwise."""
    if store is not None and store.dialect == "postgresql":
        return StoreBuckets(store)
    return LocalBuckets()


class RateLimiter:
    """One channel's limit: ``rate`` over bucket ``name`` in ``buckets``."""

    def __init__(
        self,
        name: str,
        rate: Rate,
        *,
        buckets: Buckets,
        clock: Clock,
        max_wait: float = DEFAULT_MAX_WAIT,
    ) -> None:
        self.name = name
        self.rate = rate
        self.buckets = buckets
        self.clock = clock
        self.max_wait = max_wait

    def cost(self, message: Message) -> float:
        """What ``message`` spends: one token, or its segments for an SMS on a segment rate."""
        if self.rate.unit == "segments" and message.kind is ChannelKind.SMS:
            return float(count_segments(message.text).segments)
        return 1.0

    def deadline(self) -> datetime:
        """How long a batch starting now may wait for tokens."""
        return self.clock.now() + timedelta(seconds=self.max_wait)

    def acquire(self, message: Message, deadline: datetime) -> None:
        """Take ``message``'s tokens, sleeping on the clock while that ends by ``deadline``;
        raises :class:`~onetomany.errors.DeliveryDeferred` when it would not."""
        cost = self.cost(message)
        while True:
            wait = self.buckets.take(self.name, self.rate, cost, clock=self.clock)
            if wait <= 0:
                return
            due = self.clock.now() + timedelta(seconds=wait)
            if due > deadline:
                raise DeliveryDeferred(
                    f"rate limit {self.rate} of {self.name!r}: no token before {due.isoformat()}",
                    until=due,
                )
            self.clock.sleep(wait)
