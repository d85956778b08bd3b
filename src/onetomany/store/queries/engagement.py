"""What an engagement trigger re-reads on a steady tick: only the sent rows of its watched
touch whose answer could have changed since its last round.

A sent row escalates once it was sent ``days`` ago, unless it was engaged with or escalated
already. Between two rounds a row can only become due when its send time crossed the
threshold in between (``ix_deliveries_at``), when it was sent since (a delivery stored
after the last round's, whatever time it carries), or when its contact or the contact's
account was saved since (the touch's segment reads them; ``ix_outbox_touch_contact``).
Engagement and escalation only ever stop a row, so they need no arm of their own.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa

from onetomany.model import OutboxStatus
from onetomany.store import schema

if TYPE_CHECKING:
    from onetomany.store import Store


def last_delivery(store: Store) -> int:
    """The id of the newest delivery record (0 before any)."""
    d = schema.deliveries
    with store.read() as conn:
        return int(conn.execute(sa.select(sa.func.max(d.c.id))).scalar_one() or 0)


def changed_sent_rows(
    store: Store,
    *,
    program: str,
    touch: str,
    sent_after: datetime,
    sent_until: datetime,
    delivered_after: int,
    changed_since: datetime,
) -> set[int]:
    """The outbox ids of ``touch``'s sent rows in ``program`` that may have become due since
    the last round: sent in ``(sent_after, sent_until]``, with a delivery stored after id
    ``delivered_after``, or whose contact (or its account) was saved at ``changed_since`` or
    later."""
    o, d, c, a = schema.outbox, schema.deliveries, schema.contacts, schema.accounts
    crossed = sa.select(d.c.outbox_id).where(
        d.c.status == "sent", d.c.at > sent_after, d.c.at <= sent_until
    )
    stored = sa.select(d.c.outbox_id).where(d.c.id > delivered_after, d.c.status == "sent")
    # From the few accounts saved since to their contacts (by index): as a join, SQLite
    # walked every contact to look its account up.
    saved = sa.union(
        sa.select(c.c.id).where(c.c.updated_at >= changed_since),
        sa.select(c.c.id).where(
            c.c.account_id.in_(sa.select(a.c.id).where(a.c.updated_at >= changed_since))
        ),
    ).subquery()
    # The touch and contacts alone (ix_outbox_touch_contact); the program and status are
    # checked here: asked for the status, SQLite walks every sent row in ix_outbox_due.
    profiles = sa.select(o.c.id, o.c.program, o.c.status).where(
        o.c.touch == touch, o.c.contact_id.in_(sa.select(saved.c.id))
    )
    found: set[int] = set()
    with store.read() as conn:
        found.update(conn.scalars(crossed))
        found.update(conn.scalars(stored))
        found.update(
            row.id
            for row in conn.execute(profiles)
            if row.program == program and row.status == OutboxStatus.SENT
        )
    return found
