"""Screenshots of the demo's HTML report, one per section, taken by headless Chromium.

    make demo
    .venv/bin/python examples/onboarding/screenshots.py \
        examples/onboarding/var/report.html docs/images

Needs Debian's chromium and chromium-driver (the same the report's browser test drives).
Writes ``report-<section>.png`` for each section the report shows, and fails on any console
error, as the test does.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from onetomany.metrics.report import SECTIONS

#: The sections the README shows.
SHOWN = ("funnel", "sends", "goals", "holdouts", "health", "journey")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,2000"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(shutil.which("chromedriver") or "/usr/bin/chromedriver")
    driver = webdriver.Chrome(options=options, service=service)
    try:
        driver.get(args.report.resolve().as_uri())
        args.out.mkdir(parents=True, exist_ok=True)
        for section in SECTIONS:
            if section not in SHOWN:
                continue
            element = driver.find_element("id", section)
            driver.execute_script("arguments[0].scrollIntoView();", element)
            path = args.out / f"report-{section}.png"
            element.screenshot(str(path))
            print(f"wrote {path}")
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    finally:
        driver.quit()
    for error in errors:
        print(f"console error: {error['message']}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
