"""The suppression list: addresses and numbers never to be contacted again."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import sqlalchemy as sa

from onetomany.rules.suppression import Suppression
from onetomany.store import schema

if TYPE_CHECKING:
    from onetomany.store import Store

#: Addresses per IN list: under SQLite's bound-parameter limit.
_CHUNK = 500


def add_suppressions(store: Store, entries: Sequence[Suppression]) -> None:
    """Keep ``entries`` in one transaction; an address already listed takes the new reason,
    source, time and note (the last word wins, as a later complaint outranks a bounce)."""
    rows = {e.address: e.as_dict() | {"at": e.at} for e in entries}
    if not rows:
        return
    t = schema.suppressions
    stmt = store._insert(t)
    stmt = stmt.on_conflict_do_update(
        index_elements=[t.c.address],
        set_={name: stmt.excluded[name] for name in ("reason", "source", "at", "note")},
    )
    with store.write() as conn:
        conn.execute(stmt, list(rows.values()))


def remove_suppressions(store: Store, addresses: Iterable[str]) -> int:
    """Forget the (normalised) ``addresses``; returns how many were listed."""
    wanted = sorted(set(addresses))
    t = schema.suppressions
    removed = 0
    with store.write() as conn:
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            removed += conn.execute(sa.delete(t).where(t.c.address.in_(chunk))).rowcount or 0
    return removed


def suppressed(store: Store, addresses: Iterable[str]) -> dict[str, Suppression]:
    """The entries of those of the (normalised) ``addresses`` that are listed."""
    wanted = sorted(set(addresses))
    t = schema.suppressions
    found: dict[str, Suppression] = {}
    with store.read() as conn:
        for start in range(0, len(wanted), _CHUNK):
            query = sa.select(t).where(t.c.address.in_(wanted[start : start + _CHUNK]))
            found.update({row.address: _entry(row) for row in conn.execute(query)})
    return found


def all_suppressions(store: Store) -> list[Suppression]:
    """Every entry, by address."""
    t = schema.suppressions
    with store.read() as conn:
        return [_entry(row) for row in conn.execute(sa.select(t).order_by(t.c.address))]


def _entry(row: sa.Row[object]) -> Suppression:
    return Suppression(
        address=row.address,
        reason=row.reason,
        source=row.source,
        at=row.at,
        note=row.note or "",
    )
