"""The reference evaluator: one expression, one contact, in Python.

This module *is* the semantics; :mod:`.sql` compiles to SQL that must agree with it for every
contact (the property tests check exactly that). Values are:

- ``None``: missing or unknown (absent key, JSON null, a list or object, a failed operation);
- ``float``: every number (JSON integers too, so both evaluators do IEEE double arithmetic);
- ``str``; ``bool``; and :class:`Instant`, what ``last()`` yields.

Booleans with ``None`` form SQL's three-valued logic; :func:`evaluate` collapses the result,
so a contact matches only when it is ``True``.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs

from onetomany.errors import ConfigError
from onetomany.model import Account, Contact, Event
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
from onetomany.rules.segments.dates import epoch, iso_epoch, whole_days
from onetomany.rules.segments.parser import parse

if TYPE_CHECKING:
    from onetomany.rules.segments.named import SegmentSet


@attrs.frozen
class Instant:
    """A point in time (whole seconds since the epoch), the value of ``last()``."""

    epoch: int


Value = float | str | bool | Instant | None


def _aware_stages(
    _profile: Profile, _attribute: attrs.Attribute[Any], stages: Mapping[str, tuple[str, datetime]]
) -> None:
    for journey, (_stage, entered_at) in stages.items():
        if entered_at.tzinfo is None or entered_at.utcoffset() is None:
            raise ValueError(
                f"stages[{journey!r}]: entered_at {entered_at.isoformat()} has no timezone; "
                "pass an aware datetime"
            )


@attrs.frozen(kw_only=True)
class Profile:
    """What one contact's segments are evaluated over.

    ``events`` must hold at least the events that the expression's ``count()`` and ``last()``
    look at: those of the contact's account (matched on ``Event.account_id ==
    contact.account_id``) and those of the contact (``Event.contact_id == contact.id``).
    Others are ignored, so handing over a larger list is harmless.

    ``tier`` is the account's current tier (``tier_states.tier``: "tech", "low", "mid" or
    "high"), None when it has none. ``stages`` maps a journey name to the account's current
    stage in it and when it entered that stage (``journey_states``); a journey the account is
    not in is simply absent. Both belong to the contact's ``account_id``, whether or not
    ``account`` is given. :func:`~onetomany.store.profiles.load_profiles` builds profiles
    with all of this from a store.
    """

    contact: Contact
    account: Account | None = None
    events: Sequence[Event] = ()
    tier: str | None = None
    stages: Mapping[str, tuple[str, datetime]] = attrs.field(factory=dict, validator=_aware_stages)
    #: The account's health scores, ``(at, score)``, in any order (``health_scores``).
    health: Sequence[tuple[datetime, float]] = ()


def evaluate(
    expr: Expr | str,
    profile: Profile,
    *,
    now: datetime,
    segments: SegmentSet | None = None,
) -> bool:
    """Whether ``profile`` is in the segment ``expr``: True only when the result is true.

    ``segments`` resolves ``segment("name")`` references; without it they are a ConfigError.
    """
    node = parse(expr) if isinstance(expr, str) else expr
    return _Evaluator(profile, now, segments).truth(node) is True


def value_of(
    expr: Expr,
    profile: Profile,
    *,
    now: datetime,
    segments: SegmentSet | None = None,
) -> Value:
    """The value of any (sub-)expression for ``profile``, uncollapsed: ``None`` is unknown.

    What :func:`evaluate` computes on the way; :mod:`onetomany.cli.explain` uses it to show why
    a contact is outside a segment, leaf by leaf.
    """
    return _Evaluator(profile, now, segments).value(expr)


def normalize(value: Any) -> Value:
    """A stored trait or column value as the language sees it."""
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        try:
            return float(value)
        except OverflowError:  # an integer beyond a double's range
            return None
    return None  # None, lists, objects: not values the language compares


def _kind(value: Value) -> str | None:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return None


_ORDERINGS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def compare(op: str, left: Value, right: Value) -> bool | None:
    """``left op right``: None unless both are of the same kind; booleans only ``==``/``!=``."""
    kind = _kind(left)
    if kind is None or kind != _kind(right):
        return None
    if op == "==":
        return left == right
    if op == "!=":
        return left != right
    if kind == "bool":
        return None
    return _ORDERINGS[op](left, right)


def arith(op: str, left: Value, right: Value) -> float | None:
    if not isinstance(left, float) or isinstance(left, bool):
        return None
    if not isinstance(right, float) or isinstance(right, bool):
        return None
    if op == "+":
        return left + right
    if op == "-":
        return left - right
    if op == "*":
        return left * right
    return None if right == 0 else left / right


def and3(left: bool | None, right: bool | None) -> bool | None:
    if left is False or right is False:
        return False
    if left is None or right is None:
        return None
    return True


def or3(left: bool | None, right: bool | None) -> bool | None:
    if left is True or right is True:
        return True
    if left is None or right is None:
        return None
    return False


def not3(value: bool | None) -> bool | None:
    return None if value is None else not value


class _Evaluator:
    def __init__(self, profile: Profile, now: datetime, segments: SegmentSet | None) -> None:
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError(f"now={now.isoformat()} has no timezone; pass an aware datetime")
        self.profile = profile
        self.now = now
        self.now_epoch = epoch(now)
        self.segments = segments

    def truth(self, node: Expr) -> bool | None:
        value = self.value(node)
        return value if isinstance(value, bool) else None

    def value(self, node: Expr) -> Value:
        match node:
            case Literal(raw):
                return normalize(raw)
            case Field():
                return self.field(node)
            case Neg(operand):
                number = self.value(operand)
                return -number if isinstance(number, float) else None
            case Arith(op, left, right):
                return arith(op, self.value(left), self.value(right))
            case Compare(op, left, right):
                return compare(op, self.value(left), self.value(right))
            case In(operand, items, negated):
                subject = self.value(operand)
                # The OR of one == per item, as SQL's IN: no match and an item of another
                # kind (or null) leaves the answer unknown.
                found: bool | None = False
                for item in items:
                    found = or3(found, compare("==", subject, normalize(item.value)))
                return not3(found) if negated else found
            case Between(operand, low, high, negated):
                subject = self.value(operand)
                inside = and3(
                    compare(">=", subject, self.value(low)),
                    compare("<=", subject, self.value(high)),
                )
                return not3(inside) if negated else inside
            case And(left, right):
                return and3(self.truth(left), self.truth(right))
            case Or(left, right):
                return or3(self.truth(left), self.truth(right))
            case Not(operand):
                return not3(self.truth(operand))
            case Exists(operand, missing):
                return (self.value(operand) is None) is missing
            case DaysSince(operand):
                return self.days_since(self.value(operand))
            case Count(event, days, by):
                since = None if days is None else self.now - timedelta(days=days)
                return float(sum(1 for _ in self.events(event, by, since)))
            case Last(event, by):
                times = [e.occurred_at for e in self.events(event, by, None)]
                return Instant(epoch(max(times))) if times else None
            case SegmentRef(name):
                return self.segment(name)
            case CurrentTier():
                return normalize(self.profile.tier)
            case StageOf(journey):
                current = self.profile.stages.get(journey)
                return None if current is None else normalize(current[0])
            case DaysInStage(journey):
                current = self.profile.stages.get(journey)
                if current is None:
                    return None
                return float(whole_days(self.now_epoch, epoch(current[1])))
            case Health():
                return self.health_at(self.now)
            case HealthTrend(days):
                latest = self.health_at(self.now)
                before = self.health_at(self.now - timedelta(days=days))
                return None if latest is None or before is None else latest - before
        raise TypeError(f"not a segment expression node: {node!r}")

    def health_at(self, moment: datetime) -> float | None:
        """The account's latest health score at or before ``moment``, or None (an account
        has one score per instant)."""
        found = [(at, score) for at, score in self.profile.health if at <= moment]
        return float(max(found, key=lambda item: item[0])[1]) if found else None

    def field(self, node: Field) -> Value:
        if node.subject == "contact":
            subject: Contact | Account | None = self.profile.contact
        else:
            subject = self.profile.account
        if subject is None:
            return None
        if node.column:
            return normalize(getattr(subject, node.path[0]))
        current: Any = subject.traits
        for name in node.path:
            if not isinstance(current, Mapping) or name not in current:
                return None
            current = current[name]
        return normalize(current)

    def days_since(self, value: Value) -> float | None:
        if isinstance(value, Instant):
            then: int | None = value.epoch
        elif isinstance(value, str):
            then = iso_epoch(value)
        else:
            then = None
        return None if then is None else float(whole_days(self.now_epoch, then))

    def events(self, name: str, by: By, since: datetime | None) -> list[Event]:
        """Events named ``name`` of the contact's account (or the contact), in the window
        ``[since, now]``; events after ``now`` never count."""
        contact = self.profile.contact
        if by == "account":
            if contact.account_id is None:
                return []
            owner: Callable[[Event], bool] = lambda e: e.account_id == contact.account_id  # noqa: E731
        else:
            owner = lambda e: e.contact_id == contact.id  # noqa: E731
        return [
            e
            for e in self.profile.events
            if e.name == name
            and owner(e)
            and e.occurred_at <= self.now
            and (since is None or e.occurred_at >= since)
        ]

    def segment(self, name: str) -> bool:
        if self.segments is None or name not in self.segments:
            raise ConfigError(f'segment("{name}") names no known segment')
        # A reference is collapsed like a top-level result: in the segment or not, never
        # unknown, so `not segment("x")` is everyone outside x.
        return self.truth(self.segments.expr(name)) is True
