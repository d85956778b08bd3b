"""Contacts by account, and the account of each contact."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import sqlalchemy as sa

from onetomany.model import Contact
from onetomany.store import schema

if TYPE_CHECKING:
    from onetomany.store import Store

#: Ids per IN list: under SQLite's bound-parameter limit.
_CHUNK = 500


def contacts_of_accounts(store: Store, account_ids: Iterable[str]) -> dict[str, list[Contact]]:
    """Each account's contacts, in id order (an account without contacts is absent)."""
    wanted = sorted(set(account_ids))
    c = schema.contacts
    ids: list[str] = []
    with store.read() as conn:
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            ids += conn.scalars(sa.select(c.c.id).where(c.c.account_id.in_(chunk)))
    grouped: dict[str, list[Contact]] = {}
    for contact in sorted(store.get_contacts(ids).values(), key=lambda x: x.id):
        if contact.account_id is not None:
            grouped.setdefault(contact.account_id, []).append(contact)
    return grouped


def account_ids(store: Store, contact_ids: Iterable[str]) -> dict[str, str | None]:
    """Each existing contact's account id (absent: the contact does not exist)."""
    wanted = sorted(set(contact_ids))
    t = schema.contacts
    found: dict[str, str | None] = {}
    with store.read() as conn:
        for start in range(0, len(wanted), _CHUNK):
            stmt = sa.select(t.c.id, t.c.account_id).where(
                t.c.id.in_(wanted[start : start + _CHUNK])
            )
            found.update({row.id: row.account_id for row in conn.execute(stmt)})
    return found
