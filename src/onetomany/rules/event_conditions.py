"""Conditions on an event's properties: ``where = "score <= 6"`` on an event trigger.

A condition is one or more comparisons joined by ``and``: a property name, an operator
(``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=``) and a literal (a number, a quoted string,
``true`` or ``false``): ``score <= 6``, ``plan == "pro" and seats >= 10``. A number compares
with a numeric property (or a property written as a number, such as ``"6"``); a string or a
boolean with an equal one. A missing property, or one of another kind, fails the comparison,
so a malformed event never fires a touch by accident.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

import attrs

_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
}
_CLAUSE = re.compile(
    r"""\s*(?P<name>[A-Za-z_][A-Za-z0-9_.]*)\s*(?P<op>==|!=|<=|>=|<|>)\s*
    (?P<value>-?\d+(?:\.\d+)?|"[^"]*"|'[^']*'|true|false)\s*$""",
    re.VERBOSE,
)
_AND = re.compile(r"\s+and\s+")


@attrs.frozen
class Comparison:
    name: str
    op: str
    value: float | str | bool

    def holds(self, properties: Mapping[str, Any]) -> bool:
        if self.name not in properties:
            return False
        found = properties[self.name]
        compare = _OPERATORS[self.op]
        if isinstance(self.value, bool):
            return (
                isinstance(found, bool) and self.op in ("==", "!=") and compare(found, self.value)
            )
        if isinstance(self.value, float):
            number = _number(found)
            return number is not None and compare(number, self.value)
        return isinstance(found, str) and compare(found, self.value)

    def describe(self) -> str:
        value = self.value
        shown = (
            ("true" if value else "false")
            if isinstance(value, bool)
            else f"{value:g}"
            if isinstance(value, float)
            else f'"{value}"'
        )
        return f"{self.name} {self.op} {shown}"


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


@attrs.frozen
class Condition:
    """Every comparison holds (``and``)."""

    comparisons: tuple[Comparison, ...]

    def holds(self, properties: Mapping[str, Any]) -> bool:
        return all(c.holds(properties) for c in self.comparisons)

    def describe(self) -> str:
        return " and ".join(c.describe() for c in self.comparisons)


def parse_condition(text: str) -> Condition:
    """The condition ``text`` says; a ValueError names the part that is not a comparison."""
    comparisons = []
    for part in _AND.split(text.strip()):
        match = _CLAUSE.match(part)
        if match is None:
            raise ValueError(
                f'{part.strip()!r} is not a comparison like score <= 6 or plan == "pro"'
            )
        raw = match["value"]
        value: float | str | bool
        if raw in ("true", "false"):
            value = raw == "true"
        elif raw[0] in "\"'":
            value = raw[1:-1]
        else:
            value = float(raw)
        comparisons.append(Comparison(match["name"], match["op"], value))
    return Condition(tuple(comparisons))
