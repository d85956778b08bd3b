"""What happened to a contact or an account, read for a timeline: its events, the decisions
recorded about its contacts, and its messages with every delivery attempt."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from onetomany.model import Delivery, Event
from onetomany.store import schema
from onetomany.store.store import OutboxRow, event_from_row

if TYPE_CHECKING:
    from onetomany.store import Store


def _of(table: sa.Table, contact_ids: Sequence[str], account_id: str | None) -> Any:
    """Rows of those contacts, or of the account (when given) that name no contact."""
    mine = table.c.contact_id.in_(sorted(contact_ids))
    if account_id is None:
        return mine
    return sa.or_(mine, sa.and_(table.c.account_id == account_id, table.c.contact_id.is_(None)))


def subject_events(store: Store, contact_ids: Sequence[str], account_id: str | None) -> list[Event]:
    """The events of ``contact_ids``, and those of ``account_id`` that name no contact,
    oldest first."""
    e = schema.events
    query = sa.select(e).where(_of(e, contact_ids, account_id)).order_by(e.c.occurred_at, e.c.seq)
    with store.read() as conn:
        return [event_from_row(row) for row in conn.execute(query)]


def subject_decisions(store: Store, contact_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The recorded decisions about ``contact_ids`` (their JSON form), in the order made."""
    d = schema.decisions
    query = sa.select(d.c.record).where(d.c.contact_id.in_(sorted(contact_ids))).order_by(d.c.id)
    with store.read() as conn:
        return [dict(record) for record in conn.scalars(query)]


def subject_messages(
    store: Store, contact_ids: Sequence[str], account_id: str | None
) -> list[tuple[OutboxRow, datetime, list[Delivery]]]:
    """The outbox rows of ``contact_ids`` (and of ``account_id`` without a contact), each
    with when it was queued and its delivery attempts, in row order."""
    o, d = schema.outbox, schema.deliveries
    rows_query = sa.select(o).where(_of(o, contact_ids, account_id)).order_by(o.c.id)
    attempts_query = (
        sa.select(*(c for c in d.c if c.name != "id"), o.c.touch, o.c.contact_id, o.c.account_id)
        .join(o, o.c.id == d.c.outbox_id)
        .where(_of(o, contact_ids, account_id))
        .order_by(d.c.id)
    )
    with store.read() as conn:
        rows = [(OutboxRow.from_row(row), row.created_at) for row in conn.execute(rows_query)]
        attempts: dict[int, list[Delivery]] = {}
        for row in conn.execute(attempts_query):
            attempts.setdefault(row.outbox_id, []).append(Delivery(**row._mapping))
    return [(row, queued, attempts.get(row.id, [])) for row, queued in rows]
