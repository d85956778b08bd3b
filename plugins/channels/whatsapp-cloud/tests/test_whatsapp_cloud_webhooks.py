"""The WhatsApp Cloud API's webhooks through the web app: Meta's verification handshake; a
template sent through the fake Cloud API with the outbox key as ``biz_opaque_callback_data``,
then its statuses posted back signed as Meta signs them; an inbound message that opens the
24-hour window for session text; and the webhooks refused with nothing recorded."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
from starlette.testclient import TestClient

import onetomany_whatsapp_cloud
from onetomany import Account, Contact, Engine
from onetomany.model.clock import FrozenClock
from onetomany.plugins.settings import PluginSettings
from onetomany.program import EventTrigger, Program, Touch
from onetomany.store import Store
from onetomany.store.queries.events import events_of
from onetomany.testing import make_plugins
from onetomany.web import SigningKeys, create_app
from onetomany_whatsapp_cloud.testing import PHONE_NUMBER_ID, FakeWhatsAppCloud
from onetomany_whatsapp_cloud.webhooks import body_signature

APP_SECRET = "meta-app-secret-3b9d0c"
VERIFY_TOKEN = "verify-me-8e1f"
PHONE = "+5511912340001"
NAMES = ["message_delivered", "message_bounced", "message_opened", "whatsapp_inbound"]


@attrs.define
class Hooked:
    engine: Engine
    client: TestClient
    cloud: FakeWhatsAppCloud
    key: str
    wamid: str

    def now(self) -> int:
        return int(self.engine.clock.now().timestamp())

    def change(self, **value: Any) -> dict[str, Any]:
        metadata = {"display_phone_number": "15550001111", "phone_number_id": PHONE_NUMBER_ID}
        return {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "102290129340398",
                    "changes": [
                        {
                            "field": "messages",
                            "value": {"messaging_product": "whatsapp", "metadata": metadata}
                            | value,
                        }
                    ],
                }
            ],
        }

    def status(self, status: str, **fields: Any) -> dict[str, Any]:
        entry = {
            "id": self.wamid,
            "status": status,
            "timestamp": str(self.now()),
            "recipient_id": PHONE[1:],
            "biz_opaque_callback_data": self.key,
        } | fields
        return self.change(statuses=[entry])

    def inbound(self, text: str = "Hi! A question about my order", **fields: Any) -> dict[str, Any]:
        message = {
            "from": PHONE[1:],
            "id": "wamid.HBgNNTUxMTkxMjM0MDAwMRUCABIYFjNFQjA",
            "timestamp": str(self.now()),
            "type": "text",
            "text": {"body": text},
        } | fields
        contacts = [{"profile": {"name": "Ana"}, "wa_id": PHONE[1:]}]
        return self.change(contacts=contacts, messages=[message])

    def post(
        self,
        document: dict[str, Any],
        *,
        secret: str | None = APP_SECRET,
        body: bytes | None = None,
    ) -> Any:
        raw = body if body is not None else json.dumps(document).encode()
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers["X-Hub-Signature-256"] = body_signature(secret, raw)
        return self.client.post("/webhooks/whatsapp", content=raw, headers=headers)

    def recorded(self) -> dict[str, list[dict[str, Any]]]:
        contact = self.engine.store.get_contact("c1")
        assert contact is not None
        found = events_of(self.engine.store, contact, names=NAMES)
        return {name: [dict(e.properties) for e in found if e.name == name] for name in NAMES}


@pytest.fixture
def hooked(
    tmp_path: Path, temp_store: Store, frozen_clock: FrozenClock, cloud: FakeWhatsAppCloud
) -> Iterator[Hooked]:
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "order.whatsapp.toml").write_text('template = "order_update"\nparameters = []\n')
    (folder / "chat.whatsapp.txt").write_text("Happy to help, {{ contact.first_name }}!")
    cloud.templates["order_update"] = 0
    options = {
        "phone_number_id": PHONE_NUMBER_ID,
        "access_token": cloud.token,
        "base_url": cloud.url,
        "timeout": 1.0,
        "app_secret": APP_SECRET,
        "verify_token": VERIFY_TOKEN,
    }
    touches = (
        Touch(
            name="order",
            trigger=EventTrigger(event="ordered"),
            channel="whatsapp",
            template="order",
        ),
        Touch(
            name="chat", trigger=EventTrigger(event="asked"), channel="whatsapp", template="chat"
        ),
    )
    program = Program(
        name="acme",
        touches=touches,
        channels={
            "whatsapp": PluginSettings(name="whatsapp", plugin="whatsapp_cloud", options=options)
        },
        templates_dir=folder,
        base_dir=tmp_path,
    )
    plugins = make_plugins(("whatsapp_cloud", onetomany_whatsapp_cloud))
    with Engine(program, store=temp_store, clock=frozen_clock, plugins=plugins) as engine:
        engine.identify(
            Account(id="a1", name="Northwind"),
            Contact(id="c1", account_id="a1", name="Ana Souza", phone=PHONE),
        )
        engine.track("ordered", contact_id="c1", account_id="a1")
        engine.tick()
        engine.dispatch()
        (row,) = engine.store.outbox_rows()
        (sent,) = cloud.accepted
        keys = SigningKeys.of({"k1": "w" * 40})
        with TestClient(create_app(engine, keys=keys)) as client:
            yield Hooked(engine, client, cloud, row.idempotency_key, sent["id"])


def test_the_channel_attaches_the_outbox_key_meta_returns_with_statuses(hooked: Hooked) -> None:
    assert hooked.cloud.accepted[0]["biz_opaque_callback_data"] == hooked.key


def test_the_verification_handshake_answers_the_challenge_only_for_the_token(
    hooked: Hooked,
) -> None:
    query = {"hub.mode": "subscribe", "hub.challenge": "1158201444"}

    good = hooked.client.get(
        "/webhooks/whatsapp", params=query | {"hub.verify_token": VERIFY_TOKEN}
    )
    wrong = hooked.client.get("/webhooks/whatsapp", params=query | {"hub.verify_token": "guess"})
    none = hooked.client.get("/webhooks/whatsapp", params=query)

    assert (good.status_code, good.text) == (200, "1158201444")
    assert wrong.status_code == 403 and "1158201444" not in wrong.text
    assert none.status_code == 403


def test_statuses_are_recorded_once_each_for_the_row(hooked: Hooked) -> None:
    for status in ("sent", "delivered", "read"):
        hooked.post(hooked.status(status))
    again = hooked.post(hooked.status("read"))  # Meta delivering again

    assert again.json() == {"recorded": 0, "duplicates": 1}
    recorded = hooked.recorded()
    assert [e["idempotency_key"] for e in recorded["message_delivered"]] == [hooked.key]
    assert len(recorded["message_opened"]) == 1


def test_a_failed_status_is_a_bounce_that_suppresses_nothing(hooked: Hooked) -> None:
    errors = [{"code": 131026, "title": "Message undeliverable"}]

    answer = hooked.post(hooked.status("failed", errors=errors))

    assert answer.json() == {"recorded": 1, "duplicates": 0}
    (bounced,) = hooked.recorded()["message_bounced"]
    assert bounced["hard"] is False and bounced["error_code"] == "131026"
    assert hooked.engine.suppressions() == []


def _chat_texts(hooked: Hooked) -> list[str]:
    hooked.engine.track("asked", contact_id="c1", account_id="a1")
    hooked.engine.tick()
    hooked.engine.dispatch()
    return [m["text"]["body"] for m in hooked.cloud.accepted if m["type"] == "text"]


def test_an_inbound_message_opens_the_24_hour_window_for_session_text(hooked: Hooked) -> None:
    first = hooked.post(hooked.inbound())
    again = hooked.post(hooked.inbound())

    assert first.json() == {"recorded": 1, "duplicates": 0}
    assert again.json() == {"recorded": 0, "duplicates": 1}
    (inbound,) = hooked.recorded()["whatsapp_inbound"]
    assert inbound["type"] == "text"
    assert _chat_texts(hooked) == ["Happy to help, Ana!"]


def test_without_an_inbound_message_session_text_does_not_go(hooked: Hooked) -> None:
    assert _chat_texts(hooked) == []


def test_a_message_from_a_number_no_contact_has_is_acknowledged_and_records_nothing(
    hooked: Hooked,
) -> None:
    answer = hooked.post(hooked.inbound(**{"from": "5511912349999"}))

    assert answer.status_code == 200
    assert answer.json() == {"recorded": 0, "duplicates": 0}
    assert hooked.recorded()["whatsapp_inbound"] == []


def test_changes_for_another_number_of_the_account_are_left_alone(hooked: Hooked) -> None:
    document = hooked.status("delivered")
    document["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = "999999"

    assert hooked.post(document).json() == {"recorded": 0, "duplicates": 0}


def test_unsigned_tampered_replayed_and_unknown_webhooks_change_nothing(hooked: Hooked) -> None:
    delivered = hooked.status("delivered")
    signed = json.dumps(delivered).encode()
    old = str(hooked.now() - int(timedelta(hours=25).total_seconds()))
    refused = [
        (hooked.post(delivered, secret=None), 401),
        (hooked.post(delivered, secret="another-secret"), 401),
        (  # signed, then changed on the way
            hooked.client.post(
                "/webhooks/whatsapp",
                content=signed.replace(b"delivered", b"read"),
                headers={"X-Hub-Signature-256": body_signature(APP_SECRET, signed)},
            ),
            401,
        ),
        (hooked.post(hooked.inbound(), secret=None), 401),
        (hooked.post(hooked.status("delivered", timestamp=old)), 400),
        (hooked.post(hooked.status("delivered", biz_opaque_callback_data="acme:x:c9:1")), 404),
        (hooked.post(hooked.status("delivered", biz_opaque_callback_data=None)), 404),
        (hooked.post({}, body=b"{not json"), 400),
        (hooked.post({"object": "page", "entry": []}), 400),
    ]
    for answer, status in refused:
        assert answer.status_code == status, answer.text
        assert "error" in answer.json()
    assert all(not found for found in hooked.recorded().values())
