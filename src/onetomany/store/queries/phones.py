"""The contacts a phone number belongs to: who wrote to us from it (an inbound message)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from onetomany.store import schema

if TYPE_CHECKING:
    from onetomany.store import Store


def contacts_with_phone(store: Store, phone: str) -> list[tuple[str, str | None]]:
    """``(contact id, account id)`` of each contact whose phone is ``phone`` (E.164, as the
    store keeps phones), in id order."""
    c = schema.contacts
    query = sa.select(c.c.id, c.c.account_id).where(c.c.phone == phone).order_by(c.c.id)
    with store.read() as conn:
        return [(contact_id, account_id) for contact_id, account_id in conn.execute(query)]
