"""When each source last synced and how it went: written by every sync, read by whatever must
know how fresh a source's data is (``onetomany sync`` reports, the freshness guard)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs
import sqlalchemy as sa

from onetomany.store import schema

if TYPE_CHECKING:
    from onetomany.store import Store


@attrs.frozen(kw_only=True)
class SourceSyncState:
    """One source's last sync. ``error`` is the error of the last sync to finish when it
    raised, and ``None`` once a sync succeeds again."""

    name: str
    started_at: datetime | None
    succeeded_at: datetime | None
    failed_at: datetime | None
    error: str | None
    stored: int
    skipped: int

    @property
    def failed(self) -> bool:
        """Whether the last sync to finish raised."""
        return self.error is not None


def sync_started(store: Store, name: str, *, at: datetime) -> None:
    _write(store, name, {"started_at": at})


def sync_succeeded(store: Store, name: str, *, at: datetime, stored: int, skipped: int) -> None:
    """The sync of ``name`` finished: every page read was stored (skips reported)."""
    _write(store, name, {"succeeded_at": at, "error": None, "stored": stored, "skipped": skipped})


def sync_failed(
    store: Store, name: str, *, at: datetime, error: str, stored: int, skipped: int
) -> None:
    """The sync of ``name`` raised after storing ``stored`` records (those stay stored)."""
    _write(store, name, {"failed_at": at, "error": error, "stored": stored, "skipped": skipped})


def sync_states(store: Store) -> dict[str, SourceSyncState]:
    """Every source that has synced at least once, by name."""
    with store.read() as conn:
        rows = conn.execute(sa.select(schema.source_syncs)).all()
    return {row.name: SourceSyncState(**row._asdict()) for row in rows}


def _write(store: Store, name: str, values: dict[str, Any]) -> None:
    t = schema.source_syncs
    with store.write() as conn:
        changed = conn.execute(sa.update(t).where(t.c.name == name).values(**values)).rowcount
        if not changed:
            conn.execute(sa.insert(t).values({"stored": 0, "skipped": 0, **values, "name": name}))
