"""What retention may remove, and the removal: old events, finished outbox rows' payloads and
attempts, decisions, and cap reservations past their window.

What may go is decided here in SQL, by the rule :mod:`onetomany.ops.lifecycle` states; the
caller archives the rows these functions return, then removes them by id. Selecting and
removing are separate transactions on purpose: the archive is written (and synced) between
them, so a crash leaves rows archived twice, never rows lost.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from onetomany.store import schema
from onetomany.store.store import EventPosition

if TYPE_CHECKING:
    from onetomany.store import Store

__all__ = [
    "FINISHED",
    "archive_outbox",
    "delete_decisions",
    "delete_events",
    "old_decisions",
    "old_events",
    "old_finished_rows",
    "prune_cap_reservations",
]

#: Outbox statuses that never change again: their rows may be archived.
FINISHED = ("sent", "dead", "skipped")
_CHUNK = 500


def _plain(row: sa.Row[Any]) -> dict[str, Any]:
    return dict(row._mapping)


def _neighbour(e: sa.Table, column: str, later: bool) -> sa.ColumnElement[bool]:
    """An event of the same name and subject (contact or account) after (or before) this one."""
    other = e.alias(f"{column}_{'later' if later else 'earlier'}")
    order = (
        sa.tuple_(other.c.occurred_at, other.c.seq) > sa.tuple_(e.c.occurred_at, e.c.seq)
        if later
        else sa.tuple_(other.c.occurred_at, other.c.seq) < sa.tuple_(e.c.occurred_at, e.c.seq)
    )
    return sa.exists().where(other.c[column] == e.c[column], other.c.name == e.c.name, order)


def old_events(
    store: Store,
    *,
    before: Mapping[str, datetime],
    default: datetime | None,
    keep: Collection[str] = (),
    through: EventPosition,
    after: int = 0,
    limit: int,
) -> list[dict[str, Any]]:
    """Up to ``limit`` events past ``seq`` ``after`` that may be removed, oldest first.

    An event may go when it occurred before its name's cutoff (``before[name]``, else
    ``default``; None, or a name in ``keep``: never), the tick has read it (at or before
    ``through``, the event cursor), it is neither the first nor the last of its name for its
    contact nor for its account (absence and ``last()`` read the last, cadences start at the
    first), and no cadence schedule is anchored on it.
    """
    e, s = schema.events, schema.schedules
    old = [sa.and_(e.c.name == name, e.c.occurred_at < at) for name, at in before.items()]
    if default is not None:
        others = sorted({*before, *keep})
        old.append(sa.and_(e.c.name.not_in(others), e.c.occurred_at < default))
    if not old:
        return []
    read = sa.or_(
        e.c.txid < through.txid, sa.and_(e.c.txid == through.txid, e.c.seq <= through.seq)
    )
    inner = [
        sa.or_(
            e.c[column].is_(None),
            sa.and_(_neighbour(e, column, True), _neighbour(e, column, False)),
        )
        for column in ("contact_id", "account_id")
    ]
    query = (
        sa.select(e)
        .where(
            sa.or_(*old),
            read,
            e.c.seq > after,
            *inner,
            e.c.id.not_in(sa.select(s.c.anchor_id).scalar_subquery()),
        )
        .order_by(e.c.seq)
        .limit(limit)
    )
    with store.read() as conn:
        return [_plain(row) for row in conn.execute(query)]


def delete_events(store: Store, seqs: Sequence[int]) -> int:
    """Remove the events at ``seqs``; returns how many went.

    A journey's steady round looks only at accounts with something new, but a ``count()``
    over all time falls when events go: the journeys' cursors go too (in the same
    transaction), so their next round looks at every account.
    """
    cursors = schema.cursors
    forget = sa.delete(cursors).where(cursors.c.name.like("journey:%"))
    return _delete(store, schema.events, schema.events.c.seq, seqs, then=forget)


def old_finished_rows(
    store: Store, *, before: datetime, after: int = 0, limit: int
) -> list[dict[str, Any]]:
    """Up to ``limit`` (from id ``after`` on) finished outbox rows (:data:`FINISHED`) last
    changed before ``before`` and not archived yet, each with its attempts under
    ``"deliveries"``."""
    o, d = schema.outbox, schema.deliveries
    query = (
        sa.select(o)
        .where(
            o.c.status.in_(FINISHED),
            o.c.updated_at < before,
            o.c.archived_at.is_(None),
            o.c.id > after,
        )
        .order_by(o.c.id)
        .limit(limit)
    )
    with store.read() as conn:
        rows = [_plain(row) for row in conn.execute(query)]
        ids = [row["id"] for row in rows]
        attempts: dict[int, list[dict[str, Any]]] = {}
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            query_d = sa.select(d).where(d.c.outbox_id.in_(chunk)).order_by(d.c.id)
            for attempt in conn.execute(query_d):
                attempts.setdefault(attempt.outbox_id, []).append(_plain(attempt))
    for row in rows:
        row["deliveries"] = attempts.get(row["id"], [])
        row.pop("archived_at", None)
    return rows


def archive_outbox(store: Store, ids: Sequence[int], *, now: datetime) -> int:
    """Empty the payload of the outbox rows ``ids``, delete their attempts, and mark them
    archived. The rows themselves stay: each is the record that its idempotency key was
    queued, which is what keeps a touch from being queued twice."""
    o, d = schema.outbox, schema.deliveries
    done = 0
    with store.write() as conn:
        for start in range(0, len(ids), _CHUNK):
            chunk = list(ids[start : start + _CHUNK])
            conn.execute(sa.delete(d).where(d.c.outbox_id.in_(chunk)))
            done += (
                conn.execute(
                    sa.update(o)
                    .where(o.c.id.in_(chunk), o.c.archived_at.is_(None))
                    .values(payload={}, archived_at=now)
                ).rowcount
                or 0
            )
    return done


def old_decisions(
    store: Store, *, before: datetime, after: int = 0, limit: int
) -> list[dict[str, Any]]:
    """Up to ``limit`` recorded decisions made before ``before`` (from id ``after`` on),
    oldest first."""
    t = schema.decisions
    query = sa.select(t).where(t.c.at < before, t.c.id > after).order_by(t.c.id).limit(limit)
    with store.read() as conn:
        return [_plain(row) for row in conn.execute(query)]


def delete_decisions(store: Store, ids: Sequence[int]) -> int:
    """Remove the decisions ``ids``; returns how many went."""
    return _delete(store, schema.decisions, schema.decisions.c.id, ids)


def prune_cap_reservations(
    store: Store, windows: Mapping[str, datetime], *, dry_run: bool = False
) -> int:
    """Remove the reservations of each cap made before its cutoff (``windows[cap]``: now
    minus the cap's window; a slot that old counts for nothing), and every reservation of a
    cap the program no longer has. Returns how many went (or would, with ``dry_run``)."""
    r = schema.cap_reservations
    gone = sa.or_(
        *(sa.and_(r.c.cap == cap, r.c.at < at) for cap, at in windows.items()),
        r.c.cap.not_in(sorted(windows)),
    )
    with store.write() as conn:
        if dry_run:
            return int(
                conn.execute(sa.select(sa.func.count()).select_from(r).where(gone)).scalar_one()
            )
        return conn.execute(sa.delete(r).where(gone)).rowcount or 0


def _delete(
    store: Store,
    table: sa.Table,
    key: sa.Column[Any],
    ids: Collection[int],
    *,
    then: sa.Delete | None = None,
) -> int:
    """Delete the rows of ``table`` whose ``key`` is in ``ids``, and run ``then`` in the same
    transaction if any went; returns how many went."""
    wanted = sorted(ids)
    done = 0
    with store.write() as conn:
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            done += conn.execute(sa.delete(table).where(key.in_(chunk))).rowcount or 0
        if done and then is not None:
            conn.execute(then)
    return done
