"""The syntax tree of a segment expression: frozen attrs values, and their canonical text.

Nodes are plain values so that two parses of the same text compare equal, an expression can
be a dict key (the SQL compiler caches compiled segments by node), and :func:`unparse`
followed by :func:`~onetomany.rules.segments.parser.parse` gives the same tree back.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal as TypingLiteral
from typing import TypeAlias

import attrs

Scalar: TypeAlias = int | float | str | bool | None
Subject: TypeAlias = TypingLiteral["account", "contact"]
By: TypeAlias = TypingLiteral["account", "contact"]

#: Fields of a subject that are table columns; any other name is a trait.
COLUMNS: dict[str, tuple[str, ...]] = {
    "contact": ("id", "account_id", "name", "email", "phone", "role", "locale", "timezone"),
    "account": ("id", "name"),
}
ARITHMETIC = ("+", "-", "*", "/")
COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")


def _typed(value: Scalar) -> tuple[type, Scalar]:
    # 1, 1.0 and True are equal in Python; in the language they are not the same literal.
    return (type(value), value)


@attrs.frozen
class Literal:
    value: Scalar = attrs.field(eq=_typed)


@attrs.frozen
class Field:
    """``contact.role`` (a column) or ``account.plan`` / ``account.billing.overdue`` (a trait)."""

    subject: Subject
    path: tuple[str, ...]
    column: bool = False


@attrs.frozen
class Neg:
    operand: Expr


@attrs.frozen
class Arith:
    op: str
    left: Expr
    right: Expr


@attrs.frozen
class Compare:
    op: str
    left: Expr
    right: Expr


@attrs.frozen
class In:
    operand: Expr
    items: tuple[Literal, ...]
    negated: bool = False


@attrs.frozen
class Between:
    operand: Expr
    low: Expr
    high: Expr
    negated: bool = False


@attrs.frozen
class And:
    left: Expr
    right: Expr


@attrs.frozen
class Or:
    left: Expr
    right: Expr


@attrs.frozen
class Not:
    operand: Expr


@attrs.frozen
class Exists:
    """``exists(x)``, or ``missing(x)`` when ``missing`` is set: never unknown."""

    operand: Expr
    missing: bool = False


@attrs.frozen
class DaysSince:
    operand: Expr


@attrs.frozen
class Count:
    event: str
    days: int | None = None
    by: By = "account"


@attrs.frozen
class Last:
    event: str
    by: By = "account"


@attrs.frozen
class SegmentRef:
    name: str


@attrs.frozen
class CurrentTier:
    """``tier()``: the service tier the contact's account is currently served at."""


@attrs.frozen
class StageOf:
    """``stage("journey")``: the name of the account's current stage in that journey."""

    journey: str


@attrs.frozen
class DaysInStage:
    """``days_in_stage("journey")``: whole days since the account entered its current stage."""

    journey: str


@attrs.frozen
class Health:
    """``health()``: the account's latest health score (0-100) at or before now."""


@attrs.frozen
class HealthTrend:
    """``health_trend(30)``: the latest health score minus the latest one at or before
    ``days`` days ago."""

    days: int


Expr: TypeAlias = (
    Literal
    | Field
    | Neg
    | Arith
    | Compare
    | In
    | Between
    | And
    | Or
    | Not
    | Exists
    | DaysSince
    | Count
    | Last
    | SegmentRef
    | CurrentTier
    | StageOf
    | DaysInStage
    | Health
    | HealthTrend
)


def children(node: Expr) -> tuple[Expr, ...]:
    """The direct sub-expressions of ``node`` (list items included)."""
    match node:
        case Neg(operand) | Not(operand) | Exists(operand) | DaysSince(operand):
            return (operand,)
        case Arith(_, left, right) | Compare(_, left, right) | And(left, right) | Or(left, right):
            return (left, right)
        case In(operand, items):
            return (operand, *items)
        case Between(operand, low, high):
            return (operand, low, high)
    return ()


def walk(node: Expr) -> Iterator[Expr]:
    """``node`` and every node below it, depth first."""
    yield node
    for child in children(node):
        yield from walk(child)


# -- canonical text -------------------------------------------------------------------------


def _string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    escaped = escaped.replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    return f'"{escaped}"'


def _scalar(value: Scalar) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _string(value)
    return repr(value)


def _atomic(node: Expr) -> bool:
    if isinstance(node, Literal):
        # "-5" reads back as the literal -5, but "-5 * 2" must not absorb a negative literal.
        return not (isinstance(node.value, int | float) and _scalar(node.value).startswith("-"))
    return isinstance(
        node,
        Field
        | Exists
        | DaysSince
        | Count
        | Last
        | SegmentRef
        | CurrentTier
        | StageOf
        | DaysInStage
        | Health
        | HealthTrend,
    )


def _wrap(node: Expr) -> str:
    text = unparse(node)
    return text if _atomic(node) else f"({text})"


def _by(by: By) -> str:
    return "" if by == "account" else f', by="{by}"'


def unparse(node: Expr) -> str:
    """Canonical text of ``node``: every compound operand is parenthesised, so it reads back
    as exactly the same tree whatever the precedence rules."""
    match node:
        case Literal(value):
            return _scalar(value)
        case Field(subject, path, column):
            if not column and (path[0] in COLUMNS[subject] or path[0] == "traits"):
                return ".".join((subject, "traits", *path))
            return ".".join((subject, *path))
        case Neg(operand):
            return f"-({unparse(operand)})"
        case Arith(op, left, right) | Compare(op, left, right):
            return f"{_wrap(left)} {op} {_wrap(right)}"
        case In(operand, items, negated):
            listed = ", ".join(_scalar(item.value) for item in items)
            return f"{_wrap(operand)} {'not in' if negated else 'in'} [{listed}]"
        case Between(operand, low, high, negated):
            word = "not between" if negated else "between"
            return f"{_wrap(operand)} {word} {_wrap(low)} and {_wrap(high)}"
        case And(left, right):
            return f"{_wrap(left)} and {_wrap(right)}"
        case Or(left, right):
            return f"{_wrap(left)} or {_wrap(right)}"
        case Not(operand):
            return f"not {_wrap(operand)}"
        case Exists(operand, missing):
            return f"{'missing' if missing else 'exists'}({unparse(operand)})"
        case DaysSince(operand):
            return f"days_since({unparse(operand)})"
        case Count(event, days, by):
            window = "" if days is None else f", days={days}"
            return f"count({_string(event)}{window}{_by(by)})"
        case Last(event, by):
            return f"last({_string(event)}{_by(by)})"
        case SegmentRef(name):
            return f"segment({_string(name)})"
        case CurrentTier():
            return "tier()"
        case StageOf(journey):
            return f"stage({_string(journey)})"
        case DaysInStage(journey):
            return f"days_in_stage({_string(journey)})"
        case Health():
            return "health()"
        case HealthTrend(days):
            return f"health_trend({days})"
    raise TypeError(f"not a segment expression node: {node!r}")
