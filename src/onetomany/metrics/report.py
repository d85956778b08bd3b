"""The HTML report: one self-contained file (plotly.js inlined, no CDN) that works offline.

Sections, for what the store holds: the funnel per touch, sends per day per channel, CSM
tasks per CSM per week against capacity, conversion goals, holdout results (the goal in
treatment and control, the uplift and its interval), NPS (score, response rate and
distribution) by segment, tier, plan and month, health scores (distribution and trend),
the journey's stages (mean days against the ideal), and the policy deferrals. It runs on a
program's own store or on a ``simulate --store`` output (a backtest before going live).
Every number comes from the store's queries (through :mod:`onetomany.metrics`); this
module only lays out.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from onetomany.metrics.funnel import measure
from onetomany.metrics.goals import conversions
from onetomany.metrics.health import BANDS, HealthSummary, health_summary
from onetomany.metrics.holdouts import METHOD, HoldoutResult
from onetomany.metrics.nps import NpsResults, nps_results
from onetomany.model import ChannelKind
from onetomany.store.queries.metrics import (
    sends_per_day,
    sent_per_week,
    stage_durations,
)

if TYPE_CHECKING:
    from onetomany.delivery.channels import Channel
    from onetomany.program import Program
    from onetomany.store import Store

#: The ids of the report's sections, in order (a test checks each is shown).
SECTIONS = (
    "funnel",
    "sends",
    "csm",
    "goals",
    "holdouts",
    "nps",
    "health",
    "journey",
    "deferrals",
)
_FUNNEL_STAGES = ("queued", "sent", "delivered", "opened", "clicked", "answered")


@attrs.frozen(kw_only=True)
class Section:
    id: str
    title: str
    #: HTML: a chart's div, a table, or a sentence saying there is nothing yet.
    body: str


def _table(headings: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headings)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _empty(what: str) -> str:
    return f'<p class="empty">{html.escape(what)}</p>'


def _chart(figure: go.Figure) -> str:
    figure.update_layout(margin={"l": 40, "r": 20, "t": 30, "b": 40}, height=360)
    # The plotly.js bundle is written once, in the page's head.
    return str(figure.to_html(full_html=False, include_plotlyjs=False))


def _pct(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "-"


def build_sections(
    program: Program,
    store: Store,
    *,
    channels: dict[str, Channel],
    now: datetime,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[Section]:
    """Every section of the report, in :data:`SECTIONS` order."""
    found = measure(program, store, now=now, by=["touch"], since=since, until=until)
    touches = found.by["touch"]
    sections = []

    if touches:
        figure = go.Figure(
            [
                go.Bar(
                    name=stage, x=[f.value for f in touches], y=[getattr(f, stage) for f in touches]
                )
                for stage in _FUNNEL_STAGES
            ]
        )
        figure.update_layout(barmode="group")
        rows = [
            (f.value, f.queued, f.sent, f.failed, f.opened, f.clicked, _pct(f.opened, f.sent))
            for f in touches
        ]
        body = _chart(figure) + _table(
            ("touch", "queued", "sent", "failed", "opened", "clicked", "open rate"), rows
        )
    else:
        body = _empty("No message was queued in this range.")
    sections.append(Section(id="funnel", title="Funnel per touch", body=body))

    days = sends_per_day(store, since=since, until=until)
    if days:
        per_channel: dict[str, tuple[list[str], list[int]]] = {}
        for day, channel, sent in days:
            xs, ys = per_channel.setdefault(channel, ([], []))
            xs.append(day)
            ys.append(sent)
        figure = go.Figure(
            [go.Bar(name=ch, x=xs, y=ys) for ch, (xs, ys) in sorted(per_channel.items())]
        )
        figure.update_layout(barmode="stack")
        body = _chart(figure)
    else:
        body = _empty("Nothing was sent in this range.")
    sections.append(Section(id="sends", title="Sends per day per channel", body=body))

    csm = [name for name, ch in channels.items() if ch.serves == ChannelKind.CSM]
    weeks = sent_per_week(store, channels=csm, since=since, until=until) if csm else []
    capacity = program.tiers.capacity
    if weeks:
        # A week of a CSM's hours, for tasks measured against it (160 h a month by default).
        hours = capacity.csm_hours_per_month * 12 / 52 if capacity is not None else None
        body = _table(
            ("week", "CSM (account owner)", "tasks"),
            [(w, owner or "(no owner)", n) for w, owner, n in weeks],
        )
        if hours is not None:
            body += f"<p>Capacity: {hours:.0f} hours per CSM per week.</p>"
    else:
        body = _empty("No CSM task was sent in this range.")
    sections.append(Section(id="csm", title="CSM tasks per CSM per week", body=body))

    goals = conversions(program, store, since=since, until=until)
    body = (
        _table(
            ("touch", "goal", "sent", "converted", "rate", "last touch"),
            [
                (
                    g.touch,
                    g.goal.describe(),
                    g.sent,
                    g.converted,
                    _pct(g.converted, g.sent),
                    g.last_touch,
                )
                for g in goals
            ],
        )
        if goals
        else _empty("No touch names a goal.")
    )
    sections.append(Section(id="goals", title="Conversion goals", body=body))
    sections.append(_holdouts(found.holdouts))

    results = nps_results(
        store,
        now=now,
        segments=program.segment_set(),
        by=("segment", "tier", "plan", "month"),
        since=since,
        until=until,
    )
    sections.append(_nps(results))
    sections.append(_health(health_summary(store, now=now, since=since, until=until)))

    ideal = {(j.name, s.name): s.ideal_days for j in program.journeys.values() for s in j.stages}
    stages = stage_durations(store)
    body = (
        _table(
            ("journey", "stage", "completed", "mean days", "ideal days"),
            [(j, s, n, f"{d:.1f}", ideal.get((j, s), "")) for j, s, n, d in stages],
        )
        if stages
        else _empty("No journey stage was completed yet.")
    )
    sections.append(Section(id="journey", title="Journey stages", body=body))

    deferred = [(f.value, f.deferred, f.suppressed) for f in touches if f.deferred or f.suppressed]
    body = (
        _table(("touch", "deferred", "suppressed"), deferred)
        if deferred
        else _empty("No send policy deferred or suppressed a touch in this range.")
    )
    sections.append(Section(id="deferrals", title="Policy deferrals", body=body))
    return sections


def _nps(results: NpsResults) -> Section:
    """The score and response rate in all and per grouping, and the scores' distribution."""
    total = results.total
    if not total.answered:
        body = _empty("No NPS answer was recorded in this range.")
        return Section(id="nps", title="NPS", body=body)
    figure = go.Figure([go.Bar(x=[str(score) for score in range(11)], y=list(total.distribution))])
    figure.update_layout(xaxis_title="score", yaxis_title="contacts (latest answer)")
    parts = [
        f"<p>NPS {total.score:+.0f} from {total.answered} answers"
        f" (response rate {_rate(total.response_rate)}).</p>",
        _chart(figure),
    ]
    for dimension, groups in results.by.items():
        if groups:
            parts.append(
                f"<h3>By {html.escape(dimension)}</h3>"
                + _table(
                    (dimension, "NPS", "answered", "response", "promoters", "detractors"),
                    [
                        (
                            g.value or "(none)",
                            "-" if g.score is None else f"{g.score:+.0f}",
                            g.answered,
                            _rate(g.response_rate),
                            g.promoters,
                            g.detractors,
                        )
                        for g in groups
                    ],
                )
            )
    return Section(id="nps", title="NPS", body="".join(parts))


def _health(summary: HealthSummary) -> Section:
    """The latest score of every account in bands, and the book's mean score per day."""
    if not summary.accounts:
        body = _empty("No health score was computed yet (declare [health] measures).")
        return Section(id="health", title="Health scores", body=body)
    bands = go.Figure([go.Bar(x=list(BANDS), y=list(summary.bands), name="accounts")])
    bands.update_layout(xaxis_title="latest score", yaxis_title="accounts")
    days = [day for day, _, _ in summary.trend]
    trend = go.Figure(
        [go.Scatter(x=days, y=[mean for _, mean, _ in summary.trend], mode="lines+markers")]
    )
    trend.update_layout(yaxis_title="mean score", yaxis={"range": [0, 100]})
    body = (
        f"<p>{summary.accounts} accounts scored.</p><h3>Distribution</h3>"
        + _chart(bands)
        + "<h3>Trend</h3>"
        + _chart(trend)
    )
    return Section(id="health", title="Health scores", body=body)


def _rate(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.0%}"


def _holdouts(results: Sequence[HoldoutResult]) -> Section:
    """The goal's rate in treatment and control per touch, with the uplift's interval."""
    if not results:
        body = _empty("No touch with a goal declares a holdout.")
        return Section(id="holdouts", title="Holdouts", body=body)
    touches = [r.touch for r in results]
    figure = go.Figure(
        [
            go.Bar(name="treatment", x=touches, y=[r.treatment_rate or 0 for r in results]),
            go.Bar(name="control", x=touches, y=[r.control_rate or 0 for r in results]),
        ]
    )
    figure.update_layout(barmode="group", yaxis={"tickformat": ".0%"})
    rows = []
    for r in results:
        uplift = r.uplift
        rows.append(
            (
                r.touch,
                r.goal.describe(),
                f"{r.treated_converted}/{r.treated}",
                _pct(r.treated_converted, r.treated),
                f"{r.held_out_converted}/{r.held_out}",
                _pct(r.held_out_converted, r.held_out),
                "-" if uplift is None else f"{uplift[0] * 100:+.1f} pts",
                "-" if uplift is None else f"{uplift[1] * 100:+.1f} to {uplift[2] * 100:+.1f} pts",
                r.warning or "",
            )
        )
    body = (
        _chart(figure)
        + _table(
            (
                "touch",
                "goal",
                "treated",
                "rate",
                "held out",
                "rate",
                "uplift",
                "95% interval",
                "warning",
            ),
            rows,
        )
        + f"<p>Interval: {html.escape(METHOD)}.</p>"
    )
    return Section(id="holdouts", title="Holdouts", body=body)


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6rem; } h2 { margin-top: 2.5rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 1rem 0; }
th, td { padding: .25rem .75rem; border-bottom: 1px solid #eee; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.empty { color: #777; font-style: italic; }
"""


def render_html(
    title: str, sections: Sequence[Section], *, since: datetime | None, until: datetime | None
) -> str:
    """One page: plotly.js inlined once in the head, then every section."""
    span = f"{since:%Y-%m-%d}" if since else "the start"
    span += f" to {until:%Y-%m-%d}" if until else " to now"
    nav = " · ".join(f'<a href="#{s.id}">{html.escape(s.title)}</a>' for s in sections)
    body = "".join(
        f'<section id="{s.id}"><h2>{html.escape(s.title)}</h2>{s.body}</section>' for s in sections
    )
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style>"
        f"<script>{get_plotlyjs()}</script></head><body>"
        f"<h1>{html.escape(title)}</h1><p>Messages from {span}.</p><nav>{nav}</nav>{body}"
        "</body></html>"
    )


def write_report(
    program: Program,
    store: Store,
    out: Path,
    *,
    channels: dict[str, Channel],
    now: datetime,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Path:
    """Write the report of ``program``'s ``store`` to ``out``; returns it."""
    sections = build_sections(program, store, channels=channels, now=now, since=since, until=until)
    page = render_html(f"{program.name}: what the program did", sections, since=since, until=until)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out
