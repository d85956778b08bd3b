"""Health scores (SenseData's SenseScore, Gainsight's scorecards): one number per account,
0 to 100, from weighted measures with thresholds.

Declared in ``program.toml``::

    [health.measures.usage]
    value = "account.active_users / account.seats"   # a number in the segment language
    weight = 30
    good = 0.8     # at or beyond: the measure's full points
    bad = 0.3      # at or beyond: none; linear in between

    [health.measures.nps]
    nps_days = 180    # the account's NPS (-100..100) over its contacts' answers of 180 days
    weight = 15
    good = 50
    bad = 0

A measure's points are 100 at ``good`` or beyond, 0 at ``bad`` or beyond, linear in between
(``good`` may be below ``bad``: fewer open tickets is better). The score is the weighted mean
of the points of the measures an account has a value for; an account with none has no score
that round. Values are asked of the whole book at once (:mod:`onetomany.store.queries.health`);
this module holds the declaration and the arithmetic.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import attrs

from onetomany.errors import ConfigError
from onetomany.rules.segments import parse
from onetomany.rules.segments.ast import Expr

_MEASURE_KEYS = frozenset({"value", "nps_days", "weight", "good", "bad"})
_FORM = '{ value = "account.active_users / account.seats", weight = 30, good = 0.8, bad = 0.3 }'


class Reporter(Protocol):
    def error(self, key: str, reason: str) -> None: ...


@attrs.frozen(kw_only=True)
class Measure:
    """One weighted measure: a value per account (an expression, or the account's NPS over
    ``nps_days``) and the thresholds that turn it into points."""

    name: str
    weight: float
    good: float
    bad: float
    #: The segment-language text of the value, or None for an NPS measure.
    value: str | None = None
    nps_days: int | None = None

    @property
    def expr(self) -> Expr | None:
        return parse(self.value) if self.value is not None else None

    def points(self, value: float) -> float:
        """0 to 100: 100 at ``good`` or beyond, 0 at ``bad`` or beyond, linear between."""
        share = (value - self.bad) / (self.good - self.bad)
        return 100.0 * min(1.0, max(0.0, share))

    def describe(self) -> str:
        what = self.value if self.value is not None else f"NPS over {self.nps_days} days"
        return f"{self.name}: {what} (weight {self.weight:g}, good {self.good:g}, bad {self.bad:g})"


@attrs.frozen(kw_only=True)
class HealthSettings:
    """The ``[health]`` table: the measures, in the file's order."""

    measures: tuple[Measure, ...] = ()

    def score(self, values: Mapping[str, float | None]) -> tuple[float, dict[str, Any]] | None:
        """The score from each measure's value (by measure name; None or absent: no value),
        and each measure's value and points; None when no measure has a value."""
        total = weights = 0.0
        details: dict[str, Any] = {}
        for measure in self.measures:
            value = values.get(measure.name)
            if value is None:
                details[measure.name] = {"value": None, "points": None}
                continue
            points = measure.points(value)
            details[measure.name] = {"value": value, "points": points}
            total += measure.weight * points
            weights += measure.weight
        if not weights:
            return None
        return total / weights, details


def _number(body: Mapping[str, Any], key: str, path: str, reporter: Reporter) -> float | None:
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        reporter.error(f"{path}.{key}", f"expected a number, got {value!r}")
        return None
    return float(value)


def read_health(section: Mapping[str, Any], path: str, reporter: Reporter) -> HealthSettings:
    """The measures ``[health]`` declares; each problem is reported with its key."""
    unknown = sorted(set(section) - {"measures"})
    for key in unknown:
        reporter.error(f"{path}.{key}", "unknown key (known: measures)")
    measures_body = section.get("measures", {})
    if not isinstance(measures_body, dict):
        reporter.error(f"{path}.measures", f"expected a table of measures like {_FORM}")
        return HealthSettings()
    measures = []
    for name, body in measures_body.items():
        where = f"{path}.measures.{name}"
        if not isinstance(body, dict):
            reporter.error(where, f"expected a table like {_FORM}, got {body!r}")
            continue
        for key in sorted(set(body) - _MEASURE_KEYS):
            reporter.error(
                f"{where}.{key}", f"unknown key (known: {', '.join(sorted(_MEASURE_KEYS))})"
            )
        weight = _number(body, "weight", where, reporter)
        good = _number(body, "good", where, reporter)
        bad = _number(body, "bad", where, reporter)
        if weight is not None and weight <= 0:
            reporter.error(f"{where}.weight", f"expected a weight above 0, got {weight:g}")
            weight = None
        if good is not None and bad is not None and good == bad:
            reporter.error(f"{where}.good", f"good and bad are both {good:g}: no range to score")
            good = None
        value, nps_days = body.get("value"), body.get("nps_days")
        if (value is None) == (nps_days is None):
            reporter.error(where, "give either value (an expression) or nps_days")
            continue
        if value is not None and not _valid_value(value, f"{where}.value", reporter):
            continue
        if nps_days is not None and (
            isinstance(nps_days, bool) or not isinstance(nps_days, int) or nps_days < 1
        ):
            reporter.error(f"{where}.nps_days", f"expected whole days >= 1, got {nps_days!r}")
            continue
        if weight is None or good is None or bad is None:
            continue
        measures.append(
            Measure(name=name, weight=weight, good=good, bad=bad, value=value, nps_days=nps_days)
        )
    return HealthSettings(measures=tuple(measures))


def _valid_value(value: object, path: str, reporter: Reporter) -> bool:
    if not isinstance(value, str):
        reporter.error(path, f"expected an expression in quotes, got {value!r}")
        return False
    try:
        parse(value)
    except ConfigError as exc:  # the parser's reason names the position
        reporter.error(path, exc.reason)
        return False
    return True
