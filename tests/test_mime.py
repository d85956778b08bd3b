import binascii
import email
import email.policy
import re
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.utils import parseaddr

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from onetomany.delivery.compose import recipient
from onetomany.delivery.mime import (
    ascii_domain,
    build_email,
    display_name,
    envelope_address,
    mailbox,
    parse_mailbox,
    sender_domain,
    split_mailbox,
)
from onetomany.errors import PermanentDeliveryError
from onetomany.model import ChannelKind, Contact, Message

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


# Bodies made of what makes quoted-printable and its pieces hard: the ``<div`` a body is cut
# before, ``=``, white space and dots at the ends of lines and pieces, CR and LF alone, non-ASCII
# text and runs long enough to fold.
body_fragments = st.sampled_from(
    ["<div", "<div>", "</div>", "=", " ", "\t", ".", "\r", "\n", "\r\n", "é", "€", "x" * 70, "ab"]
)
bodies = st.lists(st.one_of(body_fragments, st.text(max_size=80)), max_size=40).map("".join)


def _body_lines(raw):
    return raw.partition(b"\r\n\r\n")[2].split(b"\r\n")


@settings(max_examples=300)
@given(html=bodies, text=bodies)
# b2a_qp writes a 77-octet line when it encodes the space ending a full line.
@example(html="", text="<div>000=\x08" + "\x80" * 8 + "\U00010000 \r")
@example(html="=" * 25 + " \n", text="")
def test_bodies_are_quoted_printable_of_76_octet_lines_that_decode_to_the_body(html, text):
    raw = build_email(_message(html=html, text=text), sender="a@b.test", date=DATE)

    assert all(len(line) <= 76 for line in _body_lines(raw))
    parsed = _parse(raw)
    for subtype, body in (("html", html), ("plain", text)):
        part = parsed.get_body((subtype,))
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
        wire = part.get_payload(decode=False).encode("ascii")
        expected = body.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n")
        assert binascii.a2b_qp(wire) == expected.encode("utf-8")


@given(first=bodies, second=bodies)
def test_a_body_is_written_the_same_whatever_was_written_before(first, second):
    # Encoded pieces of bodies are kept and shared between messages.
    before = build_email(_message(html=first), sender="a@b.test", date=DATE)
    build_email(_message(html=second, text=first), sender="a@b.test", date=DATE)
    assert build_email(_message(html=first), sender="a@b.test", date=DATE) == before


def test_a_templated_body_keeps_its_lines_short_across_its_pieces():
    # MJML output: lines of thousands of characters, cut before each <div.
    cell = '<div style="font-size:16px;line-height:24px;color:#000000;">Hi {}, = ok</div>'
    html = "<html><body>" + "".join(cell.format(f"Person{i}") * 20 for i in range(3)) + "</body>"
    raw = build_email(_message(html=html), sender="a@b.test", date=DATE)
    assert max(len(line) for line in _body_lines(raw)) <= 76
    assert _parse(raw).get_body(("html",)).get_content() == html


# -- addresses and display names ---------------------------------------------------------------

ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[qQbB]\?[^?\s]*\?=")
IDN_DOMAINS = ("exämple.test", "bücher.example", "例え.テスト", "xn--exmple-cua.test")
names = st.text(st.characters(blacklist_categories=("Cs",)), max_size=300)
addresses = st.one_of(
    st.emails(),
    st.builds(
        "{}@{}".format,
        st.from_regex(r"[a-z0-9]{1,20}", fullmatch=True),
        st.sampled_from(IDN_DOMAINS),
    ),
)


atoms = st.from_regex(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,12}", fullmatch=True)
simple_mailboxes = st.one_of(
    st.builds(mailbox, st.lists(atoms, max_size=4).map(" ".join), st.emails()),
    st.builds("{}@{}".format, st.lists(atoms, min_size=1, max_size=3).map(".".join), atoms),
)
near_mailboxes = st.builds(
    "{}{}{}".format,
    st.sampled_from(["", " ", '"', "<", "a ", "(c) ", "a. ", "@"]),
    simple_mailboxes,
    st.sampled_from(["", " ", ">", ">>", "(c)", ".", "@x", ",b@c", '"', " x"]),
)


@settings(max_examples=500)
@given(
    value=st.one_of(simple_mailboxes, near_mailboxes, names, st.builds(mailbox, names, addresses))
)
def test_a_mailbox_is_split_as_parseaddr_splits_it(value):
    assert split_mailbox(value) == parseaddr(value)


def _head(raw):
    return raw.partition(b"\r\n\r\n")[0]


def _raw_value(raw, header):
    """The header's value as on the wire, unfolded."""
    for line in re.split(rb"\r\n(?![ \t])", _head(raw)):
        name, _, value = line.partition(b":")
        if name.decode().lower() == header.lower():
            return value.replace(b"\r\n", b"").decode().strip()
    raise AssertionError(f"no {header} header")


def _display_name(raw, header):
    """The display name as RFC 2047 reads it.

    The stdlib's policy.default reads it right except where two encoded-words are adjacent:
    it keeps the white space between them, which RFC 2047 (6.2) says to drop, as mail clients
    do. There, email.header.decode_header (which drops it) reads the phrase.
    """
    value = _raw_value(raw, header)
    if re.search(r"\?=\s+=\?", value):
        phrase = value.rpartition(" <")[0]
        return str(make_header(decode_header(phrase)))
    return _parse(raw)[header].addresses[0].display_name


def _lines(raw):
    return _head(raw).split(b"\r\n")


@settings(max_examples=300, deadline=None)
@given(name=names, address=addresses, sender_name=names)
def test_any_display_name_and_address_come_back_from_the_wire(name, address, sender_name):
    to, sender = mailbox(name, address), mailbox(sender_name, "team@acmé.test")
    raw = build_email(_message(to=to), sender=sender, date=DATE)

    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    parsed = _parse(raw)
    box = parse_mailbox("To", to)
    assert parsed["To"].addresses[0].addr_spec == f"{box.local}@{ascii_domain('To', box)}"
    assert _display_name(raw, "To") == display_name(name)
    assert _display_name(raw, "From") == display_name(sender_name)
    assert parsed["From"].addresses[0].domain == "xn--acm-dma.test"
    for word in ENCODED_WORD.findall(_head(raw).decode("ascii")):
        assert len(word) <= 75


@given(name=names, address=addresses)
def test_a_mailbox_reads_back_as_written(name, address):
    box = parse_mailbox("To", mailbox(name, address))
    assert (box.name, box.address) == (display_name(name), address)


@pytest.mark.parametrize(
    "name",
    [
        "Maria da Conceição Albuquerque Gonçalves Pereira",  # 48 characters
        "王" * 200,
        "A" * 990,
        " ".join(["Ana"] * 300),
        "Zoë " * 120,
        'Ana "The Boss" (CEO), S.',
    ],
)
def test_display_names_fold_into_short_encoded_words_and_lines(name):
    raw = build_email(
        _message(to=mailbox(name, "ana@customer.test")), sender=mailbox(name, "a@b.test"), date=DATE
    )

    assert all(len(line) <= 78 for line in _lines(raw))
    assert all(len(word) <= 75 for word in ENCODED_WORD.findall(_head(raw).decode("ascii")))
    assert _display_name(raw, "To") == _display_name(raw, "From") == display_name(name)


def test_a_name_that_looks_like_an_encoded_word_shows_literally():
    lure = "=?utf-8?q?Bcc=3A_everyone=40example.com?="
    raw = build_email(_message(to=mailbox(lure, "ana@customer.test")), sender="a@b.test", date=DATE)

    assert lure not in _head(raw).decode("ascii")
    assert _parse(raw)["To"].addresses[0].display_name == lure


def test_a_subject_that_looks_like_an_encoded_word_shows_literally():
    lure = "Hi =?utf-8?q?Bcc=3A_x?="
    raw = build_email(_message(subject=lure), sender="a@b.test", date=DATE)

    assert "=?utf-8?q?Bcc" not in _head(raw).decode("ascii")
    assert str(_parse(raw)["Subject"]) == lure


def test_long_headers_are_folded_at_78():
    subject = " ".join(["renewal"] * 40)
    raw = build_email(
        _message(subject=subject, headers={"X-Campaign": "q3 " * 60}), sender="a@b.test", date=DATE
    )

    assert all(len(line) <= 78 for line in _lines(raw))
    assert str(_parse(raw)["Subject"]) == subject


def test_an_international_sender_domain_gives_an_ascii_message_id():
    raw = build_email(_message(sender="Zoë <zoe@exämple.com>"), sender="a@b.test", date=DATE)
    parsed = _parse(raw)

    assert parsed["Message-ID"].endswith("@xn--exmple-cua.com>")
    assert parsed["From"].addresses[0].domain == "xn--exmple-cua.com"
    assert sender_domain("Zoë <zoe@exämple.com>") == "xn--exmple-cua.com"


def test_a_contact_with_an_international_domain_has_an_address():
    contact = Contact(id="c1", name="Ana Souza", email="ana@exämple.test")
    to = recipient(contact, ChannelKind.EMAIL, None)

    raw = build_email(_message(to=to), sender="a@b.test", date=DATE)
    assert _parse(raw)["To"].addresses[0].addr_spec == "ana@xn--exmple-cua.test"
    assert envelope_address("To", to) == "ana@xn--exmple-cua.test"


def test_a_non_ascii_mailbox_name_needs_smtputf8():
    with pytest.raises(PermanentDeliveryError, match=r"'zoë@example\.com' has a non-ASCII"):
        envelope_address("To", "Zoë <zoë@example.com>")
    assert (
        envelope_address("To", "Zoë <zoë@exämple.com>", smtputf8=True) == "zoë@xn--exmple-cua.com"
    )
    raw = build_email(_message(to="Zoë <zoë@example.com>"), sender="a@b.test", date=DATE, utf8=True)
    # RFC 6532: the header carries the address in UTF-8.
    parsed = email.message_from_string(raw.decode("utf-8"), policy=email.policy.default)
    assert parsed["To"].addresses[0].addr_spec == "zoë@example.com"


@pytest.mark.parametrize(
    "name",
    [
        "From",
        "subject",
        "Content-Type",
        "MIME-Version",
        "Message-ID",
        "Date",
        "To",
        "Content-Transfer-Encoding",
        "Reply-To",
    ],
)
def test_headers_the_message_writes_cannot_be_given_again(name):
    with pytest.raises(PermanentDeliveryError, match=f"header {name} is written from the message"):
        build_email(_message(headers={name: "x"}), sender="a@b.test", date=DATE)


def test_a_header_given_twice_is_refused():
    with pytest.raises(PermanentDeliveryError, match="header x-campaign is given twice"):
        build_email(
            _message(headers={"X-Campaign": "a", "x-campaign": "b"}), sender="a@b.test", date=DATE
        )


def test_a_lone_surrogate_in_a_name_is_a_clear_error():
    with pytest.raises(PermanentDeliveryError, match="header To contains a lone surrogate"):
        build_email(_message(to=mailbox("Ana \udc80", "ana@b.test")), sender="a@b.test", date=DATE)
