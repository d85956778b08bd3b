"""A static check of an expression against the trait types a program declares.

Evaluation never fails on a type mismatch (it yields unknown, so the contact is not in the
segment); that is safe but silent. This check turns the mismatches that can be seen before
any data exists into ConfigErrors, e.g. comparing a ``str`` trait with a number,
``days_since()`` of a trait that is not a date, or ``tier()`` with a name that is no tier.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from onetomany.errors import ConfigError
from onetomany.rules.segments.ast import (
    And,
    Arith,
    Between,
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
    unparse,
)
from onetomany.rules.segments.named import SegmentSet
from onetomany.rules.segments.parser import parse
from onetomany.rules.tiers import TIERS

TRAIT_TYPES = ("int", "float", "str", "bool", "date", "datetime")
_STATIC = {
    "int": "number",
    "float": "number",
    "str": "str",
    "bool": "bool",
    "date": "date",
    "datetime": "date",
}
#: Static types: "number", "str", "date" (a str holding a date), "bool", "instant" (last()),
#: "null" (the literal) and "any" (an undeclared trait: anything goes).
_NAMES = {
    "number": "a number",
    "str": "a string",
    "date": "a date",
    "bool": "a boolean",
    "instant": "an event time",
    "null": "null",
}


def check_types(
    expr: Expr | str,
    *,
    account_traits: Mapping[str, str] | None = None,
    contact_traits: Mapping[str, str] | None = None,
    segments: SegmentSet | None = None,
    journeys: Mapping[str, Iterable[str]] | None = None,
    file: str | None = None,
    key: str | None = None,
) -> list[ConfigError]:
    """Problems in ``expr`` given the declared trait types; an empty list when none.

    ``account_traits``/``contact_traits`` map a trait name (``"billing.overdue"`` for a
    nested one) to one of :data:`TRAIT_TYPES`. Undeclared traits may hold anything and are
    not checked. ``journeys`` (journey name to its stage names), when given, makes a
    ``stage()``/``days_in_stage()`` of an unknown journey, or ``stage()`` compared with a
    name that is not one of its stages, an error. ``file`` and ``key`` locate the errors.
    """
    node = parse(expr, file=file, key=key) if isinstance(expr, str) else expr
    known_journeys = None if journeys is None else {j: tuple(s) for j, s in journeys.items()}
    checker = _Checker(
        account_traits or {}, contact_traits or {}, segments, known_journeys, file, key
    )
    for subject, declared in (("account", checker.account), ("contact", checker.contact)):
        for name, type_name in declared.items():
            if type_name not in _STATIC:
                checker.error(
                    f"{subject} trait {name!r} is declared {type_name!r}; "
                    f"expected one of {', '.join(TRAIT_TYPES)}"
                )
    top = checker.infer(node)
    if top not in ("bool", "any"):
        checker.error(f"{unparse(node)} is {_NAMES[top]}, not a condition")
    return checker.errors


def _compatible(left: str, right: str) -> bool:
    text = {"str", "date"}
    return "any" in (left, right) or left == right or {left, right} <= text


class _Checker:
    def __init__(
        self,
        account: Mapping[str, str],
        contact: Mapping[str, str],
        segments: SegmentSet | None,
        journeys: Mapping[str, tuple[str, ...]] | None,
        file: str | None,
        key: str | None,
    ) -> None:
        self.account = account
        self.contact = contact
        self.segments = segments
        self.journeys = journeys
        self.file = file
        self.key = key
        self.errors: list[ConfigError] = []

    def error(self, reason: str) -> None:
        # "x between a and b" checks x twice; one mistake is reported once.
        if all(e.reason != reason for e in self.errors):
            self.errors.append(ConfigError(reason, file=self.file, key=self.key))

    def infer(self, node: Expr) -> str:
        match node:
            case Literal(value):
                if value is None:
                    return "null"
                if isinstance(value, bool):
                    return "bool"
                return "str" if isinstance(value, str) else "number"
            case Field(subject, path, column):
                if column:
                    return "str"
                declared = (self.account if subject == "account" else self.contact).get(
                    ".".join(path)
                )
                return _STATIC.get(declared or "", "any")
            case Neg(operand):
                self.number(operand, "'-'")
                return "number"
            case Arith(op, left, right):
                self.number(left, f"'{op}'")
                self.number(right, f"'{op}'")
                return "number"
            case Compare(op, left, right):
                self.compare(op, node, left, right)
                return "bool"
            case In(operand, items):
                for item in items:
                    self.compare("==", node, operand, item)
                return "bool"
            case Between(operand, low, high):
                self.compare(">=", node, operand, low)
                self.compare("<=", node, operand, high)
                return "bool"
            case And(left, right) | Or(left, right):
                self.condition(left)
                self.condition(right)
                return "bool"
            case Not(operand):
                self.condition(operand)
                return "bool"
            case Exists(operand):
                self.infer(operand)
                return "bool"
            case DaysSince(operand):
                kind = self.infer(operand)
                if kind not in ("date", "instant", "any"):
                    self.error(
                        f"days_since({unparse(operand)}) needs a date or datetime, "
                        f"but {unparse(operand)} is {_NAMES[kind]}"
                    )
                return "number"
            case Count():
                return "number"
            case Last():
                return "instant"
            case SegmentRef(name):
                if self.segments is not None and name not in self.segments:
                    self.error(f'segment("{name}") names no known segment')
                return "bool"
            case CurrentTier():
                return "str"
            case StageOf(journey):
                self.journey(node, journey)
                return "str"
            case DaysInStage(journey):
                self.journey(node, journey)
                return "number"
            case Health() | HealthTrend():
                return "number"
        raise TypeError(f"not a segment expression node: {node!r}")

    def number(self, node: Expr, operator: str) -> None:
        kind = self.infer(node)
        if kind not in ("number", "any"):
            self.error(f"{operator} needs numbers, but {unparse(node)} is {_NAMES[kind]}")

    def condition(self, node: Expr) -> None:
        kind = self.infer(node)
        if kind not in ("bool", "any"):
            self.error(f"{unparse(node)} is {_NAMES[kind]}, not a condition")

    def compare(self, op: str, whole: Expr, left: Expr, right: Expr) -> None:
        kinds = (self.infer(left), self.infer(right))
        if "null" in kinds:
            self.error(
                f"{unparse(whole)} compares with null, which is always unknown; "
                "use exists() or missing()"
            )
        elif not _compatible(*kinds):
            self.error(
                f"{unparse(whole)} compares {unparse(left)} ({_NAMES[kinds[0]]}) with "
                f"{unparse(right)} ({_NAMES[kinds[1]]}); values of different kinds never match"
            )
        elif op not in ("==", "!=") and kinds[0] in ("bool", "instant"):
            self.error(f"{unparse(whole)} orders {_NAMES[kinds[0]]}s, which have no order")
        else:
            self.named_values(op, whole, left, right)
            self.named_values(op, whole, right, left)

    def journey(self, node: StageOf | DaysInStage, journey: str) -> None:
        if self.journeys is not None and journey not in self.journeys:
            known = ", ".join(sorted(self.journeys)) or "none"
            self.error(f"{unparse(node)} names no known journey (journeys: {known})")

    def named_values(self, op: str, whole: Expr, subject: Expr, other: Expr) -> None:
        """``tier()`` and ``stage()`` hold one of a few known names: comparing them with any
        other string can never be true, which is a typo rather than a condition."""
        name = other.value if isinstance(other, Literal) else None
        if isinstance(subject, CurrentTier):
            if op not in ("==", "!="):
                self.error(
                    f"{unparse(whole)} orders tiers by their names, not tech < low < mid < "
                    'high; list the tiers instead, e.g. tier() in ["mid", "high"]'
                )
            elif isinstance(name, str) and name not in TIERS:
                self.error(
                    f"{unparse(whole)} compares tier() with {name!r}, which is not a tier; "
                    f"tiers are {', '.join(TIERS)}"
                )
        elif isinstance(subject, StageOf) and isinstance(name, str) and self.journeys:
            stages = self.journeys.get(subject.journey)
            if stages is not None and name not in stages:
                self.error(
                    f"{unparse(whole)} compares {unparse(subject)} with {name!r}, which is not "
                    f"a stage of journey {subject.journey!r} (stages: {', '.join(stages)})"
                )
