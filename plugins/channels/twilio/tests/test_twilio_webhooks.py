"""Twilio's status callbacks through the web app: an SMS sent through the fake Twilio with the
outbox key in its StatusCallback URL, then ``delivered``, ``undelivered`` and ``failed``
posted back to that URL as Twilio signs them; and the callbacks refused with nothing recorded
(unsigned, tampered, signed for another URL or with another token, another account, a row
the store does not hold)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs
import pytest
from starlette.testclient import TestClient

import onetomany_twilio
from onetomany import Account, Contact, Engine
from onetomany.model.clock import FrozenClock
from onetomany.plugins.settings import PluginSettings
from onetomany.program import EventTrigger, Program, Touch
from onetomany.store import Store
from onetomany.store.queries.events import events_of
from onetomany.testing import make_plugins
from onetomany.web import SigningKeys, create_app
from onetomany_twilio.testing import ACCOUNT_SID, FakeTwilio
from onetomany_twilio.webhooks import signature

PHONE = "+14155550123"
#: What Twilio is given: the app mounted at the test client's host.
CALLBACK = "http://testserver/webhooks/sms"
NAMES = ["message_delivered", "message_bounced", "message_opened"]


def test_the_signature_is_twilios_published_example() -> None:
    # The worked example of Twilio's "Webhooks security" guide.
    parameters = [
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+12349013030"),
        ("Digits", "1234"),
        ("From", "+12349013030"),
        ("To", "+18005551212"),
    ]
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"

    assert signature("12345", url, parameters) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    assert signature("12345", url, parameters[::-1]) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="


@attrs.define
class Hooked:
    engine: Engine
    client: TestClient
    callback: str  # the StatusCallback URL the channel gave Twilio, with the outbox key
    key: str
    token: str  # the account's auth token, which signs the callbacks

    def form(self, status: str, **fields: str) -> dict[str, str]:
        return {
            "AccountSid": ACCOUNT_SID,
            "ApiVersion": "2010-04-01",
            "From": "+14155550100",
            "To": PHONE,
            "MessageSid": "SM" + "a" * 32,
            "SmsSid": "SM" + "a" * 32,
            "MessageStatus": status,
            "SmsStatus": status,
        } | fields

    def post(
        self,
        form: dict[str, str],
        *,
        url: str | None = None,
        token: str | None = None,
        signed: bool = True,
        **changed: str,
    ) -> Any:
        """Post ``form`` to ``url`` (the callback), signed over it as Twilio signs; then
        ``changed`` fields (a tampering on the way)."""
        url = url or self.callback
        headers = {}
        if signed:
            headers["X-Twilio-Signature"] = signature(token or self.token, url, list(form.items()))
        parts = urlsplit(url)
        return self.client.post(f"{parts.path}?{parts.query}", data=form | changed, headers=headers)

    def recorded(self) -> dict[str, list[dict[str, Any]]]:
        contact = self.engine.store.get_contact("c1")
        assert contact is not None
        found = events_of(self.engine.store, contact, names=NAMES)
        return {name: [dict(e.properties) for e in found if e.name == name] for name in NAMES}

    def suppressions(self) -> list[tuple[str, str, str]]:
        return [(e.address, str(e.reason), e.source) for e in self.engine.suppressions()]


@pytest.fixture
def hooked(
    tmp_path: Path, temp_store: Store, clock: FrozenClock, twilio: FakeTwilio
) -> Iterator[Hooked]:
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "trial.sms.txt").write_text("Your Acme trial ends soon.")
    options = {
        "account_sid": ACCOUNT_SID,
        "auth_token": twilio.auth_token,
        "base_url": twilio.url,
        "sender": "+14155550100",
        "status_callback": CALLBACK,
        "timeout": 1.0,
    }
    program = Program(
        name="acme",
        touches=(
            Touch(
                name="trial",
                trigger=EventTrigger(event="trial_ending"),
                channel="sms",
                template="trial",
            ),
        ),
        channels={
            "sms": PluginSettings(name="sms", plugin="twilio", options=options | {"kind": "sms"})
        },
        templates_dir=folder,
        base_dir=tmp_path,
    )
    plugins = make_plugins(("twilio", onetomany_twilio))
    with Engine(program, store=temp_store, clock=clock, plugins=plugins) as engine:
        engine.identify(
            Account(id="a1", name="Northwind"),
            Contact(id="c1", account_id="a1", name="Nancy Davolio", phone=PHONE),
        )
        engine.track("trial_ending", contact_id="c1", account_id="a1")
        engine.tick()
        engine.dispatch()
        (row,) = engine.store.outbox_rows()
        (sent,) = twilio.accepted
        keys = SigningKeys.of({"k1": "w" * 40})
        with TestClient(create_app(engine, keys=keys)) as client:
            yield Hooked(
                engine, client, sent["StatusCallback"], row.idempotency_key, twilio.auth_token
            )


def test_a_delivered_callback_is_recorded_once_for_its_row(hooked: Hooked) -> None:
    assert hooked.callback.startswith(CALLBACK + "?onetomany_key=")

    first = hooked.post(hooked.form("delivered"))
    again = hooked.post(hooked.form("delivered"))  # Twilio retrying, or a replay

    assert first.status_code == 200, first.text
    assert first.json() == {"recorded": 1, "duplicates": 0}
    assert again.json() == {"recorded": 0, "duplicates": 1}
    (delivered,) = hooked.recorded()["message_delivered"]
    assert delivered["idempotency_key"] == hooked.key
    assert delivered["provider_message_id"] == "SM" + "a" * 32


def test_an_unknown_handset_is_a_hard_bounce_that_suppresses_the_number(hooked: Hooked) -> None:
    answer = hooked.post(hooked.form("undelivered", ErrorCode="30005"))

    assert answer.json() == {"recorded": 1, "duplicates": 0}
    (bounced,) = hooked.recorded()["message_bounced"]
    assert bounced["hard"] is True and bounced["error_code"] == "30005"
    assert hooked.suppressions() == [(PHONE, "hard_bounce", "webhook:twilio")]


def test_a_failure_that_may_pass_is_recorded_and_suppresses_nothing(hooked: Hooked) -> None:
    # 30003: the handset is unreachable (switched off); it may take the next message.
    answer = hooked.post(hooked.form("failed", ErrorCode="30003"))

    assert answer.json() == {"recorded": 1, "duplicates": 0}
    assert [e["hard"] for e in hooked.recorded()["message_bounced"]] == [False]
    assert hooked.suppressions() == []


def test_statuses_on_the_way_are_acknowledged_and_read_is_an_open(hooked: Hooked) -> None:
    for status in ("queued", "sent"):
        assert hooked.post(hooked.form(status)).json() == {"recorded": 0, "duplicates": 0}

    assert hooked.post(hooked.form("read")).json() == {"recorded": 1, "duplicates": 0}
    assert len(hooked.recorded()["message_opened"]) == 1


def test_unsigned_tampered_foreign_and_unknown_callbacks_change_nothing(hooked: Hooked) -> None:
    hard = hooked.form("undelivered", ErrorCode="30005")
    moved = signature(hooked.token, hooked.callback, list(hard.items()))
    other_row = CALLBACK + "?onetomany_key=acme%3Atrial%3Ac9%3A1"
    refused = [
        (hooked.post(hard, signed=False), 401),
        (hooked.post(hard, token="not-the-token"), 401),
        # tampered after signing: another status, another row in the URL
        (hooked.post(hooked.form("delivered"), MessageStatus="undelivered"), 401),
        (
            hooked.client.post(
                "/webhooks/sms?onetomany_key=acme%3Atrial%3Ac9%3A1",
                data=hard,
                headers={"X-Twilio-Signature": moved},
            ),
            401,
        ),
        # signed for a URL Twilio was never given (another host)
        (hooked.post(hard, url=hooked.callback.replace("testserver", "evil.test")), 401),
        # another Twilio account, properly signed with this token
        (
            hooked.post(hooked.form("undelivered", ErrorCode="30005", AccountSid="AC" + "f" * 32)),
            401,
        ),
        # a row the store does not hold, or none named
        (hooked.post(hard, url=other_row), 404),
        (hooked.post(hard, url=CALLBACK + "?other=1"), 404),
    ]
    for answer, status in refused:
        assert answer.status_code == status, answer.text
        assert "error" in answer.json()
    assert all(not found for found in hooked.recorded().values())
    assert hooked.suppressions() == []
