"""Leases on shared work: one worker at a time does a named piece of work (a program's tick),
and a worker that dies holds it only until its lease runs out.

Times are the machine's (UTC), not an engine's clock: a lease is about processes, and a
simulated clock may stand still or jump.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa

from onetomany.store import schema

if TYPE_CHECKING:
    from onetomany.store import Store


def take_lease(store: Store, name: str, holder: str, *, ttl: timedelta) -> bool:
    """Take (or renew) the lease ``name`` for ``holder`` for ``ttl``; False when another
    holder has it and it has not run out."""
    t = schema.leases
    now = datetime.now(UTC)
    with store.write() as conn:
        current = conn.execute(
            sa.select(t.c.holder, t.c.until).where(t.c.name == name).with_for_update()
        ).first()
        if current is None:
            added = conn.execute(
                store._insert(t)
                .values(name=name, holder=holder, until=now + ttl)
                .on_conflict_do_nothing(index_elements=[t.c.name])
                .returning(t.c.name)
            ).first()
            return added is not None
        if current.holder != holder and current.until > now:
            return False
        conn.execute(sa.update(t).where(t.c.name == name).values(holder=holder, until=now + ttl))
        return True


def release_lease(store: Store, name: str, holder: str) -> None:
    """Give the lease ``name`` up, if ``holder`` still has it."""
    t = schema.leases
    with store.write() as conn:
        conn.execute(sa.delete(t).where(t.c.name == name, t.c.holder == holder))
