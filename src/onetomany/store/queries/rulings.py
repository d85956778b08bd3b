"""Writing what the send policies settled about claimed outbox rows.

A skipped row ends as ``skipped`` with its reason in ``last_error``; a deferred one goes back
to ``pending`` with ``available_at`` at the deferral's end. Neither is an attempt: no delivery
row, no delivery event, ``attempts`` unchanged. The writes are fenced like every outcome write:
a row moves only while it is still claimed under the token of the claim that judged it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import attrs
import sqlalchemy as sa

from onetomany.model import OutboxStatus
from onetomany.store import schema
from onetomany.store.store import _clean_text

if TYPE_CHECKING:
    from onetomany.store import Store


@attrs.frozen(kw_only=True)
class Release:
    """One claimed row handed back by a policy: skipped (``until`` None) or deferred."""

    outbox_id: int
    claim_token: str
    reason: str
    until: datetime | None = None


def release_claimed(store: Store, releases: Sequence[Release], *, now: datetime) -> set[int]:
    """Skip or defer claimed rows, in one transaction; returns the ids of the rows that were
    no longer claimed under the given token (another worker took them), left unchanged."""
    t = schema.outbox
    stale: set[int] = set()
    if not releases:
        return stale
    with store.write() as conn:
        for release in releases:
            skipped = release.until is None
            move = (
                sa.update(t)
                .where(
                    t.c.id == release.outbox_id,
                    t.c.claim_token == release.claim_token,
                    t.c.status == OutboxStatus.CLAIMED,
                )
                .values(
                    status=OutboxStatus.SKIPPED if skipped else OutboxStatus.PENDING,
                    available_at=t.c.available_at if skipped else release.until,
                    last_error=_clean_text(release.reason),
                    updated_at=now,
                    lease_until=None,
                    claimed_by=None,
                    claim_token=None,
                )
                .returning(t.c.id)
            )
            if conn.execute(move).first() is None:
                stale.add(release.outbox_id)
    return stale
