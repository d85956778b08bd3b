"""Frequency caps: count the slots each recipient used in its caps' windows, and take new ones.

:func:`reserve` counts and reserves in one transaction, so no slot is spent twice by workers
running side by side: on PostgreSQL it first takes a transaction-scoped advisory lock per
(cap, recipient), in sorted order (so two workers never wait on each other in a circle); on
SQLite the store's write transaction (``BEGIN IMMEDIATE``) already excludes every other writer.
A reservation whose outbox row was dead-lettered or skipped no longer counts: only rows that
are sent, or may still be, use a slot.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from onetomany.rules.caps import Cap, Grant, Hold, Request, allocate
from onetomany.store import schema

if TYPE_CHECKING:
    from onetomany.store import Store

__all__ = ["reservations", "reserve"]

_CHUNK = 500
#: Rows whose slots no longer count: they will never be sent.
_GONE = ("dead", "skipped")


def _chunks(items: Sequence[str] | Sequence[int]) -> Iterable[list[object]]:
    for start in range(0, len(items), _CHUNK):
        yield list(items[start : start + _CHUNK])


def _lock(conn: Connection, keys: Sequence[tuple[str, str]]) -> None:
    if conn.dialect.name != "postgresql" or not keys:
        return
    names = sorted({f"{cap}\x1f{scope}" for cap, scope in keys})
    # One lock per (cap, recipient), taken in sorted order and held to the commit.
    conn.execute(
        sa.text(
            "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) "
            "FROM (SELECT k FROM unnest(CAST(:keys AS text[])) AS k ORDER BY k) AS sorted"
        ),
        {"keys": names},
    )


def _counted(
    conn: Connection, keys: Sequence[tuple[str, str]], caps: Mapping[str, Cap], now: datetime
) -> dict[tuple[str, str], list[datetime]]:
    r, o = schema.cap_reservations, schema.outbox
    wanted = set(keys)
    times: dict[tuple[str, str], list[datetime]] = {}
    scopes = sorted({scope for _, scope in keys})
    in_window = sa.or_(
        *(
            sa.and_(r.c.cap == name, r.c.at > now - caps[name].window)
            for name in sorted({cap for cap, _ in keys})
        )
    )
    for chunk in _chunks(scopes):
        query = (
            sa.select(r.c.cap, r.c.scope, r.c.at)
            .join(o, o.c.id == r.c.outbox_id)
            .where(r.c.scope.in_(chunk), in_window, o.c.status.not_in(_GONE))
        )
        for cap, scope, at in conn.execute(query):
            if (cap, scope) in wanted:
                times.setdefault((cap, scope), []).append(at)
    return times


def _held(conn: Connection, row_ids: Sequence[int]) -> dict[int, frozenset[tuple[str, str]]]:
    r = schema.cap_reservations
    held: dict[int, set[tuple[str, str]]] = {}
    for chunk in _chunks(row_ids):
        query = sa.select(r.c.outbox_id, r.c.cap, r.c.scope).where(r.c.outbox_id.in_(chunk))
        for row_id, cap, scope in conn.execute(query):
            held.setdefault(row_id, set()).add((cap, scope))
    return {row_id: frozenset(keys) for row_id, keys in held.items()}


def reserve(
    store: Store, requests: Sequence[Request], caps: Mapping[str, Cap], *, now: datetime
) -> list[Grant | Hold]:
    """Count and reserve in one transaction; one answer per request, in order.

    Requests are served in the order given (the policy puts higher priority first). A
    granted row holds a slot of each of its caps from ``now``; a held one takes none.
    """
    keys = sorted({key for request in requests for key in request.keys})
    if not keys:
        return [Grant(row_id=request.row_id, new=()) for request in requests]
    with store.write() as conn:
        _lock(conn, keys)
        counted = _counted(conn, keys, caps, now)
        held = _held(conn, [request.row_id for request in requests])
        answers = allocate(requests, caps, counted, held, now)
        new = [
            {"cap": cap, "scope": scope, "outbox_id": answer.row_id, "at": now}
            for answer in answers
            if isinstance(answer, Grant)
            for cap, scope in answer.new
        ]
        if new:
            conn.execute(sa.insert(schema.cap_reservations), new)
    return answers


def reservations(store: Store, cap: str | None = None) -> list[tuple[str, str, int, datetime]]:
    """Every reservation (cap, scope, outbox row, time), oldest first, for views and tests."""
    r = schema.cap_reservations
    query = sa.select(r.c.cap, r.c.scope, r.c.outbox_id, r.c.at).order_by(r.c.at, r.c.id)
    if cap is not None:
        query = query.where(r.c.cap == cap)
    with store.read() as conn:
        return [(c, s, i, at) for c, s, i, at in conn.execute(query)]


def queued_at(store: Store, row_ids: Sequence[int]) -> dict[int, datetime]:
    """When each outbox row was queued (a capped row's deadline counts from it)."""
    o = schema.outbox
    found: dict[int, datetime] = {}
    with store.read() as conn:
        for chunk in _chunks(row_ids):
            for row_id, created in conn.execute(
                sa.select(o.c.id, o.c.created_at).where(o.c.id.in_(chunk))
            ):
                found[row_id] = created
    return found
