"""The demo's own emails against the mounted app: the bundled example (examples/onboarding)
run by an engine, its welcome and NPS emails composed by its templates, and each of their
links followed through the web app mounted where the program says. Tampered links are
refused and change nothing; the store shows what the real ones did."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import attrs
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from onetomany import Account, Contact
from onetomany.engine import Engine
from onetomany.model import Message
from onetomany.model.clock import FrozenClock
from onetomany.program import load_program
from onetomany.store import Store
from onetomany.store.queries.events import events_of
from onetomany.testing import RecordingChannel, make_plugins
from onetomany.web import create_app

from .conftest import KEYS
from .emails import FIREFOX, flip

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "onboarding"
#: Where the demo's program.toml says the app is mounted ([tracking] base_url).
MOUNT = "https://app.acme-analytics.test/onetomany"


@attrs.define
class Demo:
    engine: Engine
    email: RecordingChannel
    client: TestClient

    def sent(self, touch: str) -> Message:
        (message,) = [m for m in self.email.sent if m.touch == touch]
        return message

    def get(self, link: str, **kwargs: object) -> object:
        return self.client.get(_path(link), **kwargs)  # type: ignore[arg-type]

    def events(self, name: str) -> list[dict[str, object]]:
        contact = self.engine.store.get_contact("ada")
        assert contact is not None
        return [dict(e.properties) for e in events_of(self.engine.store, contact, names=[name])]


def _path(link: str) -> str:
    """The path under the host's site of a link the email carries (the test client plays the
    host, at the link's own origin)."""
    assert link.startswith(MOUNT + "/"), link
    return urlsplit(link).path


@pytest.fixture
def demo(temp_store: Store) -> Iterator[Demo]:
    program = load_program(EXAMPLE)
    # A Wednesday noon: inside the demo's email window on the contact's clock.
    clock = FrozenClock(datetime(2026, 9, 2, 12, tzinfo=UTC))
    email = RecordingChannel()
    channels = {name: RecordingChannel() for name in program.channels}
    with Engine(
        program,
        store=temp_store,
        clock=clock,
        plugins=make_plugins(),
        channels={**channels, "email": email},
    ) as engine:
        engine.identify(
            Account(id="initech", name="Initech", traits={"plan": "pro", "seats": 10}),
            Contact(
                id="ada",
                account_id="initech",
                name="Ada Lovelace",
                email="ada@initech.test",
                role="admin",
                timezone="UTC",
            ),
        )
        engine.track("signed_up", account_id="initech", contact_id="ada")
        engine.tick()
        engine.dispatch()
        engine.broadcast("nps", segment="paying", occurrence="demo", send=True)
        engine.dispatch()
        # The host mounts the app where the program's links point (docs/web.md).
        host = Starlette(routes=[Mount(urlsplit(MOUNT).path, create_app(engine, keys=KEYS))])
        with TestClient(host, base_url="https://app.acme-analytics.test") as client:
            client.follow_redirects = False
            yield Demo(engine, email, client)


def _flip(link: str, part: int) -> str:
    """``link`` with its token's ``part`` (1 payload, 2 signature) tampered with."""
    route, _, token = link.rpartition("/")
    return f"{route}/{flip(token, part)}"


def _clicks(message: Message) -> list[str]:
    return re.findall(re.escape(MOUNT) + r"/c/[^\"'\s]+", message.html or "")


def test_a_demo_emails_tracked_link_redirects_and_records_the_click(demo):
    welcome = demo.sent("welcome")
    links = _clicks(welcome)
    assert links, "the welcome email's links go through the app"
    answer = demo.get(links[0])
    assert answer.status_code == 302
    target = answer.headers["location"]
    assert "utm_campaign=welcome" in target and not target.startswith(MOUNT)
    text_links = re.findall(re.escape(MOUNT) + r"/c/[^\s)]+", welcome.text or "")
    assert text_links[0] == links[0]  # the text part's link is the same click
    for bad in (_flip(links[0], 1), _flip(links[0], 2), links[0][: len(links[0]) // 2]):
        assert demo.get(bad).status_code == 400
    [click] = demo.events("message_clicked")
    assert click["idempotency_key"] == welcome.idempotency_key and click["url"] == target


def test_a_demo_emails_open_pixel_records_the_open(demo):
    welcome = demo.sent("welcome")
    (pixel,) = re.findall(re.escape(MOUNT) + r"/o/[^\"'\s]+", welcome.html or "")
    assert demo.get(_flip(pixel, 2), headers={"User-Agent": FIREFOX}).status_code == 400
    assert demo.events("message_opened") == []
    answer = demo.get(pixel, headers={"User-Agent": FIREFOX})
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/gif"
    [opened] = demo.events("message_opened")
    assert opened["idempotency_key"] == welcome.idempotency_key


def test_a_demo_emails_list_unsubscribe_one_click_post_unsubscribes(demo):
    welcome = demo.sent("welcome")
    assert welcome.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    (link,) = re.findall(r"<(https://[^>]+)>", welcome.headers["List-Unsubscribe"])
    one_click = {"List-Unsubscribe": "One-Click"}
    for bad in (_flip(link, 2), link[:-5]):
        refused = demo.client.post(_path(bad), data=one_click)
        assert refused.status_code == 400
    assert demo.engine.preferences("ada").allows("onboarding")
    answer = demo.client.post(_path(link), data=one_click)
    assert answer.status_code == 200
    preferences = demo.engine.preferences("ada")
    assert not preferences.allows("onboarding")
    assert preferences.allows("surveys")  # only the email's own topic


def test_a_demo_nps_link_records_the_answer(demo):
    nps = demo.sent("nps")
    links = re.findall(re.escape(MOUNT) + r"/nps/[^\"'\s]+", nps.html or "")
    assert len(links) == 11  # 0 to 10
    for bad in (_flip(links[9], 1), _flip(links[9], 2), links[9][:-10]):
        assert demo.get(bad).status_code == 400
    assert demo.events("nps_answered") == []
    answer = demo.get(links[9])
    assert answer.status_code == 200
    [answered] = demo.events("nps_answered")
    assert answered["score"] == 9 and answered["idempotency_key"] == nps.idempotency_key
