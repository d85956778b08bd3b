"""The identity map: which contact each identity key names, and the source that claimed it.

A key is ``<kind>:<value>``: ``email:ana@acme.test``, ``phone:+5511...``, or a source's own
id for a contact, ``id:<source>:<id>``. A key is claimed once, for one contact, by the first
source to give it; :func:`forget_key` releases one (to accept a key a source changed). The
rules that use the map live in :mod:`onetomany.plugins.identity`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

import attrs
import sqlalchemy as sa

from onetomany.store import schema

if TYPE_CHECKING:
    from onetomany.store import Store

#: Keys looked up in one statement at most (SQLite's bound-parameter limit is far above).
CHUNK = 500


@attrs.frozen(kw_only=True)
class Claim:
    """One key's contact, and the source that claimed the key for it."""

    key: str
    contact_id: str
    source: str


def claims_of_keys(store: Store, keys: Iterable[str]) -> dict[str, Claim]:
    """The claims on ``keys`` that exist, by key."""
    t = schema.identity_keys
    wanted = sorted(set(keys))
    found: dict[str, Claim] = {}
    with store.read() as conn:
        for start in range(0, len(wanted), CHUNK):
            chunk = wanted[start : start + CHUNK]
            rows = conn.execute(
                sa.select(t.c.key, t.c.contact_id, t.c.source).where(t.c.key.in_(chunk))
            )
            found |= {
                r.key: Claim(key=r.key, contact_id=r.contact_id, source=r.source) for r in rows
            }
    return found


def claims_of_contacts(store: Store, contact_ids: Iterable[str]) -> list[Claim]:
    """Every key claimed for any of ``contact_ids``."""
    t = schema.identity_keys
    wanted = sorted(set(contact_ids))
    found: list[Claim] = []
    with store.read() as conn:
        for start in range(0, len(wanted), CHUNK):
            rows = conn.execute(
                sa.select(t.c.key, t.c.contact_id, t.c.source).where(
                    t.c.contact_id.in_(wanted[start : start + CHUNK])
                )
            )
            found += [Claim(key=r.key, contact_id=r.contact_id, source=r.source) for r in rows]
    return found


def claim_keys(store: Store, claims: Iterable[Claim], *, at: datetime) -> None:
    """Record ``claims``; a key already claimed keeps its first claim."""
    t = schema.identity_keys
    new = {c.key: c for c in claims}
    if not new:
        return
    with store.write() as conn:
        taken = set()
        keys = sorted(new)
        for start in range(0, len(keys), CHUNK):
            chunk = keys[start : start + CHUNK]
            taken |= set(conn.execute(sa.select(t.c.key).where(t.c.key.in_(chunk))).scalars())
        rows = [
            {"key": c.key, "contact_id": c.contact_id, "source": c.source, "claimed_at": at}
            for key, c in sorted(new.items())
            if key not in taken
        ]
        if rows:
            conn.execute(sa.insert(t), rows)


def forget_key(store: Store, key: str) -> bool:
    """Release ``key`` (the next source to give it claims it again); whether it was claimed."""
    t = schema.identity_keys
    with store.write() as conn:
        return bool(conn.execute(sa.delete(t).where(t.c.key == key)).rowcount)
