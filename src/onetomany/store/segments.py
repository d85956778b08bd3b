"""The population evaluator: a segment compiled to a SQLAlchemy Core condition on contacts.

JSON traits are dynamically typed, so every sub-expression compiles to a :class:`_Typed`: one
SQL expression per kind of value (number, string, boolean, instant), each NULL unless the
value is of that kind at run time. The Python evaluator's rules then translate one to one:
a comparison compares the kinds both sides can have and is NULL otherwise, which is exactly
"mixed kinds are unknown"; SQL's own three-valued AND/OR/NOT are the Python ones. Kinds a
node can never have are ``None`` at compile time, which keeps the generated SQL small.

Dates are parsed with substr() and integer arithmetic rather than the databases' date
functions: those accept different strings on SQLite and PostgreSQL, and PostgreSQL raises on
bad input where the language wants a missing value (rules in :mod:`.dates`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import ColumnElement

from onetomany.errors import ConfigError
from onetomany.rules.segments.ast import (
    And,
    Arith,
    Between,
    By,
    Compare,
    Count,
    CurrentTier,
    DaysInStage,
    DaysSince,
    Exists,
    Expr,
    Field,
    Health,
    HealthTrend,
    In,
    Last,
    Literal,
    Neg,
    Not,
    Or,
    SegmentRef,
    StageOf,
)
from onetomany.rules.segments.dates import SECONDS_PER_DAY, epoch
from onetomany.rules.segments.evaluate import normalize
from onetomany.rules.segments.parser import parse
from onetomany.store.schema import (
    UTCDateTime,
    accounts,
    contacts,
    events,
    health_scores,
    journey_states,
    tier_states,
)

if TYPE_CHECKING:
    from onetomany.rules.segments.named import SegmentSet
    from onetomany.store import Store

SQL = ColumnElement[Any]
DIALECTS = ("sqlite", "postgresql")
#: Added (in days) before the floor division of day counts and taken off after: it keeps the
#: dividend positive, where SQL's truncating division equals Python's floor division, while
#: the instant appears only once in the SQL (it may be a correlated subquery).
DAY_BIAS = 10_000_000
#: Contacts per query when a question is limited to given contacts (``among``).
AMONG_CHUNK = 1000

_NULL_BOOL: SQL = sa.cast(sa.null(), sa.Boolean)


@attrs.frozen
class _Typed:
    num: SQL | None = None
    str: SQL | None = None
    bool: SQL | None = None
    instant: SQL | None = None  # whole seconds since the epoch, an integer

    def parts(self) -> list[SQL]:
        return [p for p in (self.num, self.str, self.bool, self.instant) if p is not None]


def to_sql(
    expr: Expr | str,
    *,
    now: datetime,
    dialect_name: str,
    segments: SegmentSet | None = None,
) -> ColumnElement[bool]:
    """A condition true exactly for the contacts :func:`~.evaluate.evaluate` puts in ``expr``.

    Use it on ``contacts`` outer-joined to ``accounts`` (see :func:`population`); event
    aggregates, ``tier()`` and the journey calls are subqueries correlated to ``contacts``.
    ``dialect_name`` is ``"sqlite"`` or ``"postgresql"`` (``Store.dialect``). To ask the same
    question at many instants, :func:`compile_segment` compiles it once.
    """
    compiled = compile_segment(expr, dialect_name=dialect_name, segments=segments)
    return compiled.condition.params(compiled.params(now))


@attrs.frozen(eq=False)
class CompiledSegment:
    """A segment compiled once, to ask at any instant: ``now`` (and the windows of ``count()``)
    are bound parameters, so the statements are built, and compiled by SQLAlchemy, once.

    Execute :attr:`contacts` (contact ids), :attr:`contacts_among` (the same, among the ids
    bound to ``otm_ids``), :attr:`accounts` (ids of accounts with a contact in it) or
    :attr:`accounts_among` (the same, among the account ids bound to ``otm_ids``) with
    :meth:`params`.
    """

    condition: ColumnElement[bool]
    windows: tuple[int, ...]
    contacts: sa.Select[tuple[str]] = attrs.field(init=False)
    contacts_among: sa.Select[tuple[str]] = attrs.field(init=False)
    accounts: sa.Select[tuple[str]] = attrs.field(init=False)
    accounts_among: sa.Select[tuple[str]] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        chosen = population().where(self.condition)
        among = chosen.where(contacts.c.id.in_(sa.bindparam("otm_ids", expanding=True)))
        owners = (
            population()
            .with_only_columns(accounts.c.id)
            .where(accounts.c.id.is_not(None), self.condition)
            .distinct()
        )
        object.__setattr__(self, "contacts", chosen)
        object.__setattr__(self, "contacts_among", among)
        object.__setattr__(self, "accounts", owners)
        ids: sa.BindParameter[list[str]] = sa.bindparam("otm_ids", expanding=True)
        object.__setattr__(self, "accounts_among", owners.where(contacts.c.account_id.in_(ids)))

    def params(self, now: datetime) -> dict[str, Any]:
        """The parameter values that ask the question at ``now``."""
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError(f"now={now.isoformat()} has no timezone; pass an aware datetime")
        values: dict[str, Any] = {_NOW: now, _NOW_EPOCH: epoch(now)}
        for days in self.windows:
            values[_since(days)] = now - timedelta(days=days)
        return values


_NOW, _NOW_EPOCH = "otm_now", "otm_now_epoch"
# Compiled expressions without named segments; those with are kept by their SegmentSet, and go
# with it. An expression is a few KB of SQLAlchemy objects, so each map is bounded.
_COMPILED_PLAIN: dict[Any, CompiledSegment] = {}
_MAX_COMPILED = 512


def _since(days: int) -> str:
    return f"otm_since_{days}"


def compile_segment(
    expr: Expr | str, *, dialect_name: str, segments: SegmentSet | None = None
) -> CompiledSegment:
    """``expr`` compiled for ``dialect_name`` (with the named segments of ``segments``),
    cached: asking it again, at any instant, reuses the statements."""
    if dialect_name not in DIALECTS:
        raise ConfigError(f"segments compile to SQLite or PostgreSQL, not {dialect_name!r}")
    cache = _COMPILED_PLAIN if segments is None else segments.compiled_sql
    key = (expr, dialect_name)
    try:
        found = cache.get(key)
    except TypeError:  # an expression holding something unhashable: compiled every time
        return _compile(expr, dialect_name, segments)
    if found is None:
        found = _compile(expr, dialect_name, segments)
        if len(cache) >= _MAX_COMPILED:
            cache.pop(next(iter(cache)))
        cache[key] = found
    return found


def _compile(expr: Expr | str, dialect_name: str, segments: SegmentSet | None) -> CompiledSegment:
    node = parse(expr) if isinstance(expr, str) else expr
    compiler = _Compiler(dialect_name, segments)
    result = compiler.condition(node)
    condition = sa.false() if result is None else sa.func.coalesce(result, sa.false())
    return CompiledSegment(condition, tuple(sorted(compiler.windows)))


def population() -> sa.Select[tuple[str]]:
    """``SELECT contacts.id FROM contacts LEFT JOIN accounts``: what :func:`to_sql` filters."""
    joined = contacts.outerjoin(accounts, accounts.c.id == contacts.c.account_id)
    return sa.select(contacts.c.id).select_from(joined)


def matching_contact_ids(
    store: Store,
    expr: Expr | str,
    *,
    now: datetime,
    segments: SegmentSet | None = None,
    among: Iterable[str] | None = None,
) -> list[str]:
    """Ids of the contacts in ``store`` that are in the segment ``expr``, sorted.

    ``among`` limits the question to those contacts (a trigger's audience, say); it may be
    as long as the population: it is asked in chunks, with the expression compiled once.
    """
    compiled = compile_segment(expr, dialect_name=store.dialect, segments=segments)
    params = compiled.params(now)
    with store.engine.connect() as conn:
        if among is None:
            return sorted(conn.scalars(compiled.contacts, params))
        # Chunks keep each IN list under the drivers' bound-parameter limits.
        wanted = sorted(set(among))
        found: list[str] = []
        for start in range(0, len(wanted), AMONG_CHUNK):
            chunk = {**params, "otm_ids": wanted[start : start + AMONG_CHUNK]}
            found += conn.scalars(compiled.contacts_among, chunk)
        return sorted(found)


def accounts_meeting(
    store: Store,
    expr: Expr | str,
    *,
    now: datetime,
    segments: SegmentSet | None = None,
    among: Iterable[str] | None = None,
) -> frozenset[str]:
    """Ids of the accounts with at least one contact in segment expression ``expr``.

    ``among`` limits the question to those accounts (a steady journey round's), in chunks
    like :func:`matching_contact_ids`.
    """
    compiled = compile_segment(expr, dialect_name=store.dialect, segments=segments)
    params = compiled.params(now)
    with store.engine.connect() as conn:
        if among is None:
            return frozenset(conn.scalars(compiled.accounts, params))
        wanted = sorted(set(among))
        found: set[str] = set()
        for start in range(0, len(wanted), AMONG_CHUNK):
            chunk = {**params, "otm_ids": wanted[start : start + AMONG_CHUNK]}
            found.update(conn.scalars(compiled.accounts_among, chunk))
        return frozenset(found)


def account_numbers(
    store: Store, expr: Expr | str, *, now: datetime, segments: SegmentSet | None = None
) -> dict[str, float]:
    """The number ``expr`` gives for each account with a contact, where it is one (a
    missing value, or one of another kind, leaves the account out). An expression over the
    account (its traits, its events, ``tier()``, ``health()``) is the same for each of its
    contacts; one that reads a contact takes the largest. One statement."""
    node = parse(expr) if isinstance(expr, str) else expr
    compiler = _Compiler(store.dialect, segments)
    number = compiler.value(node).num
    if number is None:
        return {}
    params: dict[str, Any] = {_NOW: now, _NOW_EPOCH: epoch(now)}
    for days in compiler.windows:
        params[_since(days)] = now - timedelta(days=days)
    query = (
        population()
        .with_only_columns(contacts.c.account_id, sa.func.max(number).label("value"))
        .where(contacts.c.account_id.is_not(None))
        .group_by(contacts.c.account_id)
    )
    with store.engine.connect() as conn:
        return {
            str(row.account_id): float(row.value)
            for row in conn.execute(query, params)
            if row.value is not None
        }


def _int(expr: Any) -> SQL:
    return sa.type_coerce(expr, sa.BigInteger())


def _float(expr: Any) -> SQL:
    return sa.type_coerce(expr, sa.Float())


def _bool_literal(value: bool) -> SQL:
    # A bound parameter rather than sa.true(): SQLAlchemy rewrites comparisons with true()
    # into IS tests, which are never NULL and would break three-valued logic.
    return sa.literal(value, sa.Boolean())


def _or_null(parts: Sequence[SQL]) -> SQL:
    return sa.or_(*parts) if parts else _NULL_BOOL


class _Compiler:
    def __init__(self, dialect: str, segments: SegmentSet | None) -> None:
        self.now = sa.bindparam(_NOW, type_=UTCDateTime())
        self.now_epoch = sa.bindparam(_NOW_EPOCH, type_=sa.BigInteger())
        # The day counts of count() windows, bound per question: their starts, by days.
        self.windows: dict[int, SQL] = {}
        self.pg = dialect == "postgresql"
        self.segments = segments
        self.compiled_segments: dict[str, SQL] = {}

    def condition(self, node: Expr) -> SQL | None:
        return self.value(node).bool

    def value(self, node: Expr) -> _Typed:
        match node:
            case Literal(raw):
                return self.literal(raw)
            case Field():
                return self.field(node)
            case Neg(operand):
                num = self.value(operand).num
                return _Typed(num=None if num is None else _float(-num))
            case Arith(op, left, right):
                return self.arith(op, self.value(left), self.value(right))
            case Compare(op, left, right):
                return _Typed(bool=self.compare(op, self.value(left), self.value(right)))
            case In(operand, items, negated):
                found = self.in_list(self.value(operand), items)
                return _Typed(bool=sa.not_(found) if negated else found)
            case Between(operand, low, high, negated):
                subject = self.value(operand)
                inside = sa.and_(
                    self.compare(">=", subject, self.value(low)),
                    self.compare("<=", subject, self.value(high)),
                )
                return _Typed(bool=sa.not_(inside) if negated else inside)
            case And(left, right):
                return _Typed(bool=sa.and_(self.truth(left), self.truth(right)))
            case Or(left, right):
                return _Typed(bool=sa.or_(self.truth(left), self.truth(right)))
            case Not(operand):
                return _Typed(bool=sa.not_(self.truth(operand)))
            case Exists(operand, missing):
                return _Typed(bool=self.exists(self.value(operand), missing))
            case DaysSince(operand):
                return self.days_since(self.value(operand))
            case Count(event, days, by):
                since = None
                if days is not None:
                    since = self.windows.setdefault(
                        days, sa.bindparam(_since(days), type_=UTCDateTime())
                    )
                count = self.events(sa.func.count(), event, by, since)
                return _Typed(num=_float(sa.cast(count, sa.Float())))
            case Last(event, by):
                return _Typed(instant=self.last(event, by))
            case SegmentRef(name):
                return _Typed(bool=self.segment(name))
            case CurrentTier():
                return _Typed(str=self.account_state(tier_states.c.tier))
            case StageOf(journey):
                return _Typed(str=self.account_state(journey_states.c.stage, journey))
            case DaysInStage(journey):
                entered = self.account_state(journey_states.c.entered_at, journey)
                return self.days_since(_Typed(instant=self.epoch_of(entered)))
            case Health():
                return _Typed(num=self.health_at(self.now))
            case HealthTrend(days):
                past = self.windows.setdefault(
                    days, sa.bindparam(_since(days), type_=UTCDateTime())
                )
                return _Typed(num=self.health_at(self.now) - self.health_at(past))
        raise TypeError(f"not a segment expression node: {node!r}")

    def truth(self, node: Expr) -> SQL:
        result = self.condition(node)
        return _NULL_BOOL if result is None else result

    # -- values ---------------------------------------------------------------------------

    def literal(self, raw: Any) -> _Typed:
        value = normalize(raw)
        if isinstance(value, bool):
            return _Typed(bool=_bool_literal(value))
        if isinstance(value, float):
            return _Typed(num=sa.literal(value, sa.Float()))
        if isinstance(value, str):
            return _Typed(str=sa.literal(value, sa.String()))
        return _Typed()

    def field(self, node: Field) -> _Typed:
        table = contacts if node.subject == "contact" else accounts
        if node.column:
            return _Typed(str=sa.type_coerce(table.c[node.path[0]], sa.String()))
        return self.pg_trait(table, node.path) if self.pg else self.sqlite_trait(table, node.path)

    def sqlite_trait(self, table: sa.Table, path: tuple[str, ...]) -> _Typed:
        # Names are identifiers (the tokenizer guarantees it), so quoting cannot be escaped.
        json_path = "$" + "".join(f'."{name}"' for name in path)
        kind = sa.func.json_type(table.c.traits, json_path)
        raw = sa.func.json_extract(table.c.traits, json_path)
        return _Typed(
            num=_float(sa.case((kind.in_(("integer", "real")), sa.cast(raw, sa.Float())))),
            str=sa.type_coerce(sa.case((kind == "text", raw)), sa.String()),
            bool=sa.case(
                (kind == "true", _bool_literal(True)), (kind == "false", _bool_literal(False))
            ),
        )

    def pg_trait(self, table: sa.Table, path: tuple[str, ...]) -> _Typed:
        document = sa.cast(table.c.traits, JSONB)
        names = [sa.literal(name, sa.Text()) for name in path]
        kind = sa.func.jsonb_typeof(sa.func.jsonb_extract_path(document, *names))
        text = sa.func.jsonb_extract_path_text(document, *names)
        return _Typed(
            num=_float(sa.case((kind == "number", sa.cast(text, sa.Float())))),
            str=sa.type_coerce(sa.case((kind == "string", text)), sa.String()),
            bool=sa.case((kind == "boolean", sa.cast(text, sa.Boolean()))),
        )

    def arith(self, op: str, left: _Typed, right: _Typed) -> _Typed:
        if left.num is None or right.num is None:
            return _Typed()
        if op == "+":
            return _Typed(num=_float(left.num + right.num))
        if op == "-":
            return _Typed(num=_float(left.num - right.num))
        if op == "*":
            return _Typed(num=_float(left.num * right.num))
        # NULLIF: division by zero is unknown, where PostgreSQL would raise.
        divisor = _float(sa.func.nullif(right.num, sa.literal(0.0, sa.Float())))
        return _Typed(num=_float(left.num / divisor))

    def days_since(self, value: _Typed) -> _Typed:
        if value.instant is not None:
            then = value.instant
        elif value.str is not None:
            then = self.iso_epoch(value.str)
        else:
            return _Typed()
        bias = DAY_BIAS * SECONDS_PER_DAY
        days = _int(_int(self.now_epoch + bias - then) // SECONDS_PER_DAY) - DAY_BIAS
        return _Typed(num=_float(sa.cast(days, sa.Float())))

    # -- predicates -----------------------------------------------------------------------

    def string(self, expr: SQL) -> SQL:
        # Python orders strings by code point; so do SQLite (UTF-8 bytes) and PostgreSQL's
        # "C" collation, whatever the database's own collation.
        return sa.collate(expr, "C") if self.pg else expr

    def compare(self, op: str, left: _Typed, right: _Typed) -> SQL:
        branches: list[tuple[SQL, SQL]] = []
        pairs = [(left.num, right.num), (left.str, right.str)]
        if op in ("==", "!="):
            pairs.append((left.bool, right.bool))
        for index, (a, b) in enumerate(pairs):
            if a is None or b is None:
                continue
            if index == 1:
                a, b = self.string(a), self.string(b)
            test = sa.and_(a.is_not(None), b.is_not(None))
            branches.append((test, _COMPARE[op](a, b)))
        if not branches:
            return _NULL_BOOL
        if len(branches) == 1:
            # A side of another kind has a NULL here, so the comparison is NULL by itself.
            return branches[0][1]
        return sa.case(*branches)

    def in_list(self, value: _Typed, items: tuple[Literal, ...]) -> SQL:
        if not items:
            return _bool_literal(False)
        groups: dict[str, list[Any]] = {}
        has_null = False
        for item in items:
            normalized = normalize(item.value)
            kind = _kind_name(normalized)
            if kind is None:
                has_null = True
            else:
                groups.setdefault(kind, []).append(normalized)
        # The OR of one == per item: only items of the value's kind can match; any other
        # item (or null) turns "no match" into unknown, exactly as in Python.
        terms: list[SQL] = []
        for kind, values in groups.items():
            part: SQL | None = getattr(value, kind)
            if part is None:
                terms.append(_NULL_BOOL)
            else:
                literals = [self.literal(v) for v in values]
                terms.append(part.in_([getattr(lit, kind) for lit in literals]))
        if has_null:
            terms.append(_NULL_BOOL)
        return _or_null(terms)

    def exists(self, value: _Typed, missing: bool) -> SQL:
        parts = value.parts()
        if not parts:
            return _bool_literal(missing)
        if missing:
            return sa.and_(*(p.is_(None) for p in parts))
        return sa.or_(*(p.is_not(None) for p in parts))

    def segment(self, name: str) -> SQL:
        if self.segments is None or name not in self.segments:
            raise ConfigError(f'segment("{name}") names no known segment')
        if name not in self.compiled_segments:
            inner = self.condition(self.segments.expr(name))
            # Collapsed like a top-level result: in the segment or not, never NULL.
            self.compiled_segments[name] = (
                _bool_literal(False) if inner is None else sa.func.coalesce(inner, False)
            )
        return self.compiled_segments[name]

    # -- events ---------------------------------------------------------------------------

    def events(self, column: SQL, name: str, by: By, since: SQL | None) -> SQL:
        """A scalar subquery of ``column`` over the events named ``name`` of the contact's
        account (or the contact) that happened in ``[since, now]``."""
        owner = (
            events.c.account_id == contacts.c.account_id
            if by == "account"
            else events.c.contact_id == contacts.c.id
        )
        conditions = [owner, events.c.name == name, events.c.occurred_at <= self.now]
        if since is not None:
            conditions.append(events.c.occurred_at >= since)
        return sa.select(column).select_from(events).where(*conditions).scalar_subquery()

    def last(self, name: str, by: By) -> SQL:
        return self.epoch_of(self.events(sa.func.max(events.c.occurred_at), name, by, None))

    def epoch_of(self, moment: SQL) -> SQL:
        """Whole seconds since the epoch of a stored (UTC) timestamp, rounded down."""
        if self.pg:
            return _int(sa.cast(sa.func.floor(sa.extract("epoch", moment)), sa.BigInteger()))
        # SQLite keeps 'YYYY-MM-DD HH:MM:SS.ffffff'; %s rounds down to whole seconds.
        return _int(sa.cast(sa.func.strftime("%s", moment), sa.BigInteger()))

    # -- account state --------------------------------------------------------------------

    def account_state(self, column: sa.Column[Any], journey: str | None = None) -> SQL:
        """``column`` of the contact's account's row in ``tier_states`` (or, given a
        journey, in ``journey_states``): a scalar subquery on the table's primary key, NULL
        when there is no row."""
        table = column.table
        assert isinstance(table, sa.Table)
        conditions = [table.c.account_id == contacts.c.account_id]
        if journey is not None:
            conditions.append(table.c.journey == journey)
        return sa.select(column).where(*conditions).scalar_subquery()

    def health_at(self, moment: SQL) -> SQL:
        """The contact's account's latest health score at or before ``moment``: a scalar
        subquery (NULL without one) on the (account, at) index."""
        h = health_scores
        latest = (
            sa.select(h.c.score)
            .where(h.c.account_id == contacts.c.account_id, h.c.at <= moment)
            .order_by(h.c.at.desc())
            .limit(1)
            .scalar_subquery()
        )
        return _float(latest)

    # -- dates (mirrors dates.iso_epoch) --------------------------------------------------

    def iso_shape(self, s: SQL) -> SQL:
        if self.pg:
            pattern = (
                r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"
                r"([T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})?)?$"
            )
            return s.op("~")(pattern)
        digit2 = "[0-9][0-9]"
        fraction = sa.func.substr(s, 21)
        after_fraction = sa.func.ltrim(fraction, "0123456789")
        has_fraction = sa.func.substr(s, 20, 1) == "."
        zone = sa.case((has_fraction, after_fraction), else_=sa.func.substr(s, 20))
        return sa.and_(
            sa.func.substr(s, 1, 10).op("GLOB")(f"{digit2}{digit2}-{digit2}-{digit2}"),
            sa.or_(
                sa.func.length(s) == 10,
                sa.and_(
                    sa.func.substr(s, 11, 9).op("GLOB")(f"[T ]{digit2}:{digit2}:{digit2}"),
                    sa.or_(
                        sa.not_(has_fraction),
                        sa.func.length(fraction) > sa.func.length(after_fraction),
                    ),
                    sa.or_(zone.in_(("", "Z")), zone.op("GLOB")(f"[+-]{digit2}:{digit2}")),
                ),
            ),
        )

    def iso_epoch(self, s: SQL) -> SQL:
        def part(start: Any, length: int) -> SQL:
            return _int(sa.cast(sa.func.substr(s, start, length), sa.BigInteger()))

        def time_part(start: int) -> SQL:
            # Date-only strings have no time; PostgreSQL cannot cast '' to a number.
            return _int(sa.case((sa.func.length(s) > 10, part(start, 2)), else_=0))

        size = sa.func.length(s)
        year, month, day = part(1, 4), part(6, 2), part(9, 2)
        hour, minute, second = time_part(12), time_part(15), time_part(18)
        has_zone = sa.and_(size > 19, sa.func.substr(s, size - 5, 1).in_(("+", "-")))
        # Guarded like the time: without a zone these characters may be "0." or ":0".
        zone_hour = _int(sa.case((has_zone, part(size - 4, 2)), else_=0))
        zone_minute = _int(sa.case((has_zone, part(size - 1, 2)), else_=0))
        zone_sign = sa.case((sa.func.substr(s, size - 5, 1) == "+", 1), else_=-1)
        offset = _int((zone_hour * 3600 + zone_minute * 60) * zone_sign)
        leap = sa.or_(sa.and_(year % 4 == 0, year % 100 != 0), year % 400 == 0)
        real_day = sa.case(
            (month == 2, sa.or_(day <= 28, sa.and_(day == 29, leap))),
            (month.in_((4, 6, 9, 11)), day <= 30),
            else_=day <= 31,
        )
        in_range = sa.and_(
            year >= 1,
            month.between(1, 12),
            day >= 1,
            real_day,
            hour <= 23,
            minute <= 59,
            second <= 59,
            zone_hour <= 23,
            zone_minute <= 59,
        )
        march_year = _int(year - sa.case((month <= 2, 1), else_=0))
        march_month = _int((month + 9) % 12)
        days = (
            march_year * 365
            + march_year // 4
            - march_year // 100
            + march_year // 400
            + (march_month * 153 + 2) // 5
            + day
            - 719469
        )
        seconds = _int(days * SECONDS_PER_DAY + hour * 3600 + minute * 60 + second - offset)
        # Nested CASEs: PostgreSQL may evaluate AND's operands in any order, and the casts
        # in in_range would raise on a string that failed the shape test.
        return _int(sa.case((self.iso_shape(s), sa.case((in_range, seconds)))))


_COMPARE: dict[str, Callable[[SQL, SQL], SQL]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _kind_name(value: Any) -> str | None:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, float):
        return "num"
    if isinstance(value, str):
        return "str"
    return None
