"""NPS questions: the answers' scores and the surveys sent, grouped by plan, tier, period or
all, among the contacts of a segment or everyone. Each is one statement; the score, the
rates and the distribution are worked out by :mod:`onetomany.metrics.nps`.

Only each contact's latest answer in the range counts (a newer click on the survey's buttons
is a change of mind, not a second voter). A survey is a message of a touch that some answer
names (``properties.touch``): the response rate is the contacts who answered over the
contacts a survey was sent to, in the range.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from onetomany.model import OutboxStatus
from onetomany.store import schema
from onetomany.store.queries.metrics import week_of, within
from onetomany.store.segments import compile_segment

if TYPE_CHECKING:
    from onetomany.rules.segments import SegmentSet
    from onetomany.store import Store

#: What answers and surveys are grouped by.
NPS_DIMENSIONS = ("all", "plan", "tier", "week", "month")


def _month(store: Store, moment: Any) -> sa.ColumnElement[str]:
    if store.dialect == "postgresql":
        return sa.func.to_char(moment, "YYYY-MM")
    return sa.func.strftime("%Y-%m", moment)


def segment_members(
    store: Store, segment: str | None, segments: SegmentSet | None, now: datetime | None
) -> tuple[sa.Select[tuple[str]] | None, dict[str, Any]]:
    """The statement of the contact ids in ``segment`` at ``now`` and its parameters, or
    (None, {}) for everyone."""
    if segment is None:
        return None, {}
    if segments is None or now is None:
        raise ValueError("NPS per segment needs the program's segments and a now")
    compiled = compile_segment(
        segments.expr(segment), dialect_name=store.dialect, segments=segments
    )
    return compiled.contacts, compiled.params(now)


def _dimension(store: Store, by: str, *, account: Any, moment: Any) -> sa.ColumnElement[Any]:
    a, ts = schema.accounts, schema.tier_states
    if by == "plan":
        return sa.func.coalesce(a.c.traits["plan"].as_string(), "")
    if by == "tier":
        return sa.func.coalesce(ts.c.tier, "")
    if by == "week":
        return week_of(store, moment)
    if by == "month":
        return _month(store, moment)
    if by == "all":
        return sa.literal("all", sa.String)
    if by == "account":  # for the health score's NPS measure
        return sa.func.coalesce(account, "")
    raise ValueError(f"NPS is grouped by one of {', '.join(NPS_DIMENSIONS)}, not {by!r}")


def score_counts(
    store: Store,
    *,
    event: str,
    by: str,
    since: datetime | None = None,
    until: datetime | None = None,
    segment: str | None = None,
    segments: SegmentSet | None = None,
    now: datetime | None = None,
) -> dict[str, dict[int, int]]:
    """Per value of ``by``: how many contacts' latest answer (``event``, in
    ``[since, until)``) gave each score 0-10. ``segment`` (a named segment of ``segments``,
    asked at ``now``) keeps only the answers of contacts in it."""
    members, params = segment_members(store, segment, segments, now)
    e, c, a, ts = schema.events, schema.contacts, schema.accounts, schema.tier_states
    score = sa.cast(e.c.properties["score"].as_string(), sa.Float)
    latest = within(
        sa.select(e.c.contact_id, sa.func.max(e.c.seq).label("seq"))
        .where(e.c.name == event, e.c.contact_id.is_not(None))
        .group_by(e.c.contact_id),
        e.c.occurred_at,
        since,
        until,
    )
    if members is not None:
        latest = latest.where(e.c.contact_id.in_(members))
    chosen = latest.subquery("latest")
    account = sa.func.coalesce(e.c.account_id, c.c.account_id)
    dim = _dimension(store, by, account=account, moment=e.c.occurred_at)
    query = (
        sa.select(dim.label("value"), score.label("score"), sa.func.count().label("n"))
        .select_from(
            e.join(chosen, chosen.c.seq == e.c.seq)
            .outerjoin(c, c.c.id == e.c.contact_id)
            .outerjoin(a, a.c.id == account)
            .outerjoin(ts, ts.c.account_id == account)
        )
        .where(score.is_not(None), score >= 0, score <= 10)
        .group_by(dim, score)
    )
    found: dict[str, dict[int, int]] = {}
    with store.read() as conn:
        for row in conn.execute(query, params):
            scores = found.setdefault(str(row.value), {})
            scores[int(row.score)] = scores.get(int(row.score), 0) + int(row.n)
    return found


def survey_touches(
    store: Store, *, event: str, since: datetime | None = None, until: datetime | None = None
) -> list[str]:
    """The touches the answers (``event``) in ``[since, until)`` name: the surveys."""
    e = schema.events
    touch = e.c.properties["touch"].as_string()
    query = within(
        sa.select(touch.label("touch")).where(e.c.name == event, touch.is_not(None)).distinct(),
        e.c.occurred_at,
        since,
        until,
    )
    with store.read() as conn:
        return sorted(str(t) for t in conn.scalars(query))


def surveyed_counts(
    store: Store,
    *,
    touches: Collection[str],
    by: str,
    since: datetime | None = None,
    until: datetime | None = None,
    segment: str | None = None,
    segments: SegmentSet | None = None,
    now: datetime | None = None,
) -> dict[str, int]:
    """Per value of ``by``: how many contacts were sent a message of ``touches`` in
    ``[since, until)`` (``segment`` as in :func:`score_counts`). A contact surveyed in
    two weeks counts in each."""
    members, params = segment_members(store, segment, segments, now)
    o, d, c, a, ts = (
        schema.outbox,
        schema.deliveries,
        schema.contacts,
        schema.accounts,
        schema.tier_states,
    )
    if not touches:
        return {}
    account = sa.func.coalesce(o.c.account_id, c.c.account_id)
    dim = _dimension(store, by, account=account, moment=d.c.at)
    query = (
        sa.select(dim.label("value"), sa.func.count(sa.distinct(o.c.contact_id)).label("n"))
        .select_from(
            o.join(d, sa.and_(d.c.outbox_id == o.c.id, d.c.status == OutboxStatus.SENT))
            .outerjoin(c, c.c.id == o.c.contact_id)
            .outerjoin(a, a.c.id == account)
            .outerjoin(ts, ts.c.account_id == account)
        )
        .where(o.c.touch.in_(sorted(touches)), o.c.contact_id.is_not(None))
        .group_by(dim)
    )
    query = within(query, d.c.at, since, until)
    if members is not None:
        query = query.where(o.c.contact_id.in_(members))
    with store.read() as conn:
        return {str(r.value): int(r.n) for r in conn.execute(query, params)}
