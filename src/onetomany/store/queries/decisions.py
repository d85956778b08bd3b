"""The decisions the engine recorded: what each tick decided about a touch for a recipient.

One row per idempotency key and outcome (a time-driven trigger proposes the same occurrence
at every tick until it is queued; the first time is the one worth keeping), pruned after a
retention so the table stays bounded.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from onetomany.model.decisions import Decision
from onetomany.store import schema

if TYPE_CHECKING:
    from onetomany.store import Store


def record_decisions(store: Store, decisions: Sequence[Decision]) -> None:
    """Keep ``decisions`` (settled ones); a key already recorded with the same outcome is
    left as it was."""
    rows = [
        {
            "at": d.at,
            "touch": d.touch,
            "contact_id": d.contact_id,
            "idempotency_key": d.idempotency_key,
            "outcome": str(d.outcome),
            "record": d.as_dict(),
        }
        for d in decisions
        if d.settled
    ]
    if not rows:
        return
    t = schema.decisions
    stmt = store._insert(t).on_conflict_do_nothing(
        index_elements=[t.c.idempotency_key, t.c.outcome]
    )
    with store.write() as conn:
        conn.execute(stmt, rows)


def recorded_decisions(
    store: Store, touch: str, contact_id: str, *, limit: int
) -> list[dict[str, Any]]:
    """The newest ``limit`` recorded decisions about ``touch`` for ``contact_id``, newest
    first, each as its JSON form (:meth:`Decision.as_dict`)."""
    t = schema.decisions
    query = (
        sa.select(t.c.record)
        .where(t.c.touch == touch, t.c.contact_id == contact_id)
        .order_by(t.c.id.desc())
        .limit(limit)
    )
    with store.read() as conn:
        return [dict(record) for record in conn.scalars(query)]


def prune_decisions(store: Store, *, before: datetime) -> int:
    """Forget the decisions made before ``before``. Returns how many were removed."""
    t = schema.decisions
    with store.write() as conn:
        return conn.execute(sa.delete(t).where(t.c.at < before)).rowcount or 0
