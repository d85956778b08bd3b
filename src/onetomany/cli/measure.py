"""The measuring commands' views: tables of what :mod:`onetomany.metrics` computed."""

from __future__ import annotations

from rich.table import Table

from onetomany.metrics.funnel import Funnel, Metrics
from onetomany.metrics.goals import Conversion
from onetomany.metrics.holdouts import HoldoutResult
from onetomany.metrics.nps import NpsGroup, NpsResults
from onetomany.metrics.timeline import Timeline

#: The counts a funnel table shows, in funnel order, and their column titles.
_COLUMNS = (
    ("queued", "queued"),
    ("deferred", "deferred"),
    ("suppressed", "suppr."),
    ("sent", "sent"),
    ("failed", "failed"),
    ("delivered", "deliv."),
    ("opened", "opened"),
    ("machine_opened", "machine"),
    ("clicked", "clicked"),
    ("bounced", "bounced"),
    ("complained", "compl."),
    ("unsubscribed", "unsub."),
    ("answered", "answered"),
)


def percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.1%}"


#: Always shown; the other stages only when a funnel counts some.
_ALWAYS = {"queued", "sent", "opened", "clicked"}


def funnel_table(title: str, label: str, funnels: list[Funnel], *, stages: list[str]) -> Table:
    table = Table(title=title)
    table.add_column(label)
    headings = dict(_COLUMNS)
    for stage in stages:
        table.add_column(headings[stage], justify="right")
    table.add_column("open %", justify="right")
    table.add_column("click %", justify="right")
    for funnel in funnels:
        table.add_row(
            funnel.value,
            *(str(getattr(funnel, stage)) for stage in stages),
            percent(funnel.open_rate),
            percent(funnel.click_rate),
        )
    return table


def metrics_tables(metrics: Metrics) -> list[Table]:
    """The total, then one table per dimension; a stage nothing reached is left out (an
    80-column terminal holds the rest)."""
    stages = [s for s, _ in _COLUMNS if s in _ALWAYS or getattr(metrics.total, s)]
    tables = [funnel_table("All messages", "", [metrics.total], stages=stages)]
    for dimension, funnels in metrics.by.items():
        tables.append(
            funnel_table(f"Funnel by {dimension}", dimension, list(funnels), stages=stages)
        )
    return tables


def timeline_lines(found: Timeline) -> list[str]:
    """A heading, then one line per entry: time, contact (for an account), kind, what."""
    who = f"{found.subject_kind} {found.subject}"
    if found.subject_kind == "contact" and found.account_id:
        who += f" (account {found.account_id})"
    lines = [f"{who}: {len(found.entries)} entries, times in {found.timezone}"]
    several = len(found.contact_ids) > 1
    for entry in found.entries:
        contact = f"{entry.contact_id or '-':<10} " if several else ""
        lines.append(f"{entry.at:%Y-%m-%d %H:%M %Z}  {contact}{entry.kind:<10} {entry.text}")
    return lines


def goals_table(goals: tuple[Conversion, ...]) -> Table:
    table = Table(title="Conversion goals")
    for heading in ("touch", "goal", "sent", "converted", "rate", "last", "hours"):
        table.add_column(heading, justify="left" if heading in ("touch", "goal") else "right")
    for goal in goals:
        hours = goal.time_to_convert.total_seconds() / 3600 if goal.time_to_convert else None
        table.add_row(
            goal.touch,
            f"{goal.goal.event} in {goal.goal.within_days}d",
            str(goal.sent),
            str(goal.converted),
            percent(goal.rate),
            str(goal.last_touch),
            "-" if hours is None else f"{hours:.1f}",
        )
    return table


def holdouts_table(results: tuple[HoldoutResult, ...]) -> Table:
    """Each touch's goal in treatment and control, the uplift and its 95% interval; the
    warnings (too small, inconclusive) under the table."""
    warnings = [f"{r.touch}: {r.warning}" for r in results if r.warning]
    table = Table(
        title="Holdouts (uplift: Newcombe 95% interval)",
        caption="\n".join(warnings) or None,
        caption_justify="left",
    )
    for heading in ("touch", "goal", "treated", "rate", "held out", "rate", "uplift", "95% CI"):
        table.add_column(heading, justify="left" if heading in ("touch", "goal") else "right")
    for result in results:
        uplift = result.uplift
        table.add_row(
            result.touch,
            f"{result.goal.event} in {result.goal.within_days}d",
            str(result.treated),
            percent(result.treatment_rate),
            str(result.held_out),
            percent(result.control_rate),
            "-" if uplift is None else f"{uplift[0]:+.1%}",
            "-" if uplift is None else f"{uplift[1]:+.1%} to {uplift[2]:+.1%}",
        )
    return table


def _nps_table(title: str, label: str, groups: tuple[NpsGroup, ...]) -> Table:
    table = Table(title=title)
    table.add_column(label)
    for heading in ("NPS", "answered", "surveyed", "response", "promoters", "passives", "detr."):
        table.add_column(heading, justify="right")
    table.add_column("scores 0..10")
    for group in groups:
        table.add_row(
            group.value,
            "-" if group.score is None else f"{group.score:+.0f}",
            str(group.answered),
            str(group.surveyed),
            percent(group.response_rate),
            str(group.promoters),
            str(group.passives),
            str(group.detractors),
            " ".join(str(n) for n in group.distribution),
        )
    return table


def nps_tables(results: NpsResults) -> list[Table]:
    """NPS in all, then one table per grouping."""
    tables = [_nps_table("NPS", "", (results.total,))]
    for dimension, groups in results.by.items():
        tables.append(_nps_table(f"NPS by {dimension}", dimension, groups))
    return tables
