"""Health scores kept per account and round: written once a round (the day's latest replaces
the day's earlier one, so the history holds one score per account per UTC day), and read
back as the latest, an account's history, the distribution and the trend."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from onetomany.store import schema

if TYPE_CHECKING:
    from onetomany.store import Store


def write_scores(
    store: Store, scores: Mapping[str, tuple[float, Mapping[str, Any]]], *, now: datetime
) -> int:
    """Keep ``scores`` (account id -> score and its measures) at ``now``, in place of the
    scores of ``now``'s UTC day; one transaction. Returns how many were written."""
    h = schema.health_scores
    start = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    rows = [
        {"account_id": account, "at": now, "score": score, "measures": dict(measures)}
        for account, (score, measures) in scores.items()
    ]
    with store.write() as conn:
        conn.execute(sa.delete(h).where(h.c.at >= start, h.c.at < start + timedelta(days=1)))
        if rows:
            conn.execute(sa.insert(h), rows)
    return len(rows)


def latest_scores(store: Store, *, at: datetime) -> dict[str, float]:
    """Each account's latest score at or before ``at``."""
    h = schema.health_scores
    latest = (
        sa.select(h.c.account_id, sa.func.max(h.c.at).label("at"))
        .where(h.c.at <= at)
        .group_by(h.c.account_id)
        .subquery("latest")
    )
    query = sa.select(h.c.account_id, h.c.score).join(
        latest, sa.and_(latest.c.account_id == h.c.account_id, latest.c.at == h.c.at)
    )
    with store.read() as conn:
        return {str(r.account_id): float(r.score) for r in conn.execute(query)}


def score_history(
    store: Store, account_id: str, *, since: datetime | None = None
) -> list[tuple[datetime, float, dict[str, Any]]]:
    """An account's scores, oldest first: (at, score, measures)."""
    h = schema.health_scores
    query = sa.select(h.c.at, h.c.score, h.c.measures).where(h.c.account_id == account_id)
    if since is not None:
        query = query.where(h.c.at >= since)
    with store.read() as conn:
        return [
            (r.at, float(r.score), dict(r.measures)) for r in conn.execute(query.order_by(h.c.at))
        ]


def mean_per_day(
    store: Store, *, since: datetime | None = None, until: datetime | None = None
) -> Sequence[tuple[str, float, int]]:
    """(UTC day, mean score, accounts scored) per day: the book's trend."""
    h = schema.health_scores
    day = (
        sa.func.to_char(h.c.at, "YYYY-MM-DD")
        if store.dialect == "postgresql"
        else sa.func.date(h.c.at)
    )
    query = sa.select(
        day.label("day"), sa.func.avg(h.c.score).label("mean"), sa.func.count().label("n")
    ).group_by(day)
    if since is not None:
        query = query.where(h.c.at >= since)
    if until is not None:
        query = query.where(h.c.at < until)
    with store.read() as conn:
        return [(str(r.day), float(r.mean), int(r.n)) for r in conn.execute(query.order_by(day))]
