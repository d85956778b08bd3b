"""The <onetomany-inbox> widget in a real headless Chromium: a host page embeds it, the bell
shows the unread count, opening a message drops the count and records the read (and the
open event) in the store; message text cannot inject script; keyboard, locale, error state.

Set ONETOMANY_SCREENSHOTS=docs/images to refresh the screenshots docs/widget.md shows.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Mount, Route

from onetomany.engine import Engine
from onetomany.web import create_app

from .browser import chromium, require_chromium, serving
from .conftest import KEYS, deliver_tips, token
from .test_preferences_api import with_topics

pytestmark = pytest.mark.slow

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Acme app</title>
<script type="module" src="/onetomany/widget.js"></script>
<style>
  body {{ font-family: system-ui, sans-serif; margin: 0; background: #f3f4f6; }}
  header {{ display: flex; justify-content: space-between; align-items: center;
           padding: 10px 24px; background: #fff; border-bottom: 1px solid #e5e7eb; }}
  onetomany-inbox {{ --onetomany-accent: #7c3aed; }}
</style></head>
<body><header><strong>Acme</strong>
<onetomany-inbox api="/onetomany" token="{token}" poll="1"{extra}></onetomany-inbox>
</header><main style="height: 560px"></main></body></html>
"""


def host_app(engine: Engine) -> Starlette:
    """The host's own app: its page, with the onetomany app mounted under /onetomany."""

    async def page(request: Request) -> HTMLResponse:
        who = request.query_params.get("as", "c1")
        issued = "not-a-token" if who == "nobody" else token(engine, who)
        extra = ' open=""' if request.query_params.get("open") else ""
        return HTMLResponse(PAGE.format(token=issued, extra=extra))

    return Starlette(routes=[Route("/", page), Mount("/onetomany", create_app(engine, keys=KEYS))])


@pytest.fixture
def browser(tmp_path: Path, sqlite_engine: Engine) -> Iterator[tuple[Any, str]]:
    require_chromium()
    with serving(host_app(sqlite_engine)) as base, chromium(tmp_path) as driver:
        yield driver, base


def _shadow(driver: Any) -> Any:
    from selenium.webdriver.common.by import By

    host = driver.find_element(By.CSS_SELECTOR, "onetomany-inbox")
    return host.shadow_root


def _wait(driver: Any, condition: Any, timeout: float = 10) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: condition())


def _item(driver: Any, index: int) -> Any:
    """The list's ``index``-th message, found again: the widget re-renders its list when a
    message changes (or a poll answers), which leaves earlier references stale."""
    from selenium.webdriver.common.by import By

    return _shadow(driver).find_elements(By.CSS_SELECTOR, ".item")[index]


def _badge(driver: Any) -> str:
    from selenium.webdriver.common.by import By

    badge = _shadow(driver).find_element(By.CSS_SELECTOR, ".badge")
    return badge.text if badge.is_displayed() else ""


def _shot(driver: Any, name: str) -> None:
    folder = os.environ.get("ONETOMANY_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / f"widget-{name}.png"))


def test_open_a_message_drops_the_count_and_records_the_read(browser, sqlite_engine):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver, base = browser
    deliver_tips(sqlite_engine, "c1", 3)
    driver.get(base + "/")
    _wait(driver, lambda: _badge(driver) == "3")
    bell = _shadow(driver).find_element(By.CSS_SELECTOR, ".bell")
    assert bell.get_attribute("aria-label") == "Notifications, 3 unread"
    assert bell.get_attribute("aria-expanded") == "false"
    _shot(driver, "bell")

    bell.click()
    items = _wait(driver, lambda: _shadow(driver).find_elements(By.CSS_SELECTOR, ".item"))
    assert [i.find_element(By.CSS_SELECTOR, ".item-title").text for i in items] == [
        "Tip 3 for Nancy",
        "Tip 2 for Nancy",
        "Tip 1 for Nancy",
    ]
    _wait(driver, lambda: sqlite_engine.inbox_counts("c1").unseen == 0)  # the list was seen
    _shot(driver, "list")

    items[0].find_element(By.CSS_SELECTOR, ".open").click()
    _wait(driver, lambda: _badge(driver) == "2")
    _wait(
        driver,
        lambda: "here is tip 3" in _item(driver, 0).find_element(By.CSS_SELECTOR, ".body").text,
    )
    _shot(driver, "opened")
    newest = sqlite_engine.inbox("c1")[0]
    assert newest.read_at is not None
    assert [i.read_at is None for i in sqlite_engine.inbox("c1")] == [False, True, True]
    opened = [e for _, e in sqlite_engine.store.events_after(0) if e.name == "message_opened"]
    assert [e.properties["idempotency_key"] for e in opened] == [newest.idempotency_key]

    # Keyboard: Escape closes the panel and gives the focus back to the bell.
    _item(driver, 0).find_element(By.CSS_SELECTOR, ".open").send_keys(Keys.ESCAPE)
    panel = _shadow(driver).find_element(By.CSS_SELECTOR, ".panel")
    assert not panel.is_displayed()
    focused = driver.execute_script(
        "return document.querySelector('onetomany-inbox').shadowRoot.activeElement.className"
    )
    assert focused == "bell"


def test_archive_and_the_tabs_by_keyboard(browser, sqlite_engine):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver, base = browser
    deliver_tips(sqlite_engine, "c1", 2)
    driver.get(base + "/?open=1")
    items = _wait(driver, lambda: _shadow(driver).find_elements(By.CSS_SELECTOR, ".item"))
    items[0].find_element(By.CSS_SELECTOR, ".open").click()
    _item(driver, 0).find_element(By.CSS_SELECTOR, "[part=archive]").click()
    _wait(driver, lambda: len(_shadow(driver).find_elements(By.CSS_SELECTOR, ".item")) == 1)
    assert sqlite_engine.inbox_page("c1", tab="archived").items[0].title == "Tip 2 for Nancy"

    tab = _shadow(driver).find_element(By.CSS_SELECTOR, "[data-tab=inbox]")
    tab.send_keys(Keys.ARROW_RIGHT, Keys.ARROW_RIGHT)  # inbox -> unread -> archived
    _wait(
        driver,
        lambda: (
            _shadow(driver)
            .find_element(By.CSS_SELECTOR, "[data-tab=archived]")
            .get_attribute("aria-selected")
            == "true"
        ),
    )
    titles = _wait(
        driver,
        lambda: (
            [t.text for t in _shadow(driver).find_elements(By.CSS_SELECTOR, ".item-title")]
            == ["Tip 2 for Nancy"]
        ),
    )
    assert titles


def test_message_text_is_shown_as_text_never_run(browser, sqlite_engine):
    from selenium.webdriver.common.by import By

    driver, base = browser
    sqlite_engine.store.inbox_add(
        contact_id="c1",
        idempotency_key="evil",
        touch="t",
        title='<img src=x onerror="window.pwned=1">',
        body='<script>window.pwned=1</script><img src=x onerror="window.pwned=1">',
        url="javascript:window.pwned=1",
        now=sqlite_engine.clock.now(),
    )
    driver.get(base + "/?open=1")
    item = _wait(driver, lambda: _shadow(driver).find_elements(By.CSS_SELECTOR, ".item"))[0]
    item.find_element(By.CSS_SELECTOR, ".open").click()
    body = item.find_element(By.CSS_SELECTOR, ".body")
    assert "<script>window.pwned=1</script>" in body.text
    assert item.find_element(By.CSS_SELECTOR, ".item-title").text.startswith("<img")
    assert item.find_elements(By.CSS_SELECTOR, "img, script, a") == []  # no javascript: link
    assert driver.execute_script("return window.pwned === undefined")


def test_the_contacts_locale_the_empty_and_the_error_states(browser, sqlite_engine):
    from selenium.webdriver.common.by import By

    driver, base = browser
    driver.get(base + "/?as=c2&open=1")  # c2 reads Portuguese
    _wait(
        driver,
        lambda: _shadow(driver).find_element(By.CSS_SELECTOR, ".status").text == "Tudo em dia.",
    )
    assert _shadow(driver).find_element(By.CSS_SELECTOR, "h2").text == "Notificações"
    _shot(driver, "empty")

    driver.get(base + "/?as=nobody&open=1")
    status = _wait(
        driver,
        lambda: (
            "expired" in _shadow(driver).find_element(By.CSS_SELECTOR, ".status").text
            and _shadow(driver).find_element(By.CSS_SELECTOR, ".status")
        ),
    )
    assert status.get_attribute("role") == "alert"
    _shot(driver, "error")


def test_a_click_through_is_recorded_then_followed(browser, sqlite_engine):
    from selenium.webdriver.common.by import By

    driver, base = browser
    deliver_tips(sqlite_engine, "c1", 1)
    driver.get(base + "/?open=1")
    item = _wait(driver, lambda: _shadow(driver).find_elements(By.CSS_SELECTOR, ".item"))[0]
    item.find_element(By.CSS_SELECTOR, ".open").click()
    item.find_element(By.CSS_SELECTOR, "[part=link]").click()
    _wait(driver, lambda: driver.current_url == base + "/tips/1")
    names = [e.name for _, e in sqlite_engine.store.events_after(0)]
    assert names.count("message_clicked") == 1
    assert names.count("message_opened") == 1


def test_polling_shows_a_new_message_without_a_reload(browser, sqlite_engine):
    driver, base = browser
    deliver_tips(sqlite_engine, "c1", 1)
    driver.get(base + "/")
    _wait(driver, lambda: _badge(driver) == "1")
    deliver_tips(sqlite_engine, "c1", 1, start=2)
    _wait(driver, lambda: _badge(driver) == "2")


def test_the_preferences_panel_toggles_a_topic_by_keyboard_and_stores_it(browser, sqlite_engine):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver, base = browser
    with_topics(sqlite_engine)
    deliver_tips(sqlite_engine, "c1", 1)
    driver.get(base + "/?open=1")
    _wait(driver, lambda: _shadow(driver).find_elements(By.CSS_SELECTOR, ".item"))
    toggle = _shadow(driver).find_element(By.CSS_SELECTOR, "[part=preferences-toggle]")
    assert toggle.text == "Preferences" and toggle.get_attribute("aria-expanded") == "false"
    toggle.send_keys(Keys.ENTER)
    tips = _wait(
        driver, lambda: _shadow(driver).find_elements(By.CSS_SELECTOR, "[data-topic=tips]")
    )[0]
    assert toggle.get_attribute("aria-expanded") == "true" and toggle.text == "Back"
    assert _shadow(driver).find_element(By.CSS_SELECTOR, "h2").text == "Preferences"
    assert not _shadow(driver).find_element(By.CSS_SELECTOR, ".list").is_displayed()
    billing = _shadow(driver).find_element(By.CSS_SELECTOR, "[data-topic=billing]")
    assert billing.is_selected() and not billing.is_enabled()  # transactional: always sent
    focused = driver.execute_script(
        "return document.querySelector('onetomany-inbox').shadowRoot.activeElement.dataset.topic"
    )
    assert focused == "tips"  # the focus moved into the panel, on the first box
    assert tips.is_selected()

    tips.send_keys(Keys.SPACE)
    status = _shadow(driver).find_element(By.CSS_SELECTOR, "[part=preferences-status]")
    _wait(driver, lambda: status.text == "Your preferences are saved.")
    assert not tips.is_selected()
    assert not sqlite_engine.preferences("c1").allows("tips")
    assert sqlite_engine.preferences("c1").answers[-1].source == "inbox"
    _shot(driver, "preferences")

    email = _shadow(driver).find_element(By.CSS_SELECTOR, "[data-channel=email]")
    email.send_keys(Keys.SPACE)
    _wait(driver, lambda: not sqlite_engine.preferences("c1").allows(None, "email"))

    toggle.send_keys(Keys.ENTER)  # back to the list
    _wait(driver, lambda: _shadow(driver).find_element(By.CSS_SELECTOR, ".list").is_displayed())
    assert toggle.text == "Preferences"
