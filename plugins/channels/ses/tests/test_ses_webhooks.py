"""SES events through SNS, through the web app: a message sent through the fake SES, then its
delivery, bounces, complaint, open and click posted to ``/webhooks/email`` as signed SNS
messages (a throwaway RSA key and self-signed certificate served on loopback stand in for
SNS); the subscription handshake; and the requests refused with nothing recorded (tampered,
unsigned, replayed, another topic, a certificate off SNS's host, a message the store does
not hold)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
from ses_support import ses_options
from sns_signer import TOPIC, FakeSns, ses_event
from starlette.testclient import TestClient

import onetomany_ses
from onetomany import Account, Contact, Engine
from onetomany.model.clock import FrozenClock
from onetomany.plugins.settings import PluginSettings
from onetomany.program import EventTrigger, Program, Touch
from onetomany.store import Store
from onetomany.store.queries.events import events_of
from onetomany.testing import make_plugins
from onetomany.web import SigningKeys, create_app
from onetomany_ses import tag_value
from onetomany_ses.testing import FakeSes

WELCOME = """\
+++
subject = "Welcome"
+++
<mjml><mj-body><mj-section><mj-column><mj-text>Hello.</mj-text></mj-column></mj-section>
</mj-body></mjml>
"""
ADDRESS = "nancy@northwind.test"
NAMES = ("message_delivered", "message_bounced", "message_complained")
NAMES += ("message_opened", "message_clicked")


@attrs.define
class Hooked:
    engine: Engine
    client: TestClient
    sns: FakeSns
    key: str
    clock: FrozenClock

    def post(self, message: dict[str, Any], path: str = "/webhooks/email") -> Any:
        return self.client.post(
            path,
            content=json.dumps(message),
            headers={
                "Content-Type": "text/plain; charset=UTF-8",
                "x-amz-sns-message-type": str(message.get("Type")),
            },
        )

    def event(self, kind: str, **section: Any) -> dict[str, Any]:
        return ses_event(kind, key_tag=tag_value(self.key), at=self.clock.now(), **section)

    def notify(self, kind: str, **section: Any) -> Any:
        return self.post(self.sns.notification(self.event(kind, **section), at=self.clock.now()))

    def recorded(self) -> dict[str, list[dict[str, Any]]]:
        contact = self.engine.store.get_contact("c1")
        assert contact is not None
        found = events_of(self.engine.store, contact, names=list(NAMES))
        return {name: [dict(e.properties) for e in found if e.name == name] for name in NAMES}

    def suppressions(self) -> list[tuple[str, str, str]]:
        return [(e.address, str(e.reason), e.source) for e in self.engine.suppressions()]


@pytest.fixture
def sns() -> Iterator[FakeSns]:
    with FakeSns() as fake:
        yield fake


@pytest.fixture
def hooked(
    tmp_path: Path, temp_store: Store, clock: FrozenClock, ses: FakeSes, sns: FakeSns
) -> Iterator[Hooked]:
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "welcome.mjml").write_text(WELCOME)
    options = ses_options(
        ses.url,
        sender="Acme <success@acme.test>",
        timeout=1.0,
        sns_topic_arn=TOPIC,
        sns_allow_loopback=True,
    )
    program = Program(
        name="acme",
        touches=(
            Touch(
                name="welcome",
                trigger=EventTrigger(event="signed_up"),
                channel="email",
                template="welcome",
            ),
        ),
        channels={"email": PluginSettings(name="email", plugin="ses", options=options)},
        templates_dir=folder,
        base_dir=tmp_path,
    )
    plugins = make_plugins(("ses", onetomany_ses))
    with Engine(program, store=temp_store, clock=clock, plugins=plugins) as engine:
        engine.identify(
            Account(id="a1", name="Northwind"),
            Contact(id="c1", account_id="a1", name="Nancy Davolio", email=ADDRESS),
        )
        engine.track("signed_up", contact_id="c1", account_id="a1")
        engine.tick()
        engine.dispatch()
        (row,) = engine.store.outbox_rows()
        assert len(ses.sent) == 1
        keys = SigningKeys.of({"k1": "w" * 40})
        with TestClient(create_app(engine, keys=keys)) as client:
            yield Hooked(engine, client, sns, row.idempotency_key, clock)


def test_the_channel_tags_the_message_with_the_key_the_events_map_back_by(
    hooked: Hooked, ses: FakeSes
) -> None:
    assert ses.sent[0]["EmailTags"] == [{"Name": "onetomany_key", "Value": tag_value(hooked.key)}]


def test_a_permanent_bounce_is_recorded_once_and_suppresses_the_address(hooked: Hooked) -> None:
    bounce = hooked.event(
        "Bounce",
        bounceType="Permanent",
        bounceSubType="General",
        feedbackId="0102-feedback",
        bouncedRecipients=[{"emailAddress": ADDRESS, "status": "5.1.1", "action": "failed"}],
    )
    message = hooked.sns.notification(bounce, at=hooked.clock.now())

    first = hooked.post(message)
    again = hooked.post(message)  # SNS delivering again, or someone replaying it

    assert first.status_code == 200, first.text
    assert first.json() == {"recorded": 1, "duplicates": 0}
    assert again.json() == {"recorded": 0, "duplicates": 1}
    (bounced,) = hooked.recorded()["message_bounced"]
    assert bounced["hard"] is True and bounced["idempotency_key"] == hooked.key
    assert bounced["type"] == "Permanent"
    assert hooked.suppressions() == [(ADDRESS, "hard_bounce", "webhook:ses")]


def test_a_transient_bounce_is_recorded_and_suppresses_nothing(hooked: Hooked) -> None:
    answer = hooked.notify(
        "Bounce",
        bounceType="Transient",
        bounceSubType="MailboxFull",
        bouncedRecipients=[{"emailAddress": ADDRESS}],
    )

    assert answer.json() == {"recorded": 1, "duplicates": 0}
    assert [e["hard"] for e in hooked.recorded()["message_bounced"]] == [False]
    assert hooked.suppressions() == []


def test_a_complaint_suppresses_the_address(hooked: Hooked) -> None:
    answer = hooked.notify(
        "Complaint",
        complainedRecipients=[{"emailAddress": ADDRESS}],
        complaintFeedbackType="abuse",
        feedbackId="0102-complaint",
    )

    assert answer.json() == {"recorded": 1, "duplicates": 0}
    assert len(hooked.recorded()["message_complained"]) == 1
    assert hooked.suppressions() == [(ADDRESS, "complaint", "webhook:ses")]


def test_delivery_open_and_click_are_recorded_with_either_signature_version(
    hooked: Hooked,
) -> None:
    person = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120 Safari/537.36"
    events = [
        (hooked.event("Delivery", recipients=[ADDRESS], smtpResponse="250 ok"), "1"),
        (hooked.event("Open", userAgent=person, ipAddress="192.0.2.1"), "2"),
        (hooked.event("Click", link="https://acme.test/start", userAgent=person), "2"),
    ]
    for event, version in events:
        answer = hooked.post(hooked.sns.notification(event, at=hooked.clock.now(), version=version))
        assert answer.json() == {"recorded": 1, "duplicates": 0}, answer.text

    recorded = hooked.recorded()
    assert len(recorded["message_delivered"]) == 1
    (opened,) = recorded["message_opened"]
    assert "machine" not in opened
    assert recorded["message_clicked"][0]["url"] == "https://acme.test/start"
    # The certificate is fetched once, then taken from the cache.
    assert hooked.sns.cert_fetches == 1


def test_a_subscription_confirmation_is_confirmed_and_records_nothing(hooked: Hooked) -> None:
    answer = hooked.post(hooked.sns.confirmation(at=hooked.clock.now()))

    assert answer.status_code == 200, answer.text
    assert answer.json() == {"recorded": 0, "duplicates": 0}
    assert len(hooked.sns.confirmed) == 1
    assert hooked.sns.confirmed[0].startswith("/confirm?Action=ConfirmSubscription&Token=")


def test_event_types_not_read_are_acknowledged(hooked: Hooked) -> None:
    answer = hooked.notify("Send")

    assert answer.status_code == 200
    assert answer.json() == {"recorded": 0, "duplicates": 0}


def _resigned(hooked: Hooked, message: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return hooked.sns.sign({k: v for k, v in message.items() if k != "Signature"} | changes)


def test_tampered_unsigned_replayed_foreign_and_unknown_messages_change_nothing(
    hooked: Hooked,
) -> None:
    bounce = hooked.event(
        "Bounce", bounceType="Permanent", bouncedRecipients=[{"emailAddress": ADDRESS}]
    )
    now = hooked.clock.now()
    good = hooked.sns.notification(bounce, at=now)
    other_key = hooked.event("Bounce", bounceType="Permanent", bouncedRecipients=[])
    other_key["mail"]["tags"]["onetomany_key"] = [tag_value("acme:welcome:c9:1")]
    no_key = hooked.event("Bounce", bounceType="Permanent", bouncedRecipients=[])
    no_key["mail"]["tags"] = {}
    unsigned = {k: v for k, v in good.items() if k != "Signature"}
    refused = [
        # tampered: the event changed after signing
        (good | {"Message": good["Message"].replace("Permanent", "Transient")}, 401),
        (good | {"Signature": good["Signature"][:-8] + "AAAAAAA="}, 401),
        (unsigned, 401),
        (good | {"Signature": "not base64!"}, 401),
        (good | {"SignatureVersion": "3"}, 401),
        # replayed outside the window (the signature holds: SNS signed it a day ago)
        (hooked.sns.notification(bounce, at=now - timedelta(hours=25)), 400),
        # another topic, even one signed properly
        (_resigned(hooked, good, TopicArn=TOPIC.replace("onetomany-ses-events", "other")), 401),
        # a certificate off SNS's host: loopback on another port, and a look-alike host
        (_resigned(hooked, good, SigningCertURL="http://127.0.0.2:1/cert.pem"), 401),
        (
            _resigned(
                hooked,
                good,
                SigningCertURL="https://sns.eu-west-1.amazonaws.com.evil.test/cert.pem",
            ),
            401,
        ),
        (_resigned(hooked, good, SigningCertURL="https://sns.us-east-1.amazonaws.com/c.pem"), 401),
        # a message the store does not hold, or none named
        (hooked.sns.notification(other_key, at=now), 404),
        (hooked.sns.notification(no_key, at=now), 404),
    ]
    for message, status in refused:
        answer = hooked.post(message)
        assert answer.status_code == status, (message, answer.text)
        assert "error" in answer.json()
    for body in (b"{not json", b"[]", json.dumps({"Type": "Notification"}).encode()):
        answer = hooked.client.post("/webhooks/email", content=body)
        assert answer.status_code in (400, 401), answer.text
    assert all(not found for found in hooked.recorded().values())
    assert hooked.suppressions() == []


def test_a_confirmation_whose_subscribe_url_is_off_sns_is_refused(hooked: Hooked) -> None:
    confirmation = hooked.sns.confirmation(at=hooked.clock.now())
    forged = _resigned(hooked, confirmation, SubscribeURL="https://attacker.test/confirm")

    answer = hooked.post(forged)

    assert answer.status_code == 401
    assert hooked.sns.confirmed == []


def test_a_channel_without_a_topic_takes_no_webhooks(tmp_path: Path, hooked: Hooked) -> None:
    channel = hooked.engine.channels["email"]
    bare = type(channel)(
        PluginSettings(name="email", plugin="ses", options={"region": "eu-west-1"})
    )
    from onetomany.delivery.webhooks import WebhookRefused, WebhookRequest

    request = WebhookRequest(headers={}, body=b"{}", secret_path="", now=hooked.clock.now())
    with pytest.raises(WebhookRefused, match="sns_topic_arn") as refused:
        onetomany_ses.parse_webhook(bare, request)
    assert refused.value.status == 401
