"""Contact tokens: issued by the host's backend, refused when tampered, truncated, expired,
foreign or of another purpose; keys rotate; secrets never print."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from onetomany.errors import ConfigError
from onetomany.web import ContactTokens, SigningKeys, TokenError

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
OLD = SigningKeys.of({"k1": "a" * 32})
ROTATED = SigningKeys.of({"k2": "b" * 32, "k1": "a" * 32})


def test_a_token_names_its_contact_until_it_expires():
    tokens = ContactTokens(OLD)
    token = tokens.issue("c1", now=NOW, ttl=timedelta(minutes=10))
    assert tokens.contact_id(token, now=NOW + timedelta(minutes=9)) == "c1"
    with pytest.raises(TokenError, match="expired at 2026-01-05T09:10:00"):
        tokens.contact_id(token, now=NOW + timedelta(minutes=10))


@given(contact=st.text(min_size=1, max_size=60))
def test_any_contact_id_round_trips(contact):
    tokens = ContactTokens(OLD)
    assert tokens.contact_id(tokens.issue(contact, now=NOW), now=NOW) == contact


@given(data=st.data())
def test_every_single_character_change_is_refused(data):
    tokens = ContactTokens(OLD)
    token = tokens.issue("c1", now=NOW)
    position = data.draw(st.integers(0, len(token) - 1))
    replacement = data.draw(
        st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.").filter(
            lambda c: c != token[position]
        )
    )
    tampered = token[:position] + replacement + token[position + 1 :]
    with pytest.raises(TokenError):
        tokens.contact_id(tampered, now=NOW)


@pytest.mark.parametrize("cut", [1, 5, 20, 43])
def test_a_truncated_token_is_refused(cut):
    token = ContactTokens(OLD).issue("c1", now=NOW)
    with pytest.raises(TokenError):
        ContactTokens(OLD).contact_id(token[:-cut], now=NOW)


def test_another_contacts_name_under_a_valid_signature_is_refused():
    tokens = ContactTokens(OLD)
    version, kid, _, expiry, mac = tokens.issue("c1", now=NOW).split(".")
    forged = ".".join((version, kid, "YzI", expiry, mac))  # "c2" in base64url
    with pytest.raises(TokenError, match="signature does not match"):
        tokens.contact_id(forged, now=NOW)


def test_a_later_expiry_under_the_same_signature_is_refused():
    tokens = ContactTokens(OLD)
    version, kid, contact, expiry, mac = tokens.issue("c1", now=NOW).split(".")
    stretched = ".".join((version, kid, contact, str(int(expiry) + 86400), mac))
    with pytest.raises(TokenError, match="signature"):
        tokens.contact_id(stretched, now=NOW)


def test_a_token_signed_with_a_foreign_key_is_refused():
    foreign = ContactTokens(SigningKeys.of({"k1": "z" * 32})).issue("c1", now=NOW)
    with pytest.raises(TokenError, match="signature does not match"):
        ContactTokens(OLD).contact_id(foreign, now=NOW)
    unknown = ContactTokens(SigningKeys.of({"k9": "z" * 32})).issue("c1", now=NOW)
    with pytest.raises(TokenError, match="key 'k9', which is not known"):
        ContactTokens(OLD).contact_id(unknown, now=NOW)


def test_a_token_of_another_purpose_is_refused():
    click = ContactTokens(OLD, purpose="click").issue("c1", now=NOW)
    with pytest.raises(TokenError, match="signature"):
        ContactTokens(OLD).contact_id(click, now=NOW)


def test_rotation_signs_with_the_new_key_and_still_reads_the_old_one():
    before = ContactTokens(OLD).issue("c1", now=NOW)
    after = ContactTokens(ROTATED).issue("c1", now=NOW)
    assert after.split(".")[1] == "k2"
    assert ContactTokens(ROTATED).contact_id(before, now=NOW) == "c1"
    retired = SigningKeys.of({"k2": "b" * 32})
    with pytest.raises(TokenError, match="not known"):
        ContactTokens(retired).contact_id(before, now=NOW)


@pytest.mark.parametrize(
    "junk",
    ["", "v1", "v2.k1.YzE.1.x", "v1.k1.YzE.1", "v1.k1.!!.1.x", "v1.k1.YzE.1.x.y", "x" * 5000],
)
def test_malformed_tokens_are_refused_with_a_reason(junk):
    with pytest.raises(TokenError):
        ContactTokens(OLD).contact_id(junk, now=NOW)


def test_keys_parse_from_an_environment_variable_and_never_print(monkeypatch):
    monkeypatch.setenv("ONETOMANY_WEB_KEYS", f"k2:{'n' * 32}, k1:{'o' * 32}")
    keys = SigningKeys.from_env()
    assert keys.current == "k2"
    assert set(keys.keys) == {"k1", "k2"}
    assert "n" * 32 not in repr(keys)
    assert "o" * 32 not in repr(ContactTokens(keys))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("k1", "entry 1 is not KEY_ID:SECRET"),
        (f"k1:{'a' * 32},oops", "entry 2 is not KEY_ID:SECRET"),
        ("k1:short", "has 5 bytes; at least 32"),
        (f"bad id:{'a' * 32}", "key id 'bad id'"),
    ],
)
def test_bad_keys_are_config_errors_that_hide_the_secret(text, message):
    with pytest.raises(ConfigError, match=message) as info:
        SigningKeys.parse(text)
    assert "short" not in str(info.value)
    assert "a" * 32 not in str(info.value)
