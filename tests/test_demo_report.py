"""The demo's report, as ``make demo`` writes it, opened in headless Chromium: every section
shows, every chart is drawn, the console has no error; and the screenshots the example's
README and docs/measuring.md show are taken here.

    ONETOMANY_UPDATE_SCREENSHOTS=1 .venv/bin/pytest tests/test_demo_report.py   # make screenshots

writes them into docs/images (from a simulation on the demo's own one-hour steps); without the
variable they go to a scratch folder and are checked to show something, at a sensible size.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from onetomany.metrics.report import SECTIONS

from .report_browser import WINDOW, console_errors, picture_stats, report_browser
from .test_cli import ROOT, run_cli, simulate_demo
from .web.browser import require_chromium

IMAGES = ROOT / "docs" / "images"
UPDATE = os.environ.get("ONETOMANY_UPDATE_SCREENSHOTS") == "1"
#: The sections the README shows, one screenshot each (docs/images/report-<section>.png).
SHOWN = ("funnel", "sends", "goals", "holdouts", "health", "journey")
#: The sections that draw a chart with the demo's data.
CHARTED = ("funnel", "sends", "holdouts", "health")


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``make demo``'s simulation and report, on a copy of the example. The committed
    screenshots come from its one-hour steps; the check alone runs three-hour steps, which
    send the same touches in a third of the time."""
    target = tmp_path_factory.mktemp("demo") / "onboarding"
    simulated = simulate_demo(target, step=1 if UPDATE else 3)
    store, report = target / "var" / "simulation.db", target / "var" / "report.html"
    assert simulated.returncode == 0, simulated.stderr
    written = run_cli("report", str(target), "--store", str(store), "--out", str(report))
    assert written.returncode == 0, written.stderr
    assert "wrote the report to" in written.stdout and report.exists()
    return report


def test_the_demos_report_shows_every_section_in_chromium_and_its_screenshots(
    demo_report: Path, tmp_path: Path
) -> None:
    require_chromium()
    folder = IMAGES if UPDATE else tmp_path / "images"
    folder.mkdir(parents=True, exist_ok=True)
    with report_browser(tmp_path) as driver:
        driver.get(demo_report.as_uri())
        for section in SECTIONS:
            element = driver.find_element("id", section)
            assert element.is_displayed(), section
            assert element.find_element("tag name", "h2").text, section
        for section in CHARTED:
            drawn = driver.find_elements("css selector", f"#{section} .js-plotly-plot .main-svg")
            assert drawn, f"no chart was drawn in the {section} section"
        # Nancy (ct-001) opens each of her five day recaps (and nobody else opens one).
        rows = driver.find_elements("css selector", "#funnel tbody tr")
        cells = {r.find_element("tag name", "td").text: r.text.split() for r in rows}
        assert cells["day_recap"][1:5] == ["40", "40", "0", "5"]
        holdouts = driver.find_element("id", "holdouts").text
        assert "too small to conclude" in holdouts

        for section in SHOWN:
            element = driver.find_element("id", section)
            driver.execute_script("arguments[0].scrollIntoView();", element)
            png = element.screenshot_as_png
            width, height, colours, commonest = picture_stats(driver, png)
            # As wide as the page's column, no taller than the window, and not blank: text
            # and charts bring hundreds of colours, and no single one covers it all.
            assert 600 <= width <= WINDOW[0], (section, width)
            assert 100 <= height <= WINDOW[1], (section, height)
            assert colours >= 50 and commonest < 0.98, (section, colours, commonest)
            (folder / f"report-{section}.png").write_bytes(png)
        assert console_errors(driver) == []
    assert sorted(p.name for p in folder.glob("report-*.png")) == sorted(
        f"report-{s}.png" for s in SHOWN
    )
