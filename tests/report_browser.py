"""The HTML report in a real browser: Debian's Chromium, headless, driven by Selenium, with
its console log kept so a test can tell that the page's scripts ran without an error; and the
screenshots it takes, decoded by the same browser (no imaging library needed) to tell a blank
picture from one that shows something."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .web.browser import chromium

#: Wide enough for the report's tables and charts side by side, tall enough for a section.
WINDOW = (1200, 2000)

# Decodes a PNG (a data: URL) on a canvas and answers its size, how many colours it has and
# what share of its pixels the commonest colour covers.
_PICTURE_STATS = """
const [url, done] = arguments;
const image = new Image();
image.onload = () => {
  const canvas = document.createElement("canvas");
  canvas.width = image.naturalWidth;
  canvas.height = image.naturalHeight;
  const context = canvas.getContext("2d");
  context.drawImage(image, 0, 0);
  const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
  const counts = new Map();
  for (let i = 0; i < data.length; i += 4) {
    const colour = (data[i] << 16) | (data[i + 1] << 8) | data[i + 2];
    counts.set(colour, (counts.get(colour) || 0) + 1);
  }
  const commonest = Math.max(...counts.values());
  done([canvas.width, canvas.height, counts.size, commonest / (data.length / 4)]);
};
image.onerror = () => done(null);
image.src = url;
"""


@contextmanager
def report_browser(scratch: Path) -> Iterator[Any]:
    """Headless Chromium keeping its console log, its profile under ``scratch``."""
    with chromium(scratch, window=WINDOW, console=True) as driver:
        yield driver


def console_errors(driver: Any) -> list[str]:
    """The console's errors since the last call (the log is read once)."""
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def picture_stats(driver: Any, png: bytes) -> tuple[int, int, int, float]:
    """Width, height, number of colours and the commonest colour's share of ``png``."""
    url = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    found = driver.execute_async_script(_PICTURE_STATS, url)
    if found is None:
        raise AssertionError("the browser could not decode the screenshot as a PNG")
    width, height, colours, commonest = found
    return int(width), int(height), int(colours), float(commonest)
