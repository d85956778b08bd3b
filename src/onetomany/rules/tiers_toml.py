"""Reading the ``[tiers]`` and ``[capacity]`` tables of a program.toml.

::

    [tiers]
    hold_days = 14            # days a new computed tier must last before the account moves
    match = "any"             # default for every tier: "any" criterion or "all" of them
    [tiers.high]
    mrr = 5000                # minimums on the traits mrr, seats and size (employees)
    plan = ["enterprise"]     # plans that qualify
    hours_per_month = 8       # or meetings_per_month / meetings_per_week (+ hours_per_meeting)
    [tiers.tech]
    hours_per_month = 0       # tech is the floor: cost keys only

    [capacity]
    csm_hours_per_month = 160
    weeks_per_month = 4
    new_accounts_per_month = 10
    new_account_tier = "mid"  # or new_account_mix = { mid = 3, low = 7 }
    csms = 3

:func:`read_tiers` reports every problem at once, each a :class:`ConfigError` with file and
key, and returns what it could read. It is pure (no I/O): the program loader hands it the
parsed tables. See docs/tiers.md.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import attrs

from onetomany.errors import ConfigError
from onetomany.rules.capacity import CapacityInputs, TierCost
from onetomany.rules.tiers import (
    NUMERIC_CRITERIA,
    TIERS,
    Match,
    Tier,
    TierPolicy,
    TierRule,
    TierRules,
    TierTracker,
    shadowed_criteria,
)


class TierConfigWarning(ConfigError):
    """A ``[tiers]`` setting that loads but very likely does not do what was meant.

    It is a :class:`ConfigError` so it prints with file, key and reason like one, but
    :func:`read_tiers` returns warnings in :attr:`TierSettings.warnings`, apart from the
    errors, so they never stop a program from loading.
    """


@attrs.frozen(kw_only=True)
class TierSettings:
    """What ``[tiers]`` and ``[capacity]`` configure.

    ``capacity`` is None when the file neither has a ``[capacity]`` table nor gives any tier
    an hours cost: there is nothing to plan with.
    """

    rules: TierRules = attrs.field(factory=TierRules)
    policy: TierPolicy = attrs.field(factory=TierPolicy)
    capacity: CapacityInputs | None = None
    warnings: tuple[TierConfigWarning, ...] = ()

    @property
    def tracker(self) -> TierTracker:
        return TierTracker(rules=self.rules, policy=self.policy)


_TOP_KEYS = ("hold_days", "match")
_RULE_KEYS = (*NUMERIC_CRITERIA, "plan", "match")
_COST_FORMS = ("hours_per_month", "meetings_per_month", "meetings_per_week")
_COST_KEYS = (*_COST_FORMS, "hours_per_meeting")
_CAPACITY_KEYS = (
    "csm_hours_per_month",
    "weeks_per_month",
    "new_accounts_per_month",
    "new_account_tier",
    "new_account_mix",
    "csms",
)
_TIER_NAMES = ", ".join(TIERS)
_MATCHES = " or ".join(f'"{m.value}"' for m in Match)


def _show(value: object) -> str:
    """A value as it reads in TOML, so the message quotes what the author wrote."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "[" + ", ".join(_show(item) for item in value) + "]"
    return repr(value)


def _known(keys: tuple[str, ...]) -> str:
    return f"known: {', '.join(keys)}"


class _Reader:
    """Collects errors with their keys while reading typed values."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.errors: list[ConfigError] = []

    def error(self, key: str, reason: str) -> None:
        self.errors.append(ConfigError(reason, file=self.file, key=key))

    def number(
        self, table: Mapping[str, Any], key: str, path: str, *, strict: bool = False
    ) -> float | None:
        if key not in table:
            return None
        value = table[key]
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        ok = ok and math.isfinite(value) and (value > 0 if strict else value >= 0)
        if not ok:
            self.error(path, f"expected a number {'>' if strict else '>='} 0, got {_show(value)}")
            return None
        return float(value)

    def whole(self, table: Mapping[str, Any], key: str, path: str) -> int | None:
        if key not in table:
            return None
        value = table[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            self.error(path, f"expected a whole number >= 0, got {_show(value)}")
            return None
        return value

    def tier(self, value: object, path: str) -> Tier | None:
        if isinstance(value, str) and value in TIERS:
            return Tier(value)
        self.error(path, f"unknown tier {_show(value)} (tiers: {_TIER_NAMES})")
        return None

    def match(self, table: Mapping[str, Any], path: str) -> Match | None:
        if "match" not in table:
            return None
        value = table["match"]
        if isinstance(value, str) and value in {m.value for m in Match}:
            return Match(value)
        self.error(path, f"expected {_MATCHES}, got {_show(value)}")
        return None


def read_tiers(
    tiers: Mapping[str, Any] | None,
    *,
    capacity: object = None,
    file: str,
) -> tuple[TierSettings, list[ConfigError]]:
    """Read the ``[tiers]`` table (and the top-level ``[capacity]`` table, if any).

    Returns the settings read and every error found; when the list is not empty the settings
    hold only the parts that were valid. Warnings (see :class:`TierConfigWarning`) are in
    ``settings.warnings``, never in the error list.
    """
    reader = _Reader(file)
    section: Mapping[str, Any] = {}
    # Typed as a mapping for callers, but checked: it comes straight out of a TOML document.
    raw: object = tiers
    if isinstance(raw, Mapping):
        section = raw
    elif raw is not None:
        reader.error("tiers", f"expected a table, got {_show(raw)}")
    policy = TierPolicy()
    default_match = Match.ANY
    rules: list[TierRule] = []
    costs: dict[Tier, TierCost] = {}

    for key, value in section.items():
        path = f"tiers.{key}"
        if key == "hold_days":
            hold = reader.whole(section, key, path)
            if hold is not None:
                policy = TierPolicy(hold_days=hold)
        elif key == "match":
            default_match = reader.match(section, path) or default_match
        elif key in TIERS:
            if not isinstance(value, Mapping):
                reader.error(path, f"expected a table, got {_show(value)}")
                continue
            tier = Tier(key)
            rule, cost = _read_tier(tier, value, path, reader)
            if rule is not None:
                rules.append(rule)
            if cost is not None:
                costs[tier] = cost
        elif isinstance(value, Mapping):
            reader.error(path, f"unknown tier {_show(key)} (tiers: {_TIER_NAMES})")
        else:
            reader.error(path, f"unknown key ({_known((*_TOP_KEYS, *TIERS))})")

    tier_rules = TierRules(rules=rules, match=default_match)
    warnings = tuple(
        TierConfigWarning(reason, file=file, key=f"tiers.{tier.value}.{name}")
        for tier, name, reason in shadowed_criteria(tier_rules)
    )
    # A cost that failed to read is already reported; "no tier says what it costs" would be
    # noise on top of it, so that check looks at what was written, not what was accepted.
    declared = any(
        isinstance(table, Mapping) and any(key in table for key in _COST_FORMS)
        for name, table in section.items()
        if name in TIERS
    )
    inputs = None
    if capacity is not None or declared:
        inputs = _read_capacity({} if capacity is None else capacity, costs, declared, reader)
    settings = TierSettings(rules=tier_rules, policy=policy, capacity=inputs, warnings=warnings)
    return settings, reader.errors


def _read_tier(
    tier: Tier, table: Mapping[str, Any], path: str, reader: _Reader
) -> tuple[TierRule | None, TierCost | None]:
    for key in table:
        if key not in _RULE_KEYS and key not in _COST_KEYS:
            reader.error(f"{path}.{key}", f"unknown key ({_known((*_RULE_KEYS, *_COST_KEYS))})")
        elif tier is Tier.TECH and key in _RULE_KEYS:
            reader.error(
                f"{path}.{key}",
                "tech is the floor: accounts that meet no other tier get it, so it takes no "
                f"criteria ({_known(_COST_KEYS)})",
            )
    rule = None
    if tier is not Tier.TECH:
        before = len(reader.errors)
        minimums = {name: reader.number(table, name, f"{path}.{name}") for name in NUMERIC_CRITERIA}
        plans = _read_plans(table, f"{path}.plan", reader)
        match = reader.match(table, f"{path}.match")
        if len(reader.errors) == before:
            rule = TierRule(tier=tier, plans=plans, match=match, **minimums)
    return rule, _read_cost(table, path, reader)


def _read_plans(table: Mapping[str, Any], path: str, reader: _Reader) -> frozenset[str] | None:
    if "plan" not in table:
        return None
    value = table["plan"]
    if isinstance(value, str):
        reader.error(path, f"expected a list of plan names, e.g. plan = [{_show(value)}]")
        return None
    if not isinstance(value, list) or not all(isinstance(p, str) and p for p in value):
        reader.error(path, f"expected a list of plan names, got {_show(value)}")
        return None
    if not value:
        # An empty list can never be met: under "all" it would silently disable the tier.
        reader.error(path, "expected at least one plan name; remove the key to not use plans")
        return None
    return frozenset(value)


def _read_cost(table: Mapping[str, Any], path: str, reader: _Reader) -> TierCost | None:
    given = [key for key in _COST_FORMS if key in table]
    meetings = [key for key in given if key.startswith("meetings_")]
    if "hours_per_meeting" in table and not meetings:
        reader.error(
            f"{path}.hours_per_meeting", "only counts with meetings_per_month or meetings_per_week"
        )
        return None
    if len(given) > 1:
        # Two forms could disagree; picking one silently would plan with the wrong number.
        reader.error(path, f"give one of {', '.join(_COST_FORMS)}, not {' and '.join(given)}")
        return None
    if not given:
        return None
    form = given[0]
    amount = reader.number(table, form, f"{path}.{form}")
    per_meeting: float | None = 1.0
    if "hours_per_meeting" in table:
        per_meeting = reader.number(table, "hours_per_meeting", f"{path}.hours_per_meeting")
    if amount is None or per_meeting is None:
        return None
    return TierCost(**{form: amount}, hours_per_meeting=per_meeting)


def _read_capacity(
    table: object, costs: dict[Tier, TierCost], declared: bool, reader: _Reader
) -> CapacityInputs | None:
    before = len(reader.errors)
    if not isinstance(table, Mapping):
        reader.error("capacity", f"expected a table, got {_show(table)}")
        return None
    for key in table:
        if key not in _CAPACITY_KEYS:
            reader.error(f"capacity.{key}", f"unknown key ({_known(_CAPACITY_KEYS)})")
    values: dict[str, Any] = {}
    for key in ("csm_hours_per_month", "weeks_per_month"):
        number = reader.number(table, key, f"capacity.{key}", strict=True)
        if number is not None:
            values[key] = number
    growth = reader.number(table, "new_accounts_per_month", "capacity.new_accounts_per_month")
    if growth is not None:
        values["new_accounts_per_month"] = growth
    csms = reader.whole(table, "csms", "capacity.csms")
    if csms is not None:
        values["csms"] = csms
    if "new_account_tier" in table and "new_account_mix" in table:
        reader.error(
            "capacity.new_account_mix", "give new_account_tier or new_account_mix, not both"
        )
    elif "new_account_tier" in table:
        tier = reader.tier(table["new_account_tier"], "capacity.new_account_tier")
        if tier is not None:
            values["new_account_mix"] = tier
    elif "new_account_mix" in table:
        mix = _read_mix(table["new_account_mix"], reader)
        if mix is not None:
            values["new_account_mix"] = mix
    if not declared:
        reader.error(
            "capacity",
            "no tier says what it costs; add hours_per_month (or meetings_per_week, "
            "meetings_per_month) to the [tiers.<tier>] tables",
        )
    if len(reader.errors) > before:
        return None
    return CapacityInputs(costs=costs, **values)


def _read_mix(value: object, reader: _Reader) -> dict[Tier, float] | None:
    path = "capacity.new_account_mix"
    if not isinstance(value, Mapping):
        reader.error(
            path, f"expected a table of weights, e.g. {{ mid = 3, low = 7 }}, got {_show(value)}"
        )
        return None
    before = len(reader.errors)
    mix: dict[Tier, float] = {}
    for name in value:
        tier = reader.tier(name, f"{path}.{name}")
        weight = reader.number(value, name, f"{path}.{name}")
        if tier is not None and weight is not None:
            mix[tier] = weight
    if len(reader.errors) > before:
        return None
    if sum(mix.values()) <= 0:
        reader.error(path, "expected at least one tier with a weight above 0")
        return None
    return mix
