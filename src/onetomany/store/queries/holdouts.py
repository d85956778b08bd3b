"""The control groups: who each touch's holdout kept out, and whether they converted anyway.

A ``holdout`` decision is kept here once per idempotency key (a time-driven trigger that
proposes the same occurrence every round adds one row). The control group's conversions are
counted as the treatment's are (:func:`~onetomany.store.queries.metrics.goal_counts`): the
recipient's account (or the contact, without one) records the goal event after the decision
and within the goal's days. One statement per goal.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa

from onetomany.model.decisions import Decision, Outcome
from onetomany.store import schema
from onetomany.store.queries.metrics import plus_days, within

if TYPE_CHECKING:
    from onetomany.store import Store


def record_holdouts(store: Store, decisions: Sequence[Decision]) -> int:
    """Keep the ``holdout`` decisions of ``decisions``; a key already kept stays as it was.
    Returns how many were given."""
    rows = [
        {
            "idempotency_key": d.idempotency_key,
            "program": d.program,
            "touch": d.touch,
            "contact_id": d.contact_id,
            "account_id": d.account_id,
            "at": d.at,
        }
        for d in decisions
        if d.outcome is Outcome.HOLDOUT
    ]
    if rows:
        t = schema.holdouts
        stmt = store._insert(t).on_conflict_do_nothing(index_elements=[t.c.idempotency_key])
        with store.write() as conn:
            conn.execute(stmt, rows)
    return len(rows)


def control_counts(
    store: Store,
    *,
    touches: Collection[str],
    event: str,
    within_days: int,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, dict[str, int]]:
    """Per touch of ``touches``: how many recipients its holdout kept out in
    ``[since, until)`` (``held_out``) and how many of them recorded ``event`` within
    ``within_days`` after (``converted``)."""
    h, e = schema.holdouts, schema.events
    same_subject = sa.or_(
        sa.and_(h.c.account_id.is_not(None), e.c.account_id == h.c.account_id),
        sa.and_(h.c.account_id.is_(None), e.c.contact_id == h.c.contact_id),
    )
    converted = sa.exists().where(
        e.c.name == event,
        same_subject,
        e.c.occurred_at > h.c.at,
        e.c.occurred_at <= plus_days(store, h.c.at, within_days),
    )
    query = within(
        sa.select(
            h.c.touch,
            sa.func.count().label("held_out"),
            sa.func.coalesce(sa.func.sum(sa.case((converted, 1), else_=0)), 0).label("converted"),
        )
        .where(h.c.touch.in_(sorted(touches)))
        .group_by(h.c.touch),
        h.c.at,
        since,
        until,
    )
    with store.read() as conn:
        return {
            row.touch: {"held_out": int(row.held_out), "converted": int(row.converted)}
            for row in conn.execute(query)
        }
