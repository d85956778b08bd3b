"""Tiers: which touch model (tech, low, mid, high) an account is served at, and when it moves.

:class:`TierRules` assigns a tier from an account's traits (``mrr``, ``seats``, ``size``,
``plan``): the highest tier whose criteria the account meets, ``tech`` when it meets none.
:class:`TierTracker` adds hysteresis over time: an account leaves its tier only after its
computed tier has stayed on the same side of it (all above, or all below) for ``hold_days``,
so a brief dip in MRR does not flip a customer between a CSM and a newsletter and back.

Everything here is pure: no I/O, no clock. The caller passes the account, the previous
:class:`TierState` and ``now``, and stores the state it gets back. See docs/tiers.md.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

import attrs

from onetomany.model import Account


class Tier(enum.StrEnum):
    """A touch model, ordered ``tech < low < mid < high``.

    A :class:`~enum.StrEnum` so a tier stores and compares equal to its name (``Tier.MID ==
    "mid"``), but ordered by touch level rather than alphabetically: ``"high" < "low"`` as text,
    yet ``Tier.HIGH > Tier.LOW``. Ordering against a plain string converts it to a tier first,
    and an unknown name is a :class:`TypeError`, never a silent alphabetical answer.
    """

    TECH = "tech"
    LOW = "low"
    MID = "mid"
    HIGH = "high"

    @property
    def rank(self) -> int:
        """0 for tech up to 3 for high."""
        return _RANK[self]

    def __lt__(self, other: str) -> bool:
        return self.rank < _as_tier(other).rank

    def __le__(self, other: str) -> bool:
        return self.rank <= _as_tier(other).rank

    def __gt__(self, other: str) -> bool:
        return self.rank > _as_tier(other).rank

    def __ge__(self, other: str) -> bool:
        return self.rank >= _as_tier(other).rank


#: Every tier, lowest first.
TIERS: tuple[Tier, ...] = (Tier.TECH, Tier.LOW, Tier.MID, Tier.HIGH)
_RANK: dict[Tier, int] = {tier: rank for rank, tier in enumerate(TIERS)}


def _as_tier(value: object) -> Tier:
    if isinstance(value, Tier):
        return value
    if isinstance(value, str) and value in _RANK:
        return Tier(value)
    raise TypeError(f"cannot order a tier against {value!r}; tiers are {', '.join(TIERS)}")


class Match(enum.StrEnum):
    """How a tier's criteria combine: ``any`` one of them, or ``all`` of them."""

    ANY = "any"
    ALL = "all"


#: The numeric criteria, each a minimum on the trait of the same name.
NUMERIC_CRITERIA: tuple[str, ...] = ("mrr", "seats", "size", "health")


def _minimum(value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValueError(f"a threshold is a number >= 0, got {value!r}")
    return float(value)


def _plans(value: Iterable[str] | None) -> frozenset[str] | None:
    if value is None:
        return None
    # A bare string is iterable too; taking it apart letter by letter would be a silent bug.
    if isinstance(value, str):
        raise TypeError(f"plans is a collection of plan names, got the string {value!r}")
    return frozenset(value)


def trait_number(traits: Mapping[str, Any], name: str) -> float | None:
    """A numeric trait, or None when it is missing or not a finite number.

    Text such as ``"600"`` is not a number here, as in segments: sources deliver typed values,
    and guessing would let ``"1,200"`` and ``"1.200"`` mean different things per locale.
    """
    value = traits.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer beyond a double's range is no MRR anyone has
        return None
    return number if math.isfinite(number) else None


@attrs.frozen(kw_only=True)
class TierRule:
    """What an account needs to be served at ``tier``.

    ``mrr``, ``seats`` and ``size`` are minimums (inclusive) on the traits of those names,
    ``health`` on the account's latest health score (the engine hands it over as a trait);
    ``plans`` lists the plans that qualify. Unset criteria (None) are not part of the rule.
    ``match`` overrides the rule set's default for this tier. A rule without any criterion
    never assigns its tier: it can still carry capacity hours.
    """

    tier: Tier = attrs.field(converter=Tier)
    mrr: float | None = attrs.field(default=None, converter=_minimum)
    seats: float | None = attrs.field(default=None, converter=_minimum)
    size: float | None = attrs.field(default=None, converter=_minimum)
    #: A minimum health score: read from the account's latest score, not from a trait.
    health: float | None = attrs.field(default=None, converter=_minimum)
    plans: frozenset[str] | None = attrs.field(default=None, converter=_plans)
    match: Match | None = attrs.field(default=None, converter=attrs.converters.optional(Match))

    def __attrs_post_init__(self) -> None:
        if self.tier is Tier.TECH and self.criteria():
            # tech is where accounts land when they meet nothing else, so criteria on it could
            # never change an assignment; accepting them would hide a mistake.
            raise ValueError("tech is the floor and takes no criteria")

    def criteria(self) -> dict[str, float | frozenset[str]]:
        """The criteria this rule lists, by name (``plan`` for ``plans``)."""
        listed: dict[str, float | frozenset[str]] = {}
        for name in NUMERIC_CRITERIA:
            value = getattr(self, name)
            if value is not None:
                listed[name] = value
        if self.plans is not None:
            listed["plan"] = self.plans
        return listed

    def results(self, traits: Mapping[str, Any]) -> dict[str, bool]:
        """Whether each listed criterion is met; a missing trait never meets one."""
        met: dict[str, bool] = {}
        for name, wanted in self.criteria().items():
            if isinstance(wanted, frozenset):
                plan = traits.get("plan")
                met[name] = isinstance(plan, str) and plan in wanted
            else:
                number = trait_number(traits, name)
                met[name] = number is not None and number >= wanted
        return met

    def meets(self, traits: Mapping[str, Any], default: Match = Match.ANY) -> bool:
        results = self.results(traits)
        if not results:
            # Vacuous truth would put every account in a criteria-less tier under "all" and
            # none under "any"; one answer for both: an empty rule never assigns.
            return False
        how = self.match or default
        return any(results.values()) if how is Match.ANY else all(results.values())


def _rules(value: Iterable[TierRule] | Mapping[Tier, TierRule]) -> tuple[TierRule, ...]:
    items = list(value.values()) if isinstance(value, Mapping) else list(value)
    seen: set[Tier] = set()
    for rule in items:
        if rule.tier in seen:
            raise ValueError(f"tier {rule.tier.value!r} has two rules")
        seen.add(rule.tier)
    # Highest first: assign() stops at the first rule met.
    return tuple(sorted(items, key=lambda rule: rule.tier.rank, reverse=True))


@attrs.frozen(kw_only=True)
class TierRules:
    """A rule per tier above tech; an account gets the highest tier whose rule it meets."""

    rules: tuple[TierRule, ...] = attrs.field(factory=tuple, converter=_rules)
    match: Match = attrs.field(default=Match.ANY, converter=Match)

    def rule(self, tier: Tier) -> TierRule | None:
        for rule in self.rules:
            if rule.tier is tier:
                return rule
        return None

    def assign_traits(self, traits: Mapping[str, Any]) -> Tier:
        for rule in self.rules:
            if rule.meets(traits, self.match):
                return rule.tier
        return Tier.TECH

    def assign(self, account: Account) -> Tier:
        """The tier ``account``'s traits qualify it for right now (no hysteresis)."""
        return self.assign_traits(account.traits)

    def explain(self, account: Account) -> list[str]:
        """One line per rule, highest first, saying which criteria the account meets.

        Meant for a CSM asking "why is this account mid?": ``high (any): mrr no, plan no``.
        """
        lines = []
        for rule in self.rules:
            results = ", ".join(
                f"{name} {'yes' if met else 'no'}"
                for name, met in rule.results(account.traits).items()
            )
            how = (rule.match or self.match).value
            lines.append(f"{rule.tier.value} ({how}): {results or 'no criteria'}")
        return lines


# -- hysteresis -------------------------------------------------------------------------------


def _hold_days(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"hold_days is a whole number >= 0, got {value!r}")
    return value


@attrs.frozen(kw_only=True)
class TierPolicy:
    """How long a new computed tier must last before an account moves to it."""

    hold_days: int = attrs.field(default=14, converter=_hold_days)

    @property
    def hold(self) -> timedelta:
        return timedelta(days=self.hold_days)


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        # A naive time next to an aware stored one cannot be subtracted; say so up front.
        raise ValueError(f"{value.isoformat()} has no timezone; pass an aware datetime")
    return value


def _check_aware(value: datetime) -> None:
    _aware(value)


@attrs.frozen(kw_only=True)
class TierState:
    """Where one account stands: the tier it is served at and the move it may be heading for.

    ``tier`` is the current tier, adopted at ``since``. ``candidate`` is the latest computed
    tier while it differs from ``tier``, and ``candidate_since`` is when the current run of
    differing observations began (all on the same side of ``tier``); both are None while the
    computed tier equals ``tier``.
    """

    tier: Tier = attrs.field(converter=Tier)
    since: datetime = attrs.field(validator=lambda _s, _a, value: _check_aware(value))
    candidate: Tier | None = attrs.field(default=None, converter=attrs.converters.optional(Tier))
    candidate_since: datetime | None = None

    def __attrs_post_init__(self) -> None:
        if (self.candidate is None) != (self.candidate_since is None):
            raise ValueError("candidate and candidate_since are set together or not at all")
        if self.candidate is not None and self.candidate is self.tier:
            raise ValueError("the candidate tier must differ from the current tier")
        if self.candidate_since is not None:
            _aware(self.candidate_since)


@attrs.frozen(kw_only=True)
class TierChange:
    """An account moved tier at ``at``. ``from_tier`` is None for a first assignment."""

    account_id: str
    from_tier: Tier | None
    to_tier: Tier
    at: datetime


def _side(tier: Tier, current: Tier) -> int:
    return (tier.rank > current.rank) - (tier.rank < current.rank)


@attrs.frozen(kw_only=True)
class TierTracker:
    """Decides tier changes over time from the rules and the hysteresis policy.

    The rule: an account moves only after every observation for ``hold_days`` has computed a
    tier on the same side of its current tier (all higher, or all lower), and then it moves
    to the latest computed tier. An observation back at the current tier, or on the other
    side of it, starts the clock again: a bounce around the current tier is noise, not a
    sustained move. The boundary is inclusive: ``hold_days`` after the first differing
    observation, the move happens. At most one move can happen per ``hold_days``, and a
    computed tier that holds steady for ``hold_days`` is always adopted by the end of it.
    """

    rules: TierRules = attrs.field(factory=TierRules)
    policy: TierPolicy = attrs.field(factory=TierPolicy)

    def step(
        self, state: TierState | None, account: Account, now: datetime
    ) -> tuple[TierState, TierChange | None]:
        """Observe ``account`` at ``now``; return its new state and the change, if any.

        A new account (``state`` None) gets its computed tier at once, reported as a change
        with ``from_tier`` None so the caller records the first assignment the same way.
        """
        return self.observe(state, account.id, self.rules.assign(account), now)

    def observe(
        self, state: TierState | None, account_id: str, computed: Tier, now: datetime
    ) -> tuple[TierState, TierChange | None]:
        """:meth:`step` for a tier already computed: the hysteresis alone."""
        _aware(now)
        if state is None:
            return TierState(tier=computed, since=now), TierChange(
                account_id=account_id, from_tier=None, to_tier=computed, at=now
            )
        latest = state.candidate_since or state.since
        if now < latest:
            # Out-of-order observations would let a stale reading restart or finish a clock.
            raise ValueError(
                f"account {account_id!r}: observed at {now.isoformat()}, earlier than its "
                f"state already records ({latest.isoformat()})"
            )
        if computed is state.tier:
            return attrs.evolve(state, candidate=None, candidate_since=None), None
        started = state.candidate_since
        if (
            started is None
            or state.candidate is None
            or _side(state.candidate, state.tier) != _side(computed, state.tier)
        ):
            started = now
        if now - started >= self.policy.hold:
            change = TierChange(
                account_id=account_id, from_tier=state.tier, to_tier=computed, at=now
            )
            return TierState(tier=computed, since=now), change
        return attrs.evolve(state, candidate=computed, candidate_since=started), None


# -- sanity checks ----------------------------------------------------------------------------


def _effective(rule: TierRule, rules: TierRules) -> Match:
    # A single criterion means the same under "any" and "all".
    return Match.ANY if len(rule.criteria()) == 1 else rule.match or rules.match


def shadowed_criteria(rules: TierRules) -> list[tuple[Tier, str, str]]:
    """Criteria of a lower tier that can never decide, as ``(tier, criterion, reason)``.

    When a higher tier matches ``any`` of its criteria and asks for ``mrr >= 5000``, a lower
    tier's ``mrr >= 6000`` (or ``>= 5000``) is met only by accounts already in the higher
    tier: the criterion is dead, and under ``all`` the whole lower tier is. The same goes for
    a plan listed by both. A higher tier matching ``all`` shadows nothing (it needs more than
    the one criterion), so layered rules such as "mid: mrr >= 6000 and seats >= 50; high: mrr
    >= 5000 and plan enterprise" pass. This is almost always a swapped number, so the config
    reader reports it as a warning, not an error: the rules still assign deterministically.
    """
    found: list[tuple[Tier, str, str]] = []
    ascending = sorted(rules.rules, key=lambda rule: rule.tier.rank)
    for index, lower in enumerate(ascending):
        lower_all = (lower.match or rules.match) is Match.ALL and len(lower.criteria()) > 1
        for name, wanted in lower.criteria().items():
            for higher in ascending[index + 1 :]:
                if _effective(higher, rules) is not Match.ANY:
                    continue
                theirs = higher.criteria().get(name)
                if theirs is None:
                    continue
                if isinstance(wanted, frozenset) and isinstance(theirs, frozenset):
                    both = sorted(wanted & theirs)
                    if not both:
                        continue
                    plans = ", ".join(f'"{plan}"' for plan in both)
                    what = f"plan {plans} is also listed by {higher.tier.value}"
                elif isinstance(wanted, float) and isinstance(theirs, float):
                    if wanted < theirs:
                        continue
                    what = (
                        f"{name} >= {wanted:g} is not below {higher.tier.value}'s"
                        f" {name} >= {theirs:g}"
                    )
                else:  # pragma: no cover - a criterion name always has one kind of value
                    continue
                outcome = (
                    f"so {lower.tier.value} (match = all) is never assigned"
                    if lower_all
                    else "so it never decides"
                )
                found.append(
                    (
                        lower.tier,
                        name,
                        f"{what}: every account meeting it is {higher.tier.value} first, {outcome}",
                    )
                )
                break
    return found
