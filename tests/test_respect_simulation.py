"""A 90-day simulation of the example, read back from its output file against each contact's
own timezone: nothing is sent outside a window, and no contact goes over a cap."""

from __future__ import annotations

import csv
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from onetomany.cli.simulate import SimulationReport, Simulator, write_touches
from onetomany.program import load_program

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "onboarding"
#: The example's windows, as its program.toml states them: (first hour, end hour, weekdays).
WINDOWS = {"email": (8, 20, range(7)), "sms": (8, 21, range(7))}
HOLIDAYS = {
    "default": {date(2026, 12, 25)},
    "pt-BR": {date(2026, 11, 2), date(2026, 11, 15), date(2026, 11, 20)},
}


@pytest.fixture(scope="module")
def simulation(tmp_path_factory) -> tuple[SimulationReport, list[dict[str, str]]]:
    out = tmp_path_factory.mktemp("respect") / "touches.csv"
    report = Simulator(
        load_program(EXAMPLE),
        datetime(2026, 9, 1, tzinfo=UTC),
        datetime(2026, 11, 30, tzinfo=UTC),
        dry_run=True,
        step=timedelta(hours=3),
    ).run()
    write_touches(report.touches, out)
    with out.open(encoding="utf-8") as file:
        return report, list(csv.DictReader(file))


def contacts() -> dict[str, dict[str, str]]:
    with (EXAMPLE / "data" / "contacts.csv").open(encoding="utf-8") as file:
        return {row["id"]: row for row in csv.DictReader(file)}


@pytest.mark.slow
def test_nothing_is_sent_outside_the_recipients_window(simulation):
    _, rows = simulation
    people = contacts()
    checked = 0
    for row in rows:
        if row["status"] != "sent" or row["kind"] not in WINDOWS:
            continue
        person = people[row["contact"]]
        local = datetime.fromisoformat(row["time"]).astimezone(ZoneInfo(person["timezone"]))
        first, end, days = WINDOWS[row["kind"]]
        closed = HOLIDAYS.get(person["locale"], HOLIDAYS["default"])
        assert first <= local.hour < end, (row, local)
        assert local.weekday() in days, (row, local)
        assert local.date() not in closed, (row, local)
        checked += 1
    assert checked > 50  # the example really sends emails and texts in the range


@pytest.mark.slow
def test_no_contact_goes_over_a_cap(simulation):
    _, rows = simulation
    caps = load_program(EXAMPLE).caps
    assert caps  # the example declares its caps
    for cap in caps.values():
        sent: dict[str, list[datetime]] = defaultdict(list)
        for row in rows:
            if row["status"] == "sent" and cap.covers(row["touch"], row["channel"]):
                sent[row["contact"]].append(datetime.fromisoformat(row["time"]))
        for contact, times in sent.items():
            times.sort()
            for i, at in enumerate(times):
                in_window = [t for t in times[: i + 1] if t > at - cap.window]
                assert len(in_window) <= cap.max, (cap.name, contact, times)


@pytest.mark.slow
def test_the_simulation_counts_what_the_policies_did_per_touch(simulation):
    report, rows = simulation
    outcomes = {o.touch: o for o in report.outcomes()}
    # Signups and cadences land at all hours of the contacts' days: quiet hours defer some.
    assert sum(o.deferred for o in outcomes.values()) > 0
    assert all(
        o.sent == sum(1 for r in rows if r["touch"] == t and r["status"] == "sent")
        for t, o in outcomes.items()
    )
