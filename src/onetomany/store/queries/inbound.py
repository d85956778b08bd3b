"""When each contact last wrote to us on a channel (an inbound message event)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa

from onetomany.store import schema

if TYPE_CHECKING:
    from onetomany.store import Store

_CHUNK = 500


def last_inbound(store: Store, contact_ids: Iterable[str], name: str) -> dict[str, datetime]:
    """The latest ``name`` event (``whatsapp_inbound``) of each of ``contact_ids`` that has one."""
    t = schema.events
    wanted = sorted(set(contact_ids))
    found: dict[str, datetime] = {}
    with store.read() as conn:
        for start in range(0, len(wanted), _CHUNK):
            query = (
                sa.select(t.c.contact_id, sa.func.max(t.c.occurred_at))
                .where(t.c.name == name, t.c.contact_id.in_(wanted[start : start + _CHUNK]))
                .group_by(t.c.contact_id)
            )
            # max() keeps the column's type, so the times come back aware (UTC).
            found.update({contact_id: at for contact_id, at in conn.execute(query)})
    return found
