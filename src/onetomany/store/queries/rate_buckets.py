"""Token buckets of per-channel rate limits, shared by every worker of the store.

:func:`take` reads, refills and spends a bucket in one transaction: on PostgreSQL the bucket's
row is created if missing and then locked (``SELECT ... FOR UPDATE``), so two workers never
spend one token twice; on SQLite the store's write transaction (``BEGIN IMMEDIATE``) already
excludes every other writer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from onetomany.model.clock import Clock
from onetomany.rules.rate_limits import Rate, settle
from onetomany.store import schema

if TYPE_CHECKING:
    from onetomany.store import Store

__all__ = ["level", "take"]


def take(store: Store, name: str, rate: Rate, cost: float, *, clock: Clock) -> float:
    """Spend ``cost`` tokens of bucket ``name``; returns 0 when they were taken, else the
    seconds until they may be (nothing is taken then). The time is read once the bucket is
    locked, so the workers' grants are ordered as their clock readings are."""
    b = schema.rate_buckets
    with store.write() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(
                postgresql.insert(b)
                .values(name=name, tokens=rate.burst, updated_at=clock.now())
                .on_conflict_do_nothing(index_elements=["name"])
            )
            row = conn.execute(
                sa.select(b.c.tokens, b.c.updated_at).where(b.c.name == name).with_for_update()
            ).first()
        else:
            row = conn.execute(
                sa.select(b.c.tokens, b.c.updated_at).where(b.c.name == name)
            ).first()
        now = clock.now()
        tokens, updated = (row.tokens, row.updated_at) if row is not None else (None, None)
        left, wait = settle(tokens, updated, now, rate, cost)
        stamp = max(now, updated) if updated is not None else now
        if row is None:
            conn.execute(sa.insert(b).values(name=name, tokens=left, updated_at=stamp))
        else:
            conn.execute(sa.update(b).where(b.c.name == name).values(tokens=left, updated_at=stamp))
    return wait


def level(store: Store, name: str) -> float | None:
    """The tokens bucket ``name`` held when it was last written, or None if it has none."""
    b = schema.rate_buckets
    with store.read() as conn:
        return conn.execute(sa.select(b.c.tokens).where(b.c.name == name)).scalar_one_or_none()
