"""Mailgun's signed webhooks through the web app: a message sent through the fake Mailgun,
then its events posted to ``/webhooks/email`` signed as Mailgun signs them (HMAC-SHA256 of
timestamp and token under the webhook signing key); and the requests that are refused with
nothing recorded (unsigned, wrong signature, replayed outside the window, a token used again
with another body, naming an unknown row, not reading)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from conftest import API_KEY, DOMAIN
from hypothesis import given
from hypothesis import strategies as st
from starlette.testclient import TestClient

import onetomany_mailgun
from onetomany import Account, Contact, Engine
from onetomany.model.clock import FrozenClock
from onetomany.plugins.settings import PluginSettings
from onetomany.program import EngagementTrigger, EventTrigger, Program, Touch
from onetomany.store import Store
from onetomany.store.queries.events import events_of
from onetomany.testing import make_plugins
from onetomany.web import SigningKeys, create_app
from onetomany_mailgun.testing import FakeMailgun
from onetomany_mailgun.tokens import TokenLedger
from onetomany_mailgun.webhooks import signature_of

WELCOME = """\
+++
subject = "Welcome"
+++
<mjml><mj-body><mj-section><mj-column><mj-text>Hello.</mj-text></mj-column></mj-section>
</mj-body></mjml>
"""
SIGNING_KEY = "whsec-mailgun-7c1e0d9f2a"
ADDRESS = "nancy@northwind.test"
PERSON = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120 Safari/537.36"


@attrs.define
class Hooked:
    engine: Engine
    client: TestClient
    key: str
    mailgun: FakeMailgun

    def now(self) -> int:
        return int(self.engine.clock.now().timestamp())

    def event(self, name: str, **fields: Any) -> dict[str, Any]:
        return {
            "event": name,
            "id": f"{name}-G9Bn5sl1TC6nu79C8C0bwg",
            "timestamp": self.now() + 30.375624,
            "recipient": ADDRESS,
            "message": {"headers": {"message-id": f"20260101.1@{DOMAIN}"}},
            "user-variables": {"onetomany-key": self.key},
        } | fields

    def signed(
        self,
        event: dict[str, Any],
        *,
        key: str = SIGNING_KEY,
        timestamp: int | None = None,
        token: str | None = None,
    ) -> dict[str, Any]:
        stamp = str(self.now() if timestamp is None else timestamp)
        token = token or secrets.token_hex(25)
        return {
            "signature": {
                "timestamp": stamp,
                "token": token,
                "signature": signature_of(key, stamp, token),
            },
            "event-data": event,
        }

    def post(self, document: Any) -> Any:
        raw = document if isinstance(document, bytes) else json.dumps(document).encode()
        return self.client.post(
            "/webhooks/email", content=raw, headers={"Content-Type": "application/json"}
        )

    def events(self, name: str) -> list[dict[str, Any]]:
        contact = self.engine.store.get_contact("c1")
        assert contact is not None
        return [dict(e.properties) for e in events_of(self.engine.store, contact, names=[name])]


def _engine(
    tmp_path: Path, store: Store, clock: FrozenClock, mailgun: FakeMailgun, **webhook: Any
) -> Iterator[Hooked]:
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "welcome.mjml").write_text(WELCOME)
    (folder / "nudge.mjml").write_text(WELCOME)
    options = {
        "api_key": API_KEY,
        "domain": DOMAIN,
        "base_url": mailgun.url,
        "sender": "Acme <success@mg.acme.test>",
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
        channels={"email": PluginSettings(name="email", plugin="mailgun", options=options)},
        templates_dir=folder,
        base_dir=tmp_path,
    )
    plugins = make_plugins(("mailgun", onetomany_mailgun))
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
            yield Hooked(engine, client, row.idempotency_key, mailgun)


@pytest.fixture
def hooked(tmp_path, temp_store, clock, mailgun) -> Iterator[Hooked]:
    yield from _engine(tmp_path, temp_store, clock, mailgun, webhook_signing_key=SIGNING_KEY)


def test_the_channel_sends_the_key_the_webhooks_map_back_by(hooked):
    (sent,) = hooked.mailgun.accepted
    assert sent["v:onetomany-key"] == hooked.key


def test_a_permanent_failure_is_a_hard_bounce_recorded_once(hooked):
    failed = hooked.event(
        "failed",
        severity="permanent",
        reason="bounce",
        **{"delivery-status": {"code": 550, "description": "No such mailbox"}},
    )
    document = hooked.signed(failed)
    assert hooked.post(document).json() == {"recorded": 1, "duplicates": 0}
    assert hooked.post(document).json() == {"recorded": 0, "duplicates": 1}  # Mailgun retrying
    again = hooked.signed(failed)  # the same event, signed afresh
    assert hooked.post(again).json() == {"recorded": 0, "duplicates": 1}
    (bounced,) = hooked.events("message_bounced")
    assert bounced["hard"] is True and bounced["description"] == "No such mailbox"
    (entry,) = hooked.engine.suppressions()
    assert (entry.address, str(entry.reason), entry.source) == (
        ADDRESS,
        "hard_bounce",
        "webhook:mailgun",
    )


def test_a_temporary_failure_is_soft_and_a_complaint_suppresses(hooked):
    soft = hooked.event("failed", severity="temporary", reason="generic", id="t1")
    assert hooked.post(hooked.signed(soft)).json()["recorded"] == 1
    assert [e["hard"] for e in hooked.events("message_bounced")] == [False]
    assert hooked.engine.suppressions() == []
    hooked.post(hooked.signed(hooked.event("complained", id="x1")))
    assert len(hooked.events("message_complained")) == 1
    assert [str(e.reason) for e in hooked.engine.suppressions()] == ["complaint"]


def test_delivered_opened_clicked_are_recorded_and_the_open_stops_the_ladder(hooked):
    for event in (
        hooked.event("delivered", id="d1"),
        hooked.event("opened", id="o1", **{"client-info": {"user-agent": PERSON}}),
        hooked.event("clicked", id="c1", url="https://acme.test/start"),
    ):
        assert hooked.post(hooked.signed(event)).json() == {"recorded": 1, "duplicates": 0}
    assert len(hooked.events("message_delivered")) == 1
    assert "machine" not in hooked.events("message_opened")[0]
    assert hooked.events("message_clicked")[0]["url"] == "https://acme.test/start"
    hooked.engine.clock.advance(days=3)  # type: ignore[attr-defined]
    hooked.engine.tick()
    assert [r.touch for r in hooked.engine.store.outbox_rows()] == ["welcome"]


def test_an_unsubscribe_at_mailgun_unsubscribes_the_contact(hooked):
    assert hooked.post(hooked.signed(hooked.event("unsubscribed", id="u1"))).json()["recorded"]
    answers = hooked.engine.preferences("c1").answers
    assert [(a.subscribed, a.source) for a in answers] == [(False, "webhook:mailgun")]


def test_events_not_read_and_other_senders_events_are_acknowledged(hooked):
    for event in (
        hooked.event("accepted", id="a1"),
        hooked.event("delivered", id="d9", **{"user-variables": {}}),
    ):
        assert hooked.post(hooked.signed(event)).json() == {"recorded": 0, "duplicates": 0}


def test_unsigned_forged_replayed_reused_unknown_and_malformed_change_nothing(hooked):
    bounce = hooked.event("failed", severity="permanent", reason="bounce")
    now = hooked.now()
    token = secrets.token_hex(25)
    taken = hooked.signed(hooked.event("delivered", id="d1"), token=token)
    assert hooked.post(taken).status_code == 200
    reused = dict(taken, **{"event-data": bounce})  # a captured signature, another body
    unsigned = {"event-data": bounce}
    wrong = hooked.signed(bounce, key="guessed-key")
    truncated = hooked.signed(bounce)
    truncated["signature"]["signature"] = truncated["signature"]["signature"][:-2]
    refused = [
        (hooked.post(unsigned), 401),
        (hooked.post(wrong), 401),
        (hooked.post(truncated), 401),
        (hooked.post(hooked.signed(bounce, timestamp=now - 3600)), 401),  # a replay
        (hooked.post(hooked.signed(bounce, timestamp=now + 3600)), 401),
        (hooked.post(reused), 401),
        (
            hooked.post(
                hooked.signed(
                    hooked.event(
                        "failed", **{"user-variables": {"onetomany-key": "acme:welcome:c9:x"}}
                    )
                )
            ),
            404,
        ),
        (hooked.post(hooked.signed(hooked.event("failed", timestamp="yesterday"))), 400),
        (hooked.post(hooked.signed(hooked.event("failed", id=None))), 400),
        (hooked.post({"signature": hooked.signed(bounce)["signature"]}), 400),
        (hooked.post(b"{not json"), 400),
        (hooked.post([bounce]), 400),
    ]
    for answer, status in refused:
        assert answer.status_code == status, answer.text
        assert "error" in answer.json()
    assert hooked.events("message_bounced") == []
    assert hooked.engine.suppressions() == []


def test_a_channel_without_a_signing_key_takes_no_webhooks(tmp_path, temp_store, clock, mailgun):
    for hooked in _engine(tmp_path, temp_store, clock, mailgun):
        answer = hooked.post(hooked.signed(hooked.event("failed", severity="permanent")))
        assert answer.status_code == 401 and "takes no webhooks" in answer.json()["error"]
        assert hooked.events("message_bounced") == []


@given(
    arrivals=st.lists(
        st.tuples(st.sampled_from("abcd"), st.sampled_from([b"x", b"y"]), st.integers(0, 60)),
        max_size=30,
    )
)
def test_a_token_is_taken_again_only_with_its_own_body_inside_the_window(
    arrivals: list[tuple[str, bytes, int]],
) -> None:
    # A reused token carries the timestamp it was signed with; once that is outside the
    # window the replay check refuses it first, so the ledger may forget it.
    ledger = TokenLedger(window=100)
    first: dict[str, tuple[bytes, float]] = {}
    now = 0.0
    for token, body, step in arrivals:
        now += step
        if token in first and now - first[token][1] > 100:
            del first[token]
        signed_at = first[token][1] if token in first else now
        accepted = ledger.take(token, body, at=signed_at, now=now)
        if token in first:
            assert accepted == (body == first[token][0])
        else:
            assert accepted
            first[token] = (body, now)
