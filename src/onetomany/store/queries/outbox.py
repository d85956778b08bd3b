"""Questions about queued and sent outbox rows: the row behind an idempotency key, when a
touch was last queued for a contact (re-entry), the sent rows nobody engaged with
(escalation ladders), a touch's rows for one contact (explanations)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from onetomany.model import OutboxStatus
from onetomany.store import schema
from onetomany.store.queries.events import by_a_person
from onetomany.store.store import OutboxRow

if TYPE_CHECKING:
    from onetomany.store import Store

#: Ids per IN list: under SQLite's bound-parameter limit.
_CHUNK = 500


def outbox_row(store: Store, idempotency_key: str) -> OutboxRow | None:
    """The outbox row keyed ``idempotency_key``, if one is queued."""
    t = schema.outbox
    with store.read() as conn:
        row = conn.execute(sa.select(t).where(t.c.idempotency_key == idempotency_key)).first()
    return OutboxRow.from_row(row) if row is not None else None


def last_queued(store: Store, touch: str, contact_ids: Iterable[str]) -> dict[str, datetime]:
    """When ``touch`` was last queued for each of ``contact_ids`` (absent: never)."""
    wanted = sorted(set(contact_ids))
    t = schema.outbox
    found: dict[str, datetime] = {}
    with store.read() as conn:
        for start in range(0, len(wanted), _CHUNK):
            stmt = (
                sa.select(
                    t.c.contact_id,
                    # max() would lose the column's type, and with it the aware UTC reading.
                    sa.type_coerce(sa.func.max(t.c.created_at), schema.UTCDateTime).label("at"),
                )
                .where(t.c.touch == touch, t.c.contact_id.in_(wanted[start : start + _CHUNK]))
                .group_by(t.c.contact_id)
            )
            found.update({row.contact_id: row.at for row in conn.execute(stmt)})
    return found


def sent_not_engaged(
    store: Store,
    *,
    program: str,
    touch: str,
    next_key: tuple[str, str],
    engagement: Sequence[str],
    sent_by: datetime,
    now: datetime,
    among: Collection[int] | None = None,
) -> list[tuple[OutboxRow, datetime]]:
    """The rows of ``touch`` in ``program`` sent at or before ``sent_by`` that were neither
    followed up nor engaged with, each with when it was sent, in row order; one statement.

    * Sent: the row's status is ``sent`` and it has a ``sent`` delivery, whose time is the
      send time (written once, in the transaction that marks the row sent).
    * Followed up: an outbox row holds the key ``head + contact id + tail + row id``, where
      ``next_key`` is ``(head, tail)``.
    * Engaged with: an event of the row's contact named in ``engagement``, at or before
      ``now``, carries the row's idempotency key.

    ``among`` limits it to those outbox ids (a steady round's), a statement per chunk.
    """
    o, nxt, d, e = (
        schema.outbox.alias("sent"),
        schema.outbox.alias("next"),
        schema.deliveries,
        schema.events,
    )
    head, tail = next_key
    key_of_next = (
        sa.literal(head, sa.String)
        + o.c.contact_id
        + sa.literal(tail, sa.String)
        + sa.cast(o.c.id, sa.String)
    )
    escalated = sa.exists().where(nxt.c.idempotency_key == key_of_next)
    engaged = sa.exists().where(
        e.c.contact_id == o.c.contact_id,
        e.c.name.in_(engagement),
        e.c.occurred_at <= now,
        e.c.properties["idempotency_key"].as_string() == o.c.idempotency_key,
        by_a_person(e),
    )
    query = (
        sa.select(o, d.c.at.label("sent_at"))
        .join(d, sa.and_(d.c.outbox_id == o.c.id, d.c.status == "sent"))
        .where(
            o.c.status == OutboxStatus.SENT,
            o.c.program == program,
            o.c.touch == touch,
            o.c.contact_id.is_not(None),
            d.c.at <= sent_by,
            ~escalated,
            ~engaged,
        )
        .order_by(o.c.id)
    )
    if among is None:
        queries = [query]
    else:
        wanted = sorted(among)
        queries = [
            query.where(o.c.id.in_(wanted[start : start + _CHUNK]))
            for start in range(0, len(wanted), _CHUNK)
        ]
    found: dict[int, tuple[OutboxRow, datetime]] = {}
    with store.read() as conn:
        for chunk in queries:
            # One per row even if a row has two sent deliveries.
            found.update(
                (row.id, (OutboxRow.from_row(row), _aware(row.sent_at)))
                for row in conn.execute(chunk)
            )
    return [found[i] for i in sorted(found)]


def touch_rows(store: Store, touch: str, contact_id: str, *, limit: int) -> list[dict[str, Any]]:
    """The newest ``limit`` outbox rows of ``touch`` for ``contact_id``, newest first, each as
    its columns by name, and ``provider``: who took its latest attempt (None before one)."""
    t, d = schema.outbox, schema.deliveries
    provider = (
        sa.select(d.c.provider)
        .where(d.c.outbox_id == t.c.id)
        .order_by(d.c.id.desc())
        .limit(1)
        .scalar_subquery()
        .label("provider")
    )
    query = (
        sa.select(t, provider)
        .where(t.c.touch == touch, t.c.contact_id == contact_id)
        .order_by(t.c.id.desc())
        .limit(limit)
    )
    with store.read() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def sent_at(store: Store, idempotency_key: str) -> datetime | None:
    """When the row keyed ``idempotency_key`` was sent (its first ``sent`` delivery)."""
    d, o = schema.deliveries, schema.outbox
    # Through the outbox row's id: deliveries are indexed by it, not by the key.
    row_id = sa.select(o.c.id).where(o.c.idempotency_key == idempotency_key).scalar_subquery()
    query = sa.select(sa.func.min(d.c.at)).where(d.c.outbox_id == row_id, d.c.status == "sent")
    with store.read() as conn:
        value = conn.scalar(query)
    return _aware(value) if value is not None else None


def _aware(value: datetime | str) -> datetime:
    parsed = datetime.fromisoformat(value) if isinstance(value, str) else value
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed
