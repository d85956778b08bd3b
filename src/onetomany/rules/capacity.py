"""CSM capacity planning: how many CSMs a tier mix needs, and when the next hire is due.

Each tier costs hours of 1:1 CSM work per account a month (:class:`TierCost`). With a CSM's
working hours a month, the current number of accounts per tier and the accounts expected to
arrive each month, :func:`capacity_from_counts` works out the accounts one CSM carries, the
CSMs needed now and the months until the book outgrows the staff. :func:`render_plan` turns
the result into lines of text. Pure arithmetic: no I/O, no clock. Formulas in docs/tiers.md.

The domain's figures come out with the defaults: a weekly 1-hour meeting is 4 h a month
(``weeks_per_month`` = 4), 160 h / 4 h = 40 accounts per CSM, and ten new accounts a month add
40 h a month, so one more CSM every 160 / 40 = 4 months.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import attrs

from onetomany.rules.tiers import TIERS, Tier

#: Weeks in a month when a cost is given per week. 4 is the domain's convention (a weekly
#: meeting = 4 h a month, so 160 h carry exactly 40 accounts); 52 / 12 = 4.33 is the calendar.
WEEKS_PER_MONTH = 4.0
#: A full-time CSM's working hours a month (40 h a week x 4 weeks).
CSM_HOURS_PER_MONTH = 160.0
#: Where new accounts land unless told otherwise: the most expensive tier, so a plan that
#: forgot to describe its growth overestimates hiring instead of hiding it. It is also the
#: domain's own arithmetic (every new customer gets a weekly meeting).
DEFAULT_NEW_ACCOUNT_TIER = Tier.HIGH

# Float sums such as 0.1 + 0.2 land a hair off whole numbers; rounding to this many places
# before ceil/floor keeps 3.0000000000000004 CSMs from becoming 4.
_PLACES = 9


def _check_number(value: float, *, strict: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {value!r}")
    number = float(value)
    ok = number > 0 if strict else number >= 0
    if not (ok and math.isfinite(number)):
        raise ValueError(f"expected a finite number {'>' if strict else '>='} 0, got {value!r}")
    return number


# Named converters, not closures: the attrs plugin of mypy only types named functions.
def _non_negative(value: float) -> float:
    return _check_number(value, strict=False)


def _positive(value: float) -> float:
    return _check_number(value, strict=True)


def _optional_non_negative(value: float | None) -> float | None:
    return None if value is None else _check_number(value, strict=False)


def _fmt(value: float, places: int = 2) -> str:
    """A number without noise: 4.0 -> "4", 4.3333 -> "4.33", 0.5 -> "0.5"."""
    text = f"{round(value, places):.{places}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _plural(count: float, word: str) -> str:
    return f"{_fmt(count)} {word}" + ("" if count == 1 else "s")


@attrs.frozen(kw_only=True)
class TierCost:
    """Hours of 1:1 CSM work one account at a tier costs a month.

    Give exactly one of: ``hours_per_month``; ``meetings_per_month`` (times
    ``hours_per_meeting``); ``meetings_per_week`` (times ``hours_per_meeting`` and the plan's
    ``weeks_per_month``). ``hours_per_meeting`` defaults to 1.
    """

    hours_per_month: float | None = attrs.field(default=None, converter=_optional_non_negative)
    meetings_per_month: float | None = attrs.field(default=None, converter=_optional_non_negative)
    meetings_per_week: float | None = attrs.field(default=None, converter=_optional_non_negative)
    hours_per_meeting: float = attrs.field(default=1.0, converter=_non_negative)

    def __attrs_post_init__(self) -> None:
        given = [
            name
            for name in ("hours_per_month", "meetings_per_month", "meetings_per_week")
            if getattr(self, name) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of hours_per_month, meetings_per_month, meetings_per_week"
                + (f" (got {', '.join(given)})" if given else "")
            )

    def monthly_hours(self, weeks_per_month: float = WEEKS_PER_MONTH) -> float:
        if self.hours_per_month is not None:
            return self.hours_per_month
        if self.meetings_per_month is not None:
            return self.meetings_per_month * self.hours_per_meeting
        assert self.meetings_per_week is not None  # the post-init check guarantees one is set
        return self.meetings_per_week * self.hours_per_meeting * weeks_per_month

    def basis(self, weeks_per_month: float = WEEKS_PER_MONTH) -> str:
        """How the hours come about (``1 meeting a week x 1 h x 4 weeks a month``), or ""."""
        meeting = f"{_fmt(self.hours_per_meeting)} h"
        if self.meetings_per_month is not None:
            return f"{_plural(self.meetings_per_month, 'meeting')} a month x {meeting}"
        if self.meetings_per_week is not None:
            return (
                f"{_plural(self.meetings_per_week, 'meeting')} a week x {meeting}"
                f" x {_fmt(weeks_per_month)} weeks a month"
            )
        return ""


def _costs(value: Mapping[Tier, TierCost] | Mapping[str, TierCost]) -> dict[Tier, TierCost]:
    return {Tier(tier): cost for tier, cost in value.items()}


def _mix(value: Mapping[Tier, float] | Mapping[str, float] | str) -> dict[Tier, float]:
    """Weights per tier, normalised to shares that sum to 1 (``{mid: 3, low: 7}`` works)."""
    if isinstance(value, str):
        return {Tier(value): 1.0}
    weights = {Tier(tier): _non_negative(weight) for tier, weight in value.items()}
    total = sum(weights.values())
    if total <= 0:
        raise ValueError("the new-account mix needs at least one tier with a weight above 0")
    return {tier: weight / total for tier, weight in weights.items() if weight > 0}


def _staff(value: int | None) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ValueError(f"csms is a whole number >= 0, got {value!r}")
    return value


@attrs.frozen(kw_only=True)
class CapacityInputs:
    """What the planner needs besides the current counts per tier.

    A tier missing from ``costs`` costs 0 h (tech touch usually does). ``new_account_mix`` is
    a tier, or weights per tier (normalised); it defaults to :data:`DEFAULT_NEW_ACCOUNT_TIER`.
    ``csms`` is the staff on hand; None means "as many as the book needs now, rounded up".
    """

    costs: Mapping[Tier, TierCost] = attrs.field(factory=dict, converter=_costs)
    csm_hours_per_month: float = attrs.field(default=CSM_HOURS_PER_MONTH, converter=_positive)
    weeks_per_month: float = attrs.field(default=WEEKS_PER_MONTH, converter=_positive)
    new_accounts_per_month: float = attrs.field(default=0.0, converter=_non_negative)
    new_account_mix: Mapping[Tier, float] = attrs.field(
        default=DEFAULT_NEW_ACCOUNT_TIER, converter=_mix
    )
    csms: int | None = attrs.field(default=None, converter=_staff)

    def hours(self, tier: Tier) -> float:
        """Hours one account at ``tier`` costs a month."""
        cost = self.costs.get(tier)
        return 0.0 if cost is None else cost.monthly_hours(self.weeks_per_month)


@attrs.frozen(kw_only=True)
class CapacityPlan:
    """The planner's answer. Every per-tier mapping holds all four tiers.

    ``accounts_per_csm`` is fractional (floor it to count whole accounts) and ``math.inf`` for
    a tier that costs no hours. ``mix_accounts_per_csm`` is the same for the current book as
    a whole: None without accounts, inf when none of them costs hours. ``months_per_hire``
    and ``next_hire_in_months`` are None when growth adds no hours; ``next_hire_in_months`` is
    0 when the book already exceeds the staff.
    """

    inputs: CapacityInputs
    counts: Mapping[Tier, int]
    hours_per_account: Mapping[Tier, float]
    accounts_per_csm: Mapping[Tier, float]
    accounts: int
    hours_now: float
    mix_accounts_per_csm: float | None
    csms_needed: float
    csms_needed_rounded: int
    staff: int
    staff_assumed: bool
    growth_hours_per_month: float
    months_per_hire: float | None
    next_hire_in_months: int | None

    @property
    def shortfall(self) -> int:
        """CSMs missing today: how many the book needs beyond the staff on hand."""
        return max(0, self.csms_needed_rounded - self.staff)


def _counts(counts: Mapping[Tier, int] | Mapping[str, int]) -> dict[Tier, int]:
    result = dict.fromkeys(TIERS, 0)
    for key, count in counts.items():
        tier = Tier(key)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"the count of {tier.value} accounts must be a whole number >= 0")
        result[tier] += count
    return result


def capacity_from_counts(
    counts: Mapping[Tier, int] | Mapping[str, int], inputs: CapacityInputs
) -> CapacityPlan:
    """Plan CSM capacity for ``counts`` accounts per tier; see docs/tiers.md for the formulas."""
    book = _counts(counts)
    csm_hours = inputs.csm_hours_per_month
    hours = {tier: inputs.hours(tier) for tier in TIERS}
    per_csm = {tier: csm_hours / hours[tier] if hours[tier] > 0 else math.inf for tier in TIERS}
    accounts = sum(book.values())
    hours_now = sum(book[tier] * hours[tier] for tier in TIERS)
    if accounts == 0:
        mix_per_csm: float | None = None
    else:
        mix_per_csm = csm_hours * accounts / hours_now if hours_now > 0 else math.inf
    needed = hours_now / csm_hours
    rounded = math.ceil(round(needed, _PLACES))
    staff = rounded if inputs.csms is None else inputs.csms
    growth = inputs.new_accounts_per_month * sum(
        share * hours[tier] for tier, share in inputs.new_account_mix.items()
    )
    months_per_hire = csm_hours / growth if growth > 0 else None
    return CapacityPlan(
        inputs=inputs,
        counts=book,
        hours_per_account=hours,
        accounts_per_csm=per_csm,
        accounts=accounts,
        hours_now=hours_now,
        mix_accounts_per_csm=mix_per_csm,
        csms_needed=needed,
        csms_needed_rounded=rounded,
        staff=staff,
        staff_assumed=inputs.csms is None,
        growth_hours_per_month=growth,
        months_per_hire=months_per_hire,
        next_hire_in_months=_next_hire(hours_now, staff * csm_hours, growth),
    )


def _next_hire(hours_now: float, capacity: float, growth: float) -> int | None:
    """Whole months until ``hours_now + months x growth`` first exceeds ``capacity``.

    New accounts arrive in monthly batches, so the answer is the first month whose intake
    does not fit: a book exactly at capacity is full, not over.
    """
    spare = round(capacity - hours_now, _PLACES)
    if spare < 0:
        return 0
    if growth <= 0:
        return None
    return math.floor(round(spare / growth, _PLACES)) + 1


def _whole_accounts(value: float) -> str:
    if math.isinf(value):
        return "unlimited accounts"
    return _plural(math.floor(round(value, _PLACES)), "account")


def _mix_text(mix: Mapping[Tier, float]) -> str:
    if len(mix) == 1:
        return f"all {next(iter(mix)).value}"
    ordered = sorted(mix.items(), key=lambda item: item[0].rank, reverse=True)
    return ", ".join(f"{tier.value} {_fmt(share * 100, 1)}%" for tier, share in ordered)


def render_plan(plan: CapacityPlan) -> list[str]:
    """The plan as lines of text, most expensive tier first, ready to print one per line."""
    inputs = plan.inputs
    lines = [f"Each CSM has {_fmt(inputs.csm_hours_per_month)} h a month for 1:1 work."]
    for tier in reversed(TIERS):
        hours = plan.hours_per_account[tier]
        cost = inputs.costs.get(tier)
        basis = cost.basis(inputs.weeks_per_month) if cost is not None else ""
        carry = (
            f"{_whole_accounts(plan.accounts_per_csm[tier])} per CSM"
            if hours > 0
            else "no CSM time"
        )
        lines.append(
            f"{tier.value}: {_fmt(hours)} h a month per account"
            + (f" ({basis})" if basis else "")
            + f" -> {carry}"
        )

    if plan.accounts == 0:
        lines.append("Book now: no accounts.")
    else:
        split = ", ".join(
            f"{tier.value} {plan.counts[tier]}" for tier in reversed(TIERS) if plan.counts[tier]
        )
        assert plan.mix_accounts_per_csm is not None  # set whenever there are accounts
        lines.append(
            f"Book now: {_plural(plan.accounts, 'account')} ({split}) ="
            f" {_fmt(plan.hours_now)} h a month"
            f" -> {_whole_accounts(plan.mix_accounts_per_csm)} per CSM at this mix"
        )
    lines.append(f"CSMs needed now: {_fmt(plan.csms_needed)} -> {plan.csms_needed_rounded}")
    if plan.staff_assumed:
        lines.append(f"On staff: {plan.staff} (assumed: CSMs needed now, rounded up)")
    elif plan.shortfall:
        lines.append(f"On staff: {plan.staff} ({plan.shortfall} short today)")
    else:
        lines.append(f"On staff: {plan.staff}")

    growth = (
        f"Growth: {_fmt(inputs.new_accounts_per_month)} new accounts a month"
        f" ({_mix_text(inputs.new_account_mix)}) = {_fmt(plan.growth_hours_per_month)} h a month"
    )
    if plan.months_per_hire is None:
        lines.append(f"{growth} -> no more CSMs needed for growth")
    elif round(plan.months_per_hire, 1) == 1:
        lines.append(f"{growth} more -> one more CSM every month")
    else:
        every = _fmt(plan.months_per_hire, 1)
        lines.append(f"{growth} more -> one more CSM every {every} months")

    due = plan.next_hire_in_months
    if due is None:
        lines.append("Next hire due: none; the book does not outgrow the staff")
    elif due == 0:
        lines.append("Next hire due: now; the book already needs more than the staff")
    else:
        lines.append(f"Next hire due: in {_plural(due, 'month')}")
    return lines
