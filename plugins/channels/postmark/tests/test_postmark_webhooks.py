"""Postmark's webhooks through the web app: a message sent through the fake Postmark, then
its delivery, bounce, complaint, open and click posted to ``/webhooks/email`` as Postmark
documents them; and the requests that are refused with nothing recorded (no or wrong
credentials, a replay, a message the store does not hold, a body that does not read)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
from conftest import TOKEN
from starlette.testclient import TestClient

import onetomany_postmark
from onetomany import Account, Contact, Engine
from onetomany.model.clock import FrozenClock
from onetomany.plugins.settings import PluginSettings
from onetomany.program import EngagementTrigger, EventTrigger, Program, Touch
from onetomany.store import Store
from onetomany.store.queries.events import events_of
from onetomany.testing import make_plugins
from onetomany.web import SigningKeys, create_app
from onetomany_postmark.testing import FakePostmark
from onetomany_postmark.wire import metadata

WELCOME = """\
+++
subject = "Welcome"
+++
<mjml><mj-body><mj-section><mj-column><mj-text>Hello.</mj-text></mj-column></mj-section>
</mj-body></mjml>
"""
USER, PASSWORD = "postmark", "hook-password-6f1c2a9e"
SECRET_PATH = "p7Qm2xVb9Kc4"


@attrs.define
class Hooked:
    engine: Engine
    client: TestClient
    key: str

    def post(
        self,
        document: dict[str, Any],
        *,
        auth: tuple[str, str] | None = (USER, PASSWORD),
        path: str = "/webhooks/email",
    ) -> Any:
        headers = {}
        if auth is not None:
            pair = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            headers["Authorization"] = f"Basic {pair}"
        return self.client.post(path, json=document, headers=headers)

    def events(self, name: str) -> list[dict[str, Any]]:
        contact = self.engine.store.get_contact("c1")
        assert contact is not None
        return [dict(e.properties) for e in events_of(self.engine.store, contact, names=[name])]


def _engine(
    tmp_path: Path, store: Store, clock: FrozenClock, postmark: FakePostmark, **webhook: Any
) -> Iterator[Hooked]:
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "welcome.mjml").write_text(WELCOME)
    (folder / "nudge.mjml").write_text(WELCOME)
    options = {
        "server_token": TOKEN,
        "base_url": postmark.url,
        "sender": "Acme <success@acme.test>",
        "timeout": 1.0,
    } | webhook
    program = Program(
        name="acme",
        touches=(
            Touch(
                name="welcome",
                trigger=EventTrigger(event="signed_up"),
                channel="email",
                template="welcome",
            ),
            Touch(
                name="nudge",
                channel="email",
                template="nudge",
                trigger=EngagementTrigger(touch="welcome", outcome="not_opened", days=2),
            ),
        ),
        channels={"email": PluginSettings(name="email", plugin="postmark", options=options)},
        templates_dir=folder,
        base_dir=tmp_path,
    )
    plugins = make_plugins(("postmark", onetomany_postmark))
    with Engine(program, store=store, clock=clock, plugins=plugins) as engine:
        engine.identify(
            Account(id="a1", name="Northwind"),
            Contact(id="c1", account_id="a1", name="Nancy Davolio", email="nancy@northwind.test"),
        )
        engine.track("signed_up", contact_id="c1", account_id="a1")
        engine.tick()
        engine.dispatch()
        (row,) = engine.store.outbox_rows()
        keys = SigningKeys.of({"k1": "w" * 40})
        with TestClient(create_app(engine, keys=keys)) as client:
            yield Hooked(engine, client, row.idempotency_key)


@pytest.fixture
def hooked(tmp_path, temp_store, clock, postmark) -> Iterator[Hooked]:
    yield from _engine(
        tmp_path, temp_store, clock, postmark, webhook_username=USER, webhook_password=PASSWORD
    )


def _when(hooked: Hooked, minutes: int = 1) -> str:
    return (hooked.engine.clock.now() + timedelta(minutes=minutes)).isoformat()


def bounce(hooked: Hooked, **fields: Any) -> dict[str, Any]:
    return {
        "RecordType": "Bounce",
        "ID": 4323372036854775807,
        "Type": "HardBounce",
        "TypeCode": 1,
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "Description": "The server was unable to deliver your message (ex: unknown user).",
        "Email": "nancy@northwind.test",
        "BouncedAt": _when(hooked),
        "Inactive": True,
        "Metadata": metadata(hooked.key),
    } | fields


def test_the_channel_sends_the_key_the_webhooks_map_back_by(hooked, postmark):
    sent = postmark.accepted[-1]
    assert sent["Metadata"] == metadata(hooked.key)


def test_a_hard_bounce_is_recorded_once_and_suppresses_the_address(hooked):
    first = hooked.post(bounce(hooked))
    assert first.status_code == 200 and first.json() == {"recorded": 1, "duplicates": 0}
    again = hooked.post(bounce(hooked))  # Postmark retrying, or someone replaying it
    assert again.json() == {"recorded": 0, "duplicates": 1}
    (bounced,) = hooked.events("message_bounced")
    assert bounced["hard"] is True and bounced["idempotency_key"] == hooked.key
    assert bounced["touch"] == "welcome" and bounced["type"] == "HardBounce"
    (entry,) = hooked.engine.suppressions()
    assert (entry.address, str(entry.reason), entry.source) == (
        "nancy@northwind.test",
        "hard_bounce",
        "webhook:postmark",
    )


def test_a_soft_bounce_is_recorded_and_suppresses_nothing(hooked):
    hooked.post(bounce(hooked, ID=77, Type="SoftBounce", TypeCode=4096, Inactive=False))
    assert [e["hard"] for e in hooked.events("message_bounced")] == [False]
    assert hooked.engine.suppressions() == []


def test_a_spam_complaint_suppresses_the_address(hooked):
    complaint = bounce(hooked, RecordType="SpamComplaint", ID=91, Type="SpamComplaint")
    assert hooked.post(complaint).json()["recorded"] == 1
    assert len(hooked.events("message_complained")) == 1
    assert [str(e.reason) for e in hooked.engine.suppressions()] == ["complaint"]


def test_delivery_open_and_click_are_recorded_and_the_open_stops_the_ladder(hooked):
    message = "0a129aee-e1cd-480d-b08d-4f48548ff48d"
    common = {
        "MessageID": message,
        "Recipient": "nancy@northwind.test",
        "Metadata": metadata(hooked.key),
    }
    delivery = {"RecordType": "Delivery", "DeliveredAt": _when(hooked), **common}
    person = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120 Safari/537.36"
    opened = {
        "RecordType": "Open",
        "FirstOpen": True,
        "ReceivedAt": _when(hooked, 30),
        "UserAgent": person,
        **common,
    }
    click = {
        "RecordType": "Click",
        "ReceivedAt": _when(hooked, 31),
        "OriginalLink": "https://acme.test/start",
        "ClickLocation": "HTML",
        **common,
    }
    for document in (delivery, opened, click):
        assert hooked.post(document).json() == {"recorded": 1, "duplicates": 0}
    assert len(hooked.events("message_delivered")) == 1
    (open_event,) = hooked.events("message_opened")
    assert "machine" not in open_event
    assert hooked.events("message_clicked")[0]["url"] == "https://acme.test/start"
    hooked.engine.clock.advance(days=3)  # type: ignore[attr-defined]
    hooked.engine.tick()
    assert [r.touch for r in hooked.engine.store.outbox_rows()] == ["welcome"]


def test_an_apple_proxy_open_is_flagged_and_the_ladder_goes_on(hooked):
    proxy = (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
    )
    hooked.post(
        {
            "RecordType": "Open",
            "MessageID": "m1",
            "ReceivedAt": _when(hooked),
            "UserAgent": proxy,
            "Metadata": metadata(hooked.key),
        }
    )
    assert hooked.events("message_opened")[0]["machine"] is True
    hooked.engine.clock.advance(days=3)  # type: ignore[attr-defined]
    hooked.engine.tick()
    assert [r.touch for r in hooked.engine.store.outbox_rows()] == ["welcome", "nudge"]


def test_unsigned_wrong_replayed_unknown_and_malformed_webhooks_change_nothing(hooked):
    old = (hooked.engine.clock.now() - timedelta(hours=25)).isoformat()
    refused = [
        (hooked.post(bounce(hooked), auth=None), 401),
        (hooked.post(bounce(hooked), auth=(USER, "guess")), 401),
        (hooked.post(bounce(hooked), auth=("someone", PASSWORD)), 401),
        (hooked.post(bounce(hooked, BouncedAt=old)), 400),  # outside the replay window
        (hooked.post(bounce(hooked, Metadata=metadata("acme:welcome:c9:x"))), 404),
        (hooked.post(bounce(hooked, Metadata={})), 404),
        (hooked.post(bounce(hooked, BouncedAt="yesterday")), 400),
        (hooked.post(bounce(hooked, ID=None)), 400),
        (hooked.post(bounce(hooked), path="/webhooks/nowhere"), 404),
        (
            hooked.client.post(
                "/webhooks/email",
                content=b"{not json",
                headers={
                    "Authorization": "Basic "
                    + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode(),
                },
            ),
            400,
        ),
    ]
    for answer, status in refused:
        assert answer.status_code == status, answer.text
        assert "error" in answer.json()
    assert hooked.events("message_bounced") == []
    assert hooked.engine.suppressions() == []


def test_record_types_not_read_are_acknowledged(hooked):
    change = {"RecordType": "SubscriptionChange", "MessageID": "m", "Metadata": {}}
    assert hooked.post(change).json() == {"recorded": 0, "duplicates": 0}


def test_a_secret_path_authenticates_instead_of_basic_auth(tmp_path, temp_store, clock, postmark):
    for hooked in _engine(tmp_path, temp_store, clock, postmark, webhook_secret_path=SECRET_PATH):
        assert hooked.post(bounce(hooked), auth=None).status_code == 401
        assert (
            hooked.post(bounce(hooked), auth=None, path="/webhooks/email/wrong").status_code == 401
        )
        ok = hooked.post(bounce(hooked), auth=None, path=f"/webhooks/email/{SECRET_PATH}")
        assert ok.json() == {"recorded": 1, "duplicates": 0}


def test_a_channel_without_webhook_credentials_takes_no_webhooks(
    tmp_path, temp_store, clock, postmark
):
    for hooked in _engine(tmp_path, temp_store, clock, postmark):
        answer = hooked.post(bounce(hooked), auth=None)
        assert answer.status_code == 401 and "takes no webhooks" in answer.json()["error"]
        assert hooked.events("message_bounced") == []
