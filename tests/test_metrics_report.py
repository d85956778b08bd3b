"""The HTML report opens offline in headless Chromium without console errors and shows every
section; the Mermaid diagram names the program's structure."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from plotly.offline import get_plotlyjs
from typer.testing import CliRunner

from onetomany.cli.commands import app
from onetomany.metrics.report import SECTIONS

from .report_browser import console_errors, report_browser
from .test_metrics_timeline import T0, history  # noqa: F401 (a fixture)
from .web.browser import require_chromium


@pytest.fixture
def report(history, tmp_path):  # noqa: F811
    history.track("nps_answered", contact_id="c1", properties={"score": 3})
    return history.report(tmp_path / "out" / "report.html")


def test_the_report_is_one_offline_file_with_every_section(report):
    page = report.read_text(encoding="utf-8")
    for section in SECTIONS:
        assert f'<section id="{section}">' in page
    # plotly.js is inlined whole; outside it, nothing is fetched from anywhere.
    bundle = get_plotlyjs()
    assert page.count(bundle) == 1
    own = page.replace(bundle, "")
    assert "src=" not in own and "http" not in own
    assert "Plotly.newPlot" in page


def test_the_reports_range_is_respected(history, tmp_path):  # noqa: F811
    later = history.report(tmp_path / "later.html", since=datetime(2027, 1, 1, tzinfo=UTC))
    assert "No message was queued in this range." in later.read_text(encoding="utf-8")


def test_the_report_opens_in_headless_chromium_without_console_errors(report, tmp_path):
    require_chromium()
    with report_browser(tmp_path) as driver:
        driver.get(report.resolve().as_uri())
        for section in SECTIONS:
            assert driver.find_element("id", section).is_displayed()
        charts = driver.find_elements("css selector", ".js-plotly-plot")
        assert charts, "no chart was drawn"
        assert console_errors(driver) == []


def test_cli_report_and_diagram(history, tmp_path):  # noqa: F811
    runner = CliRunner()
    out = tmp_path / "cli-report.html"
    args = ["report", str(tmp_path), "--store", str(tmp_path / "store.db"), "--out", str(out)]
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    assert "cli-report.html" in done.output and out.exists()
    shown = runner.invoke(app, ["diagram", str(tmp_path)])
    assert shown.exit_code == 0, shown.output
    assert shown.output.startswith("flowchart LR")
    assert "event_signed_up --> touch_welcome" in shown.output
