import email
import email.policy
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from onetomany.errors import PermanentDeliveryError
from onetomany.mime import build_email
from onetomany.model import ChannelKind, Message

DATE = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def _message(**fields):
    base = {
        "idempotency_key": "p:t:c1:e1",
        "channel": "email",
        "kind": ChannelKind.EMAIL,
        "to": "Zoë Q <zoe@example.com>",
        "subject": "Olá, Zoë",
        "html": "<p>hi</p>",
        "text": "hi",
    }
    return Message(**(base | fields))


def _parse(raw):
    return email.message_from_bytes(raw, policy=email.policy.default)


@given(
    html=st.text(min_size=0, max_size=5000),
    text=st.text(min_size=0, max_size=2000),
    subject=st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=300).map(
        str.strip
    ),
)
def test_any_body_survives_the_wire_with_crlf_and_short_lines(html, text, subject):
    raw = build_email(_message(html=html, text=text, subject=subject), sender="a@b.test", date=DATE)
    lines = raw.split(b"\r\n")
    assert all(len(line) <= 998 for line in lines)
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert b"\r" not in raw.replace(b"\r\n", b"")
    parsed = _parse(raw)
    assert parsed.get_content_type() == "multipart/alternative"
    normal = {"\r\n": "\n", "\r": "\n"}

    def norm(value):
        for old, new in normal.items():
            value = value.replace(old, new)
        return value

    assert norm(parsed.get_body(("html",)).get_content()) == norm(html)
    assert norm(parsed.get_body(("plain",)).get_content()) == norm(text)
    assert " ".join(str(parsed["Subject"]).split()) == " ".join(subject.split())


def test_the_message_id_is_stable_per_key():
    one = _parse(build_email(_message(), sender="a@b.test", date=DATE))
    two = _parse(build_email(_message(), sender="a@b.test", date=DATE))
    other = _parse(build_email(_message(idempotency_key="p:t:c1:e2"), sender="a@b.test", date=DATE))
    assert one["Message-ID"] == two["Message-ID"] != other["Message-ID"]


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"subject": "Hi\r\nBcc: victim@example.com"}, "header Subject contains a line break"),
        ({"to": "x@example.com\nBcc: y@example.com"}, "header To contains a line break"),
        ({"headers": {"X-Campaign": "a\nb"}}, "header X-Campaign contains a line break"),
        ({"headers": {"Bad Name": "v"}}, "invalid header name"),
        ({"to": "not an address"}, "not an email address"),
        ({"subject": "Hi\x1b[31m"}, "header Subject contains a control character"),
        ({"to": "zoë@example.com"}, "needs SMTPUTF8"),
    ],
)
def test_unsafe_headers_are_refused(fields, fragment):
    with pytest.raises(PermanentDeliveryError, match=fragment):
        build_email(_message(**fields), sender="a@b.test", date=DATE)


def test_an_international_domain_is_encoded():
    raw = build_email(_message(to="ana@exämple.com"), sender="a@b.test", date=DATE)
    assert _parse(raw)["To"].addresses[0].domain == "xn--exmple-cua.com"
