"""Signed unsubscribe tokens and the List-Unsubscribe headers (RFC 2369, RFC 8058).

A token names a contact and a topic under an HMAC-SHA256 signature: one changed character,
a truncation, another program's key, a retired key or an expiry refuses it and changes nothing.
Every non-transactional email carries both headers; transactional ones carry none.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from onetomany.delivery.mime import build_email
from onetomany.engine import Engine
from onetomany.errors import ConfigErrors
from onetomany.model import OutboxStatus
from onetomany.program import Touch, load_program
from onetomany.rules.topics import Topic
from onetomany.rules.unsubscribe import (
    TokenError,
    UnsubscribeSettings,
    make_token,
    read_unsubscribe,
    verify_token,
)
from onetomany.store import NewTouch
from onetomany.testing import RecordingChannel, make_plugins

from .conftest import PEOPLE, make_program

KEY_A = "a" * 16 + "-rotation-key-one-2026"
KEY_B = "b" * 16 + "-rotation-key-two-2026"
SETTINGS = UnsubscribeSettings(
    url="https://app.acme.test/unsubscribe/{token}",
    preferences_url="https://app.acme.test/preferences/{token}",
    mailto="unsubscribe@acme.test",
    keys={"k1": KEY_A},
    current="k1",
)


def test_a_token_verifies_and_says_whose_and_which_topic(frozen_clock):
    token = make_token(SETTINGS, "ct-001", "onboarding", now=frozen_clock.now())
    claims = verify_token(SETTINGS, token, now=frozen_clock.now())
    assert (claims.contact_id, claims.topic, claims.key_id) == ("ct-001", "onboarding", "k1")
    assert claims.expires is None
    assert (
        verify_token(
            SETTINGS,
            make_token(SETTINGS, "c", None, now=frozen_clock.now()),
            now=frozen_clock.now(),
        ).topic
        is None
    )


@given(
    contact=st.text(min_size=1, max_size=40),
    topic=st.none() | st.sampled_from(["onboarding", "surveys"]),
    data=st.data(),
)
def test_any_one_changed_character_is_refused(contact, topic, data):
    at = datetime(2026, 1, 5, tzinfo=UTC)
    token = make_token(SETTINGS, contact, topic, now=at)
    i = data.draw(st.integers(0, len(token) - 1))
    replacement = data.draw(
        st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.").filter(
            lambda c: c != token[i]
        )
    )
    changed = token[:i] + replacement + token[i + 1 :]
    with pytest.raises(TokenError, match="unsubscribe token refused"):
        verify_token(SETTINGS, changed, now=at)
    cut = data.draw(st.integers(0, len(token) - 1))
    with pytest.raises(TokenError):
        verify_token(SETTINGS, token[:cut], now=at)


def test_foreign_retired_and_expired_tokens_are_refused_with_the_reason(frozen_clock):
    now = frozen_clock.now()
    foreign = attrs.evolve(SETTINGS, keys={"k1": KEY_B})
    with pytest.raises(TokenError, match="does not match"):
        verify_token(SETTINGS, make_token(foreign, "c1", None, now=now), now=now)
    # Rotation: k2 signs new tokens, k1's still verify until k1 is taken off the list.
    rotated = attrs.evolve(SETTINGS, keys={"k1": KEY_A, "k2": KEY_B}, current="k2")
    old = make_token(SETTINGS, "c1", None, now=now)
    new = make_token(rotated, "c1", None, now=now)
    assert new.startswith("k2.")
    assert verify_token(rotated, old, now=now).key_id == "k1"
    retired = attrs.evolve(rotated, keys={"k2": KEY_B})
    with pytest.raises(TokenError, match="does not hold"):
        verify_token(retired, old, now=now)
    assert verify_token(retired, new, now=now).contact_id == "c1"
    # Expiry.
    expiring = attrs.evolve(SETTINGS, max_age=timedelta(days=30))
    token = make_token(expiring, "c1", None, now=now)
    assert verify_token(expiring, token, now=now + timedelta(days=29)).expires
    with pytest.raises(TokenError, match="expired"):
        verify_token(expiring, token, now=now + timedelta(days=30))
    for junk in ["", "x", "k1..", "a.b.c.d", "k1.!!!.sig", "k1." + "A" * 2000]:
        with pytest.raises(TokenError):
            verify_token(SETTINGS, junk, now=now)


def test_secrets_never_show_in_repr():
    assert KEY_A not in repr(SETTINGS)


@pytest.mark.parametrize(
    ("section", "key", "reason"),
    [
        ({"keys": {"k1": "short"}, "current": "k1"}, "unsubscribe.keys.k1", "at least 32"),
        ({"keys": {"k1": KEY_A}, "current": "k9"}, "unsubscribe.current", "one of the keys"),
        (
            {"url": "http://x.test/{token}", "keys": {"k1": KEY_A}, "current": "k1"},
            "unsubscribe.url",
            "https://",
        ),
        ({"url": "https://x.test/u?c={contact_id}"}, "unsubscribe.url", "{token}"),
        ({"url": "https://x.test/{token}"}, "unsubscribe.keys", "need keys"),
        (
            {"max_age_days": 0, "keys": {"k1": KEY_A}, "current": "k1"},
            "unsubscribe.max_age_days",
            "at least 1",
        ),
        ({"colour": 1}, "unsubscribe.colour", "unknown key"),
    ],
)
def test_bad_settings_are_named_without_the_secret(section, key, reason):
    _, errors = read_unsubscribe(section, file="program.toml")
    assert any(e.key == key and reason in e.reason for e in errors), errors
    assert all("short" not in str(e) for e in errors)


def test_keys_come_from_the_environment(tmp_path, monkeypatch):
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "program.toml").write_text(
        '[program]\nname = "acme"\n\n[channels.email]\nplugin = "outbox"\nfolder = "out"\n\n'
        '[unsubscribe]\nurl = "https://acme.test/u/{token}"\n'
        'keys = { k1 = "${ACME_UNSUB_KEY}" }\ncurrent = "k1"\n'
    )
    with pytest.raises(ConfigErrors, match="ACME_UNSUB_KEY is not set"):
        load_program(folder)
    monkeypatch.setenv("ACME_UNSUB_KEY", KEY_A)
    assert load_program(folder).unsubscribe.keys == {"k1": KEY_A}


# -- emails ------------------------------------------------------------------------------------


@pytest.fixture
def engine(tmp_path, frozen_clock, store):
    program = make_program(
        tmp_path,
        Touch(name="tips", trigger=None, channel="email", template="welcome", topic="onboarding"),
        Touch(name="invoice", trigger=None, channel="email", template="welcome", topic="billing"),
    )
    program = attrs.evolve(
        program,
        topics={
            "onboarding": Topic(name="onboarding"),
            "billing": Topic(name="billing", transactional=True),
        },
        unsubscribe=SETTINGS,
    )
    channel = RecordingChannel()
    engine = Engine(
        program,
        store=store,
        clock=frozen_clock,
        plugins=make_plugins(),
        channels={"email": channel},
    )
    engine.identify(*PEOPLE)
    engine.store.enqueue(
        [
            NewTouch(
                idempotency_key=f"{touch}-c1",
                program="acme",
                touch=touch,
                channel="email",
                template="welcome",
                contact_id="c1",
                account_id="a1",
                available_at=frozen_clock.now(),
            )
            for touch in ("tips", "invoice")
        ],
        now=frozen_clock.now(),
    )
    yield engine
    engine.dispatcher.close()


def test_non_transactional_email_has_both_headers_and_a_token_that_verifies(engine):
    assert engine.dispatch().sent == 2
    sent = {m.touch: m for m in engine.channels["email"].sent}  # type: ignore[attr-defined]
    tips, invoice = sent["tips"], sent["invoice"]
    assert invoice.headers == {}  # transactional: no unsubscribe
    header = tips.headers["List-Unsubscribe"]
    assert tips.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    https, mailto = header.split(", ")
    assert https.startswith("<https://app.acme.test/unsubscribe/k1.") and https.endswith(">")
    assert mailto.startswith("<mailto:unsubscribe@acme.test?subject=unsubscribe%20k1.")
    token = https[len("<https://app.acme.test/unsubscribe/") : -1]
    claims = engine.verify_unsubscribe_token(token)
    assert (claims.contact_id, claims.topic) == ("c1", "onboarding")
    # On the wire: one header each, the URLs intact (never encoded-words).
    wire = build_email(tips, sender="Acme <success@acme.test>", date=engine.clock.now())
    head = wire.partition(b"\r\n\r\n")[0].decode("ascii")
    unfolded = head.replace("\r\n ", " ")
    assert f"List-Unsubscribe: {header}" in unfolded
    assert "List-Unsubscribe-Post: List-Unsubscribe=One-Click" in unfolded
    assert "=?" not in unfolded.split("List-Unsubscribe:")[1].split("\r\n")[0]
    assert all(len(line) <= 998 for line in head.split("\r\n"))


def test_the_one_click_token_unsubscribes_its_contact_from_its_topic_only(engine, frozen_clock):
    token = engine.unsubscribe_token("c1", "onboarding")
    prefs = engine.unsubscribe_with_token(token)
    assert prefs.allows("onboarding", "email") is False
    [answer] = prefs.answers
    assert answer.source == "link"
    # A tampered token changes nothing.
    bad = token[:-1] + ("A" if token[-1] != "A" else "B")
    with pytest.raises(TokenError):
        engine.unsubscribe_with_token(bad)
    assert engine.preferences("c1") == prefs
    assert engine.dispatch().skipped == {"consent": 1}
    assert {r.touch: r.status for r in engine.store.outbox_rows()} == {
        "tips": OutboxStatus.SKIPPED,
        "invoice": OutboxStatus.SENT,
    }
