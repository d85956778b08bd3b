"""SendGrid's signed Event Webhook through the web app: a message sent through the fake
SendGrid, then its events posted to ``/webhooks/email`` signed with an ECDSA P-256 key as
SendGrid signs them; and the requests that are refused with nothing recorded (unsigned,
tampered, signed by another key, replayed outside the window, naming an unknown row, not
reading)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from conftest import API_KEY
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.testclient import TestClient

import onetomany_sendgrid
from onetomany import Account, Contact, Engine
from onetomany.model.clock import FrozenClock
from onetomany.plugins.settings import PluginSettings
from onetomany.program import EngagementTrigger, EventTrigger, Program, Touch
from onetomany.store import Store
from onetomany.store.queries.events import events_of
from onetomany.testing import make_plugins
from onetomany.web import SigningKeys, create_app
from onetomany_sendgrid.signing import sign
from onetomany_sendgrid.testing import FakeSendGrid

WELCOME = """\
+++
subject = "Welcome"
+++
<mjml><mj-body><mj-section><mj-column><mj-text>Hello.</mj-text></mj-column></mj-section>
</mj-body></mjml>
"""
ADDRESS = "nancy@northwind.test"
PERSON = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120 Safari/537.36"


def _public(key: ec.EllipticCurvePrivateKey) -> str:
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


SENDGRID_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_KEY = ec.generate_private_key(ec.SECP256R1())


@attrs.define
class Hooked:
    engine: Engine
    client: TestClient
    key: str
    sendgrid: FakeSendGrid

    def now(self) -> int:
        return int(self.engine.clock.now().timestamp())

    def event(self, name: str, **fields: Any) -> dict[str, Any]:
        return {
            "email": ADDRESS,
            "timestamp": self.now() + 60,
            "event": name,
            "sg_event_id": f"{name}-{fields.get('sg_event_id', 'ZGVsaXZlcmVk')}",
            "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
            "onetomany_key": self.key,
        } | fields

    def post(
        self,
        events: Any,
        *,
        signer: ec.EllipticCurvePrivateKey | None = SENDGRID_KEY,
        timestamp: int | None = None,
        body: bytes | None = None,
        tamper: bool = False,
    ) -> Any:
        raw = json.dumps(events).encode() if body is None else body
        stamp = str(self.now() if timestamp is None else timestamp)
        headers = {"Content-Type": "application/json"}
        if signer is not None:
            headers["X-Twilio-Email-Event-Webhook-Signature"] = sign(signer, stamp, raw)
            headers["X-Twilio-Email-Event-Webhook-Timestamp"] = stamp
        if tamper:
            raw = raw.replace(b"bounce", b"delivered")
        return self.client.post("/webhooks/email", content=raw, headers=headers)

    def events(self, name: str) -> list[dict[str, Any]]:
        contact = self.engine.store.get_contact("c1")
        assert contact is not None
        return [dict(e.properties) for e in events_of(self.engine.store, contact, names=[name])]


def _engine(
    tmp_path: Path, store: Store, clock: FrozenClock, sendgrid: FakeSendGrid, **webhook: Any
) -> Iterator[Hooked]:
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "welcome.mjml").write_text(WELCOME)
    (folder / "nudge.mjml").write_text(WELCOME)
    options = {
        "api_key": API_KEY,
        "base_url": sendgrid.url,
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
        channels={"email": PluginSettings(name="email", plugin="sendgrid", options=options)},
        templates_dir=folder,
        base_dir=tmp_path,
    )
    plugins = make_plugins(("sendgrid", onetomany_sendgrid))
    with Engine(program, store=store, clock=clock, plugins=plugins) as engine:
        engine.identify(
            Account(id="a1", name="Northwind"),
            Contact(id="c1", account_id="a1", name="Nancy Davolio", email=ADDRESS),
        )
        engine.track("signed_up", contact_id="c1", account_id="a1")
        engine.tick()
        engine.dispatch()
        (row,) = engine.store.outbox_rows()
        keys = SigningKeys.of({"k1": "w" * 40})
        with TestClient(create_app(engine, keys=keys)) as client:
            yield Hooked(engine, client, row.idempotency_key, sendgrid)


@pytest.fixture
def hooked(tmp_path, temp_store, clock, sendgrid) -> Iterator[Hooked]:
    yield from _engine(
        tmp_path, temp_store, clock, sendgrid, webhook_public_key=_public(SENDGRID_KEY)
    )


def test_the_channel_sends_the_key_the_webhook_maps_back_by(hooked):
    (sent,) = hooked.sendgrid.accepted
    assert sent["personalizations"][0]["custom_args"] == {"onetomany_key": hooked.key}


def test_a_hard_bounce_is_recorded_once_and_suppresses_the_address(hooked):
    bounce = hooked.event(
        "bounce", type="bounce", reason="550 5.1.1 The email account does not exist."
    )
    first = hooked.post([bounce])
    assert first.status_code == 200, first.text
    assert first.json() == {"recorded": 1, "duplicates": 0}
    assert hooked.post([bounce]).json() == {"recorded": 0, "duplicates": 1}  # same sg_event_id
    (bounced,) = hooked.events("message_bounced")
    assert bounced["hard"] is True and bounced["idempotency_key"] == hooked.key
    assert bounced["description"].startswith("550 5.1.1")
    (entry,) = hooked.engine.suppressions()
    assert (entry.address, str(entry.reason), entry.source) == (
        ADDRESS,
        "hard_bounce",
        "webhook:sendgrid",
    )


def test_a_blocked_bounce_is_soft_and_a_spam_report_suppresses(hooked):
    blocked = hooked.event("bounce", type="blocked", sg_event_id="b2", reason="IP blocked")
    assert hooked.post([blocked]).json()["recorded"] == 1
    assert hooked.engine.suppressions() == []
    assert hooked.post([hooked.event("spamreport", sg_event_id="s1")]).json()["recorded"] == 1
    assert len(hooked.events("message_complained")) == 1
    assert [str(e.reason) for e in hooked.engine.suppressions()] == ["complaint"]


def test_a_dropped_bounced_address_is_a_hard_bounce(hooked):
    dropped = hooked.event("dropped", reason="Bounced Address", sg_event_id="d1")
    hooked.post([dropped])
    assert [e["hard"] for e in hooked.events("message_bounced")] == [True]


def test_delivery_open_click_in_one_batch_and_the_open_stops_the_ladder(hooked):
    batch = [
        hooked.event("processed", sg_event_id="p1"),  # acknowledged, not recorded
        hooked.event("delivered", sg_event_id="d1", response="250 OK"),
        hooked.event("open", sg_event_id="o1", useragent=PERSON, sg_machine_open=False),
        hooked.event("click", sg_event_id="c1", url="https://acme.test/start", useragent=PERSON),
        {"event": "delivered", "email": "x@y.test", "timestamp": 1, "sg_event_id": "other"},
    ]
    assert hooked.post(batch).json() == {"recorded": 3, "duplicates": 0}
    assert len(hooked.events("message_delivered")) == 1
    (opened,) = hooked.events("message_opened")
    assert "machine" not in opened
    assert hooked.events("message_clicked")[0]["url"] == "https://acme.test/start"
    hooked.engine.clock.advance(days=3)  # type: ignore[attr-defined]
    hooked.engine.tick()
    assert [r.touch for r in hooked.engine.store.outbox_rows()] == ["welcome"]


def test_a_machine_open_is_flagged_and_the_ladder_goes_on(hooked):
    hooked.post([hooked.event("open", sg_event_id="o2", useragent=PERSON, sg_machine_open=True)])
    assert hooked.events("message_opened")[0]["machine"] is True
    hooked.engine.clock.advance(days=3)  # type: ignore[attr-defined]
    hooked.engine.tick()
    assert [r.touch for r in hooked.engine.store.outbox_rows()] == ["welcome", "nudge"]


def test_an_unsubscribe_at_sendgrid_unsubscribes_the_contact_from_email(hooked):
    assert hooked.post([hooked.event("unsubscribe", sg_event_id="u1")]).json()["recorded"] == 1
    preferences = hooked.engine.preferences("c1")
    assert [(a.subscribed, a.source) for a in preferences.answers] == [(False, "webhook:sendgrid")]
    assert len(hooked.events("unsubscribed")) == 1  # what the funnel counts


def test_unsigned_tampered_foreign_replayed_unknown_and_malformed_change_nothing(hooked):
    bounce = hooked.event("bounce", type="bounce", reason="550")
    now = hooked.now()
    refused = [
        (hooked.post([bounce], signer=None), 401),
        (hooked.post([bounce], tamper=True), 401),
        (hooked.post([bounce], signer=OTHER_KEY), 401),
        (hooked.post([bounce], timestamp=now - 3600), 401),  # outside the replay window
        (hooked.post([bounce], timestamp=now + 3600), 401),
        (hooked.post([hooked.event("bounce", onetomany_key="acme:welcome:c9:x")]), 404),
        (hooked.post([bounce, hooked.event("spamreport", onetomany_key="nope")]), 404),
        (hooked.post([hooked.event("bounce", timestamp="yesterday")]), 400),
        (hooked.post([hooked.event("bounce", sg_event_id=None)]), 400),
        (hooked.post(None, body=b"[not json"), 400),
        (hooked.post({"event": "bounce"}), 400),
    ]
    for answer, status in refused:
        assert answer.status_code == status, answer.text
        assert "error" in answer.json()
    assert hooked.events("message_bounced") == []
    assert hooked.events("message_complained") == []
    assert hooked.engine.suppressions() == []


def test_a_channel_without_a_verification_key_takes_no_webhooks(
    tmp_path, temp_store, clock, sendgrid
):
    for hooked in _engine(tmp_path, temp_store, clock, sendgrid):
        answer = hooked.post([hooked.event("bounce", type="bounce")])
        assert answer.status_code == 401 and "takes no webhooks" in answer.json()["error"]
        assert hooked.events("message_bounced") == []
