"""Questions the measuring views ask: funnels per touch over the outbox, the events that carry
a message's idempotency key, and the decisions each tick recorded.

Every funnel is one set-based statement per dimension (and one over the decisions): the
rows are counted in the database, never loaded into Python, so a store with a million
deliveries answers in one pass. What counts as an open, a click or an answer is the caller's
to say (:class:`FunnelNames`); the statements only count.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs
import sqlalchemy as sa

from onetomany.model import OutboxStatus
from onetomany.store import schema
from onetomany.store.segments import compile_segment

if TYPE_CHECKING:
    from onetomany.rules.segments import SegmentSet
    from onetomany.store import Store

#: The dimensions a funnel is grouped by (``segment`` is asked once per named segment).
DIMENSIONS = ("touch", "channel", "locale", "tier", "week")
#: The stages counted from the events that carry a message's idempotency key.
EVENT_STAGES = ("delivered", "opened", "clicked", "bounced", "complained", "unsubscribed")
#: Every count a funnel row has, in funnel order.
STAGES = (
    "queued",
    "deferred",
    "suppressed",
    "sent",
    "failed",
    "delivered",
    "opened",
    "machine_opened",
    "clicked",
    "bounced",
    "complained",
    "unsubscribed",
    "answered",
)


@attrs.frozen(kw_only=True)
class FunnelNames:
    """Which events and checks mark each stage (the measuring layer defines them)."""

    #: Event names per event stage (``opened`` -> ``("message_opened",)``).
    events: Mapping[str, Collection[str]]
    #: Events that answer a message (an NPS score): ``answered``.
    answers: Collection[str]
    #: The ``properties`` key whose true value marks an open made by a machine (a privacy
    #: proxy prefetching images): counted as ``machine_opened``, not ``opened``.
    machine_flag: str
    #: Checks of a skipped decision that make it ``suppressed`` (a send policy's).
    policy_checks: Collection[str]

    def every_event(self) -> list[str]:
        return sorted({n for names in self.events.values() for n in names} | set(self.answers))


def _flag(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
    return sa.func.max(sa.case((condition, 1), else_=0))


def _per_key(names: FunnelNames) -> sa.Subquery:
    """One row per idempotency key that any counted event carries: 1 or 0 per stage."""
    e = schema.events
    key = e.c.properties["idempotency_key"].as_string()
    # SQLite reads a JSON true as 1, PostgreSQL's ->> as 'true'.
    machine = sa.func.coalesce(
        sa.cast(e.c.properties[names.machine_flag].as_string(), sa.String), ""
    ).in_(["true", "1"])
    opened = sorted(names.events.get("opened", ()))
    columns = [
        _flag(e.c.name.in_(sorted(names.events.get(stage, ())))).label(stage)
        for stage in EVENT_STAGES
        if stage != "opened"
    ]
    return (
        sa.select(
            key.label("key"),
            _flag(sa.and_(e.c.name.in_(opened), sa.not_(machine))).label("opened"),
            _flag(sa.and_(e.c.name.in_(opened), machine)).label("machine_opened"),
            _flag(e.c.name.in_(sorted(names.answers))).label("answered"),
            *columns,
        )
        .where(e.c.name.in_(names.every_event()), key.is_not(None))
        .group_by(key)
        .subquery("per_key")
    )


def week_of(store: Store, moment: Any) -> sa.ColumnElement[str]:
    """The Monday (``YYYY-MM-DD``, UTC) of the week ``moment`` falls in."""
    if store.dialect == "postgresql":
        return sa.func.to_char(sa.func.date_trunc("week", moment), "YYYY-MM-DD")
    # 'weekday 0' moves to the coming Sunday (or stays on one); six days back is its Monday.
    return sa.func.date(moment, "weekday 0", "-6 days")


def _dimension(
    store: Store,
    by: str,
    *,
    touch: sa.ColumnElement[Any],
    channel: sa.ColumnElement[Any],
    moment: sa.ColumnElement[Any],
) -> sa.ColumnElement[Any]:
    if by == "touch":
        return touch
    if by == "channel":
        return channel
    if by == "locale":
        return sa.func.coalesce(schema.contacts.c.locale, "")
    if by == "tier":
        return sa.func.coalesce(schema.tier_states.c.tier, "")
    if by == "week":
        return week_of(store, moment)
    if by == "all":
        return sa.literal("all", sa.String)
    raise ValueError(f"a funnel is grouped by one of {', '.join(DIMENSIONS)}, not {by!r}")


def funnel_counts(
    store: Store,
    *,
    by: str,
    names: FunnelNames,
    channels: Mapping[str, str],
    since: datetime | None = None,
    until: datetime | None = None,
    segment: str | None = None,
    segments: SegmentSet | None = None,
    now: datetime | None = None,
) -> dict[str, dict[str, int]]:
    """Every stage's count per value of the dimension ``by`` (or ``"all"``).

    Outbox rows queued in ``[since, until)`` are counted by where they got to (their status
    and the events carrying their key); the decisions recorded in the range add
    ``deferred`` and ``suppressed`` (``channels`` maps each touch to its channel, since a
    decision does not name one). ``segment`` (a named segment of ``segments``, asked at
    ``now``) keeps only the rows of contacts in it. Locale and tier are the contact's and its
    account's now.
    """
    o, c, ts, d = schema.outbox, schema.contacts, schema.tier_states, schema.decisions
    per_key = _per_key(names)
    params: dict[str, Any] = {}
    members: sa.Select[tuple[str]] | None = None
    if segment is not None:
        if segments is None or now is None:
            raise ValueError("a funnel per segment needs the program's segments and a now")
        compiled = compile_segment(
            segments.expr(segment), dialect_name=store.dialect, segments=segments
        )
        members, params = compiled.contacts, compiled.params(now)

    dim = _dimension(store, by, touch=o.c.touch, channel=o.c.channel, moment=o.c.created_at)
    joined = (
        o.outerjoin(per_key, per_key.c.key == o.c.idempotency_key)
        .outerjoin(c, c.c.id == o.c.contact_id)
        .outerjoin(ts, ts.c.account_id == sa.func.coalesce(o.c.account_id, c.c.account_id))
    )

    def total(column: Any) -> sa.ColumnElement[int]:
        return sa.func.coalesce(sa.func.sum(column), 0)

    rows = (
        sa.select(
            dim.label("value"),
            sa.func.count().label("queued"),
            total(sa.case((o.c.status == OutboxStatus.SENT, 1), else_=0)).label("sent"),
            total(sa.case((o.c.status == OutboxStatus.DEAD, 1), else_=0)).label("failed"),
            *(
                total(per_key.c[stage]).label(stage)
                for stage in (*EVENT_STAGES, "machine_opened", "answered")
            ),
        )
        .select_from(joined)
        .group_by(dim)
    )
    rows = within(rows, o.c.created_at, since, until)
    if members is not None:
        rows = rows.where(o.c.contact_id.in_(members))

    touch_channel = (
        sa.case(
            *((d.c.touch == touch, channel) for touch, channel in sorted(channels.items())),
            else_="",
        )
        if channels
        else sa.literal("", sa.String)
    )
    d_dim = _dimension(store, by, touch=d.c.touch, channel=touch_channel, moment=d.c.at)
    suppressed = sa.and_(d.c.outcome == "skipped", _last_check(store).in_(names.policy_checks))
    decided = (
        sa.select(
            d_dim.label("value"),
            total(sa.case((d.c.outcome == "deferred", 1), else_=0)).label("deferred"),
            total(sa.case((suppressed, 1), else_=0)).label("suppressed"),
        )
        .select_from(
            d.outerjoin(c, c.c.id == d.c.contact_id).outerjoin(
                ts, ts.c.account_id == c.c.account_id
            )
        )
        .where(d.c.outcome.in_(["deferred", "skipped"]))
        .group_by(d_dim)
    )
    decided = within(decided, d.c.at, since, until)
    if members is not None:
        decided = decided.where(d.c.contact_id.in_(members))

    found: dict[str, dict[str, int]] = {}
    with store.read() as conn:
        for row in conn.execute(rows, params):
            found[str(row.value)] = {stage: int(row._mapping.get(stage, 0)) for stage in STAGES}
        for row in conn.execute(decided, params):
            if not (row.deferred or row.suppressed):
                continue
            counts = found.setdefault(str(row.value), dict.fromkeys(STAGES, 0))
            counts["deferred"] += int(row.deferred)
            counts["suppressed"] += int(row.suppressed)
    return found


def _last_check(store: Store) -> sa.ColumnElement[str]:
    """The name of the last check of a recorded decision (the one that settled it)."""
    record = schema.decisions.c.record
    if store.dialect == "postgresql":
        return sa.literal_column("(decisions.record -> 'checks' -> -1 ->> 'name')", sa.String)
    return sa.func.json_extract(record, "$.checks[#-1].name")


def within(
    query: sa.Select[Any], column: Any, since: datetime | None, until: datetime | None
) -> sa.Select[Any]:
    if since is not None:
        query = query.where(column >= since)
    if until is not None:
        query = query.where(column < until)
    return query


def plus_days(store: Store, moment: Any, days: int) -> Any:
    if store.dialect == "postgresql":
        return moment + sa.text(f"interval '{int(days)} days'")
    # Written as the column is ("YYYY-MM-DD HH:MM:SS.ffffff"), so text comparison holds.
    return sa.func.strftime("%Y-%m-%d %H:%M:%S", moment, f"+{int(days)} days").concat(
        sa.func.substr(moment, 20)
    )


def _hours_between(store: Store, start: Any, end: Any) -> Any:
    if store.dialect == "postgresql":
        return sa.extract("epoch", end - start) / 3600.0
    return (sa.func.julianday(end) - sa.func.julianday(start)) * 24.0


def goal_counts(
    store: Store,
    *,
    touches: Collection[str],
    goal_touches: Collection[str],
    event: str,
    within_days: int,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, dict[str, float]]:
    """Per touch of ``touches``: its messages sent (in ``[since, until)``), how many
    converted (the recipient's account, or the contact without one, recorded ``event`` after
    the send and within ``within_days``: every-touch attribution), how many were the last
    message of ``goal_touches`` sent before that conversion (last-touch), and the mean hours
    to convert. One statement."""
    o, d, e = schema.outbox, schema.deliveries, schema.events
    sent = (
        sa.select(
            o.c.id,
            o.c.touch,
            o.c.contact_id,
            o.c.account_id,
            sa.type_coerce(d.c.at, schema.UTCDateTime).label("sent_at"),
        )
        .join(d, sa.and_(d.c.outbox_id == o.c.id, d.c.status == OutboxStatus.SENT))
        .where(o.c.touch.in_(sorted(set(goal_touches) | set(touches))))
        .subquery("sent")
    )
    same_subject = sa.or_(
        sa.and_(sent.c.account_id.is_not(None), e.c.account_id == sent.c.account_id),
        sa.and_(sent.c.account_id.is_(None), e.c.contact_id == sent.c.contact_id),
    )
    first = (
        sa.select(
            sent.c.id,
            sent.c.touch,
            sent.c.contact_id,
            sent.c.account_id,
            sent.c.sent_at,
            sa.func.min(e.c.occurred_at).label("converted_at"),
        )
        .select_from(
            sent.outerjoin(
                e,
                sa.and_(
                    e.c.name == event,
                    same_subject,
                    e.c.occurred_at > sent.c.sent_at,
                    e.c.occurred_at <= plus_days(store, sent.c.sent_at, within_days),
                ),
            )
        )
        .where(sent.c.touch.in_(sorted(touches)))
        .group_by(sent.c.id, sent.c.touch, sent.c.contact_id, sent.c.account_id, sent.c.sent_at)
    )
    first = within(first, sent.c.sent_at, since, until)
    conv = first.subquery("conv")
    later = sent.alias("later")
    # Last touch: no other message aimed at the same goal reached the same subject between
    # this one and the conversion.
    overtaken = sa.exists().where(
        later.c.touch.in_(sorted(goal_touches)),
        later.c.id != conv.c.id,
        sa.or_(
            sa.and_(conv.c.account_id.is_not(None), later.c.account_id == conv.c.account_id),
            sa.and_(conv.c.account_id.is_(None), later.c.contact_id == conv.c.contact_id),
        ),
        later.c.sent_at > conv.c.sent_at,
        later.c.sent_at < conv.c.converted_at,
    )
    converted = conv.c.converted_at.is_not(None)
    query = sa.select(
        conv.c.touch,
        sa.func.count().label("sent"),
        sa.func.coalesce(sa.func.sum(sa.case((converted, 1), else_=0)), 0).label("converted"),
        sa.func.coalesce(
            sa.func.sum(sa.case((sa.and_(converted, sa.not_(overtaken)), 1), else_=0)), 0
        ).label("last_touch"),
        sa.func.avg(_hours_between(store, conv.c.sent_at, conv.c.converted_at)).label("hours"),
    ).group_by(conv.c.touch)
    with store.read() as conn:
        return {
            row.touch: {
                "sent": int(row.sent),
                "converted": int(row.converted),
                "last_touch": int(row.last_touch),
                "hours": float(row.hours) if row.hours is not None else float("nan"),
            }
            for row in conn.execute(query)
        }


def sends_per_day(
    store: Store, *, since: datetime | None = None, until: datetime | None = None
) -> list[tuple[str, str, int]]:
    """(day ``YYYY-MM-DD`` UTC, channel, messages sent that day), in day order."""
    d = schema.deliveries
    day = (
        sa.func.to_char(d.c.at, "YYYY-MM-DD")
        if store.dialect == "postgresql"
        else sa.func.date(d.c.at)
    )
    query = (
        sa.select(day.label("day"), d.c.channel, sa.func.count().label("sent"))
        .where(d.c.status == OutboxStatus.SENT)
        .group_by(day, d.c.channel)
        .order_by(day, d.c.channel)
    )
    query = within(query, d.c.at, since, until)
    with store.read() as conn:
        return [(str(r.day), r.channel, int(r.sent)) for r in conn.execute(query)]


def sent_per_week(
    store: Store,
    *,
    channels: Collection[str],
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[tuple[str, str, int]]:
    """(week's Monday, the account's ``owner`` trait, messages of ``channels`` sent that
    week): a CSM's tasks per week, when ``channels`` are the CSM channels."""
    d, o, a = schema.deliveries, schema.outbox, schema.accounts
    week = week_of(store, d.c.at)
    owner = sa.func.coalesce(a.c.traits["owner"].as_string(), "")
    query = (
        sa.select(week.label("week"), owner.label("owner"), sa.func.count().label("sent"))
        .select_from(d.join(o, o.c.id == d.c.outbox_id).outerjoin(a, a.c.id == o.c.account_id))
        .where(d.c.status == OutboxStatus.SENT, d.c.channel.in_(sorted(channels)))
        .group_by(week, owner)
        .order_by(week, owner)
    )
    query = within(query, d.c.at, since, until)
    with store.read() as conn:
        return [(str(r.week), str(r.owner), int(r.sent)) for r in conn.execute(query)]


def nps_counts(
    store: Store,
    *,
    event: str,
    by: str,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, dict[str, int]]:
    """Answers of ``event`` (``properties.score`` 0-10) per ``by`` (``plan``: the account's
    plan trait, ``tier``, ``week``, ``month``, ``all``): promoters (9-10), detractors (0-6)
    and how many answered. Only each contact's latest answer in the range counts
    (:func:`onetomany.store.queries.nps.score_counts`)."""
    # Imported here: the nps module builds on this one's helpers.
    from onetomany.store.queries.nps import score_counts

    return {
        value: {
            "promoters": sum(n for score, n in scores.items() if score >= 9),
            "detractors": sum(n for score, n in scores.items() if score <= 6),
            "answered": sum(scores.values()),
        }
        for value, scores in score_counts(
            store, event=event, by=by, since=since, until=until
        ).items()
    }


def stage_durations(store: Store) -> list[tuple[str, str, int, float]]:
    """(journey, stage, accounts that completed it, their mean days in it), from the
    journey history: each completion paired with the entry it closes."""
    h = schema.journey_history
    enter, done = h.alias("enter"), h.alias("done")
    days = (
        sa.extract("epoch", done.c.at - enter.c.at) / 86400.0
        if store.dialect == "postgresql"
        else sa.func.julianday(done.c.at) - sa.func.julianday(enter.c.at)
    )
    query = (
        sa.select(
            enter.c.journey,
            enter.c.stage,
            sa.func.count().label("completed"),
            sa.func.avg(days).label("days"),
        )
        .join(done, sa.and_(done.c.entry_id == enter.c.entry_id, done.c.action == "completed"))
        .where(enter.c.action == "entered")
        .group_by(enter.c.journey, enter.c.stage)
        .order_by(enter.c.journey, enter.c.stage)
    )
    with store.read() as conn:
        return [(r.journey, r.stage, int(r.completed), float(r.days)) for r in conn.execute(query)]
