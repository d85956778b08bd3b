"""What an absence trigger re-reads on a steady tick: only the subjects whose absence could
have begun or changed since its last round.

A subject (account or contact) is absent from ``event`` when its latest one is at least
``days`` old. Between two rounds that can only change for a subject whose latest event
crossed the threshold in between (found through ``ix_events_time``), who has an
``event`` stored since (the log is read by position, as :meth:`Store.events_after` does), or
whose profile changed (``updated_at``, which a segment on traits or an audience reads).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa

from onetomany.store import schema
from onetomany.store.store import EventPosition

if TYPE_CHECKING:
    from onetomany.store import Store

#: Ids per IN list: under SQLite's bound-parameter limit.
_CHUNK = 500


def log_position(store: Store) -> EventPosition:
    """The position of the last event a reader of the log may rely on now: on PostgreSQL,
    below the oldest transaction still running, so that whatever commits later sorts after
    it (the rule :meth:`Store.events_after` reads by)."""
    t = schema.events
    query = sa.select(t.c.txid, t.c.seq).limit(1)
    if store.dialect == "postgresql":
        oldest_running = sa.text("pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
        query = query.where(t.c.txid < oldest_running).order_by(t.c.txid.desc(), t.c.seq.desc())
    else:
        query = query.order_by(t.c.seq.desc())
    with store.read() as conn:
        row = conn.execute(query).first()
    return EventPosition(row.txid, row.seq) if row is not None else EventPosition(0, 0)


def stored_since(store: Store, position: EventPosition) -> sa.ColumnElement[bool]:
    """The events stored after ``position``, by the order :meth:`Store.events_after` reads:
    (txid, seq) on PostgreSQL, seq on SQLite."""
    e = schema.events
    if store.dialect == "postgresql":
        return sa.tuple_(e.c.txid, e.c.seq) > sa.tuple_(
            sa.literal(position.txid), sa.literal(position.seq)
        )
    return e.c.seq > position.seq


def changed_subjects(
    store: Store,
    *,
    event: str,
    by: str,
    crossed_after: datetime,
    crossed_until: datetime,
    stored_after: EventPosition,
    changed_since: datetime,
) -> set[str]:
    """The accounts (``by="account"``) or contacts whose absence from ``event`` may differ
    from the last round's: an ``event`` that occurred in ``(crossed_after, crossed_until]``,
    an ``event`` stored after ``stored_after``, or a profile saved at ``changed_since`` or
    later (for accounts: the account or one of its contacts; for contacts: the contact or its
    account)."""
    e, a, c = schema.events, schema.accounts, schema.contacts
    owner = e.c.account_id if by == "account" else e.c.contact_id
    crossed = sa.select(owner).where(
        e.c.name == event, e.c.occurred_at > crossed_after, e.c.occurred_at <= crossed_until
    )
    # Every event stored since, by position alone, its name checked here: asked for the
    # name too, SQLite may walk every event of that name in an index led by it instead.
    stored = sa.select(e.c.name, owner).where(stored_since(store, stored_after))
    if by == "account":
        profiles = [
            sa.select(a.c.id).where(a.c.updated_at >= changed_since),
            sa.select(c.c.account_id).where(c.c.updated_at >= changed_since),
        ]
    else:
        changed_accounts = sa.select(a.c.id).where(a.c.updated_at >= changed_since)
        profiles = [
            sa.select(c.c.id).where(c.c.updated_at >= changed_since),
            sa.select(c.c.id).where(c.c.account_id.in_(changed_accounts)),
        ]
    found: set[str] = set()
    with store.read() as conn:
        found.update(s for name, s in conn.execute(stored) if name == event and s is not None)
        for query in (crossed, *profiles):
            found.update(s for s in conn.scalars(query) if s is not None)
    return found


def contact_ids_of(store: Store, *, by: str, subjects: set[str]) -> list[str]:
    """The contacts of ``subjects``: the accounts' contacts (``by="account"``), or those of
    the contact ids that exist."""
    c = schema.contacts
    column = c.c.account_id if by == "account" else c.c.id
    wanted = sorted(subjects)
    found: list[str] = []
    with store.read() as conn:
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            found += conn.scalars(sa.select(c.c.id).where(column.in_(chunk)))
    return found
