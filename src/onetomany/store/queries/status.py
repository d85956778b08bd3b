"""What an operator watches, read from the store: the outbox by channel and status, the
oldest due row, recent attempts by channel and outcome, and the last tick's record."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from onetomany.model.values import OutboxStatus
from onetomany.store import schema

if TYPE_CHECKING:
    from onetomany.store import Store

__all__ = ["attempts_since", "last_tick", "oldest_due", "outbox_counts", "record_tick"]


def outbox_counts(store: Store) -> dict[tuple[str, str], int]:
    """Outbox rows per (channel, status)."""
    t = schema.outbox
    query = sa.select(t.c.channel, t.c.status, sa.func.count()).group_by(t.c.channel, t.c.status)
    with store.read() as conn:
        return {(channel, status): int(n) for channel, status, n in conn.execute(query)}


def oldest_due(store: Store, *, now: datetime) -> dict[str, datetime]:
    """Per channel, when the oldest row due now became due: a pending row's ``available_at``,
    or a claimed row's ``lease_until`` once its lease ran out (its worker died)."""
    t = schema.outbox
    found: dict[str, datetime] = {}
    pending = (
        sa.select(t.c.channel, sa.func.min(t.c.available_at))
        .where(t.c.status == OutboxStatus.PENDING, t.c.available_at <= now)
        .group_by(t.c.channel)
    )
    abandoned = (
        sa.select(t.c.channel, sa.func.min(t.c.lease_until))
        .where(t.c.status == OutboxStatus.CLAIMED, t.c.lease_until < now)
        .group_by(t.c.channel)
    )
    with store.read() as conn:
        for query in (pending, abandoned):
            for channel, at in conn.execute(query):
                value = schema.UTCDateTime().process_result_value(at, conn.dialect)
                if value is not None and (channel not in found or value < found[channel]):
                    found[channel] = value
    return found


def attempts_since(store: Store, since: datetime) -> dict[tuple[str, str], int]:
    """Delivery attempts recorded at or after ``since``, per (channel, status)."""
    d = schema.deliveries
    query = (
        sa.select(d.c.channel, d.c.status, sa.func.count())
        .where(d.c.at >= since)
        .group_by(d.c.channel, d.c.status)
    )
    with store.read() as conn:
        return {(channel, status): int(n) for channel, status, n in conn.execute(query)}


def _tick_cursor(program: str) -> str:
    return f"tick:{program}:last"


def record_tick(store: Store, program: str, *, at: datetime, seconds: float, queued: int) -> None:
    """Keep what the last tick of ``program`` took (in the ``cursors`` table)."""
    value = json.dumps({"at": at.isoformat(), "seconds": seconds, "queued": queued})
    with store.write() as conn:
        store._set_cursor(conn, _tick_cursor(program), value, at)


def last_tick(store: Store, program: str) -> dict[str, Any] | None:
    """The record of ``program``'s last tick: ``at`` (ISO), ``seconds``, ``queued``."""
    value = store.get_cursor(_tick_cursor(program))
    return None if value is None else dict(json.loads(value))
