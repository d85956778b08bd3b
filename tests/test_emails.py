"""The email check's fast path agrees with email-validator on every address it accepts, and
everything else still gets email-validator's verdict and a clear error."""

from __future__ import annotations

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import example, given, settings
from hypothesis import strategies as st

from onetomany import Contact
from onetomany.errors import InvalidContactError
from onetomany.model.emails import normalized_email, plain_email

#: Characters that make up the pieces of near-addresses: every class the rules care about.
_PIECES = st.lists(
    st.sampled_from([*"abcxyzAZ09.-_+'!`{}~@\"() \\é", "xn--", "--", "ﬁ", "\u200b"]),
    max_size=12,
).map("".join)
_LABELS = st.lists(
    st.sampled_from(
        [
            *[
                "example",
                "mail",
                "a",
                "b-c",
                "x--y",
                "xn--bcher-kva",
                "test",
                "local",
                "invalid",
                "onion",
                "localhost",
            ],
            *["arpa", "home", "com", "co", "io", "c0m", "123", "Example", "-a", "a-", "é"],
            "a" * 63,
            "a" * 64,
        ]
    ),
    min_size=1,
    max_size=5,
)


def _expected(address: str) -> str | None:
    try:
        return validate_email(address, check_deliverability=False, test_environment=True).normalized
    except EmailNotValidError:
        return None


@settings(max_examples=600, deadline=None)
@given(local=_PIECES, labels=_LABELS, noise=_PIECES)
@example(local="a" * 64, labels=["example", "com"], noise="")
@example(local="a" * 65, labels=["example", "com"], noise="")
@example(local="first.last", labels=["home", "arpa"], noise="")
@example(local="x", labels=["a" * 63, "a" * 63, "a" * 63, "a" * 59, "com"], noise="")
@example(local=".a", labels=["example", "com"], noise="")
@example(local="a..b", labels=["example", "com"], noise="")
def test_the_fast_path_accepts_only_what_email_validator_accepts_unchanged(local, labels, noise):
    for address in (f"{local}@{'.'.join(labels)}", f"{local}@{'.'.join(labels)}{noise}"):
        expected = _expected(address)
        if plain_email(address):
            assert expected == address, address
        # Whichever path it takes, the verdict and the normal form are email-validator's.
        if expected is None:
            with pytest.raises(EmailNotValidError):
                normalized_email(address)
        else:
            assert normalized_email(address) == expected


@pytest.mark.parametrize(
    "address",
    ["person42@example.test", "first.last+tag@mail.example.com", "o'brien@acme.co", "a@b.io"],
)
def test_common_addresses_take_the_fast_path(address):
    assert plain_email(address)
    assert normalized_email(address) == address


@pytest.mark.parametrize(
    ("address", "normal"),
    [("Ana@Example.COM", "Ana@example.com"), ("josé@exämple.com", "josé@exämple.com")],
)
def test_others_are_normalised_by_email_validator(address, normal):
    assert not plain_email(address)
    assert normalized_email(address) == normal


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("no-at-sign", "must have an @-sign"),
        ("a@localhost.local", "special-use or reserved"),
        ("a@nodot", "should have a period"),
        ("a..b@example.com", "two periods"),
    ],
)
def test_a_bad_address_names_the_contact_the_field_and_the_reason(address, reason):
    with pytest.raises(InvalidContactError) as caught:
        Contact(id="c-7", email=address)
    message = str(caught.value)
    assert "c-7" in message and "email" in message and reason in message
