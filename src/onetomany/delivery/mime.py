"""Serialising an email :class:`~onetomany.model.Message` to RFC 5322 bytes, fast.

The stdlib's ``email`` package builds a tree of objects and a policy-driven generator per
message, which costs about two milliseconds: a hundred times the Jinja render of the same
message. A tech-touch email always has the same shape (multipart/alternative, a plain-text and
an HTML part, UTF-8), so this module writes that shape directly:

- bodies are quoted-printable (``binascii.b2a_qp``, in C), so no line on the wire exceeds 76
  octets even though MJML output has lines of thousands of characters; a body is encoded in
  pieces joined by soft line breaks, and the pieces a template gives every recipient are kept;
- every line ends in CRLF;
- the boundary contains ``=_``, which quoted-printable can never produce, so it cannot collide
  with a body;
- header values with CR or LF are refused (header injection);
- header values are folded at 78 octets, and no header line can exceed 998 (RFC 5322). Text
  that is not plain ASCII words (non-ASCII, a word too long to fold, or ASCII that looks like
  an encoded-word, which mail clients would show decoded) becomes RFC 2047 encoded-words of at
  most 68 characters each (RFC 2047 allows 75);
- addresses are read and written here and only here: :func:`mailbox` writes the one-line form
  ``Message.to`` and ``Message.sender`` hold, :func:`parse_mailbox` reads it back,
  :func:`envelope_address` gives the SMTP envelope form (IDNA domain; a non-ASCII mailbox name
  only with SMTPUTF8), and headers carry the same IDNA domain;
- ``Message.headers`` may add headers but not replace one this module writes (From, To,
  Subject, Date, Message-ID, MIME-Version, Content-Type, Content-Transfer-Encoding, Reply-To):
  such a header, or one given twice in different cases, is a PermanentDeliveryError naming it.

The Message-ID is derived from the idempotency key, so a message sent again after a crash
carries the same id and receivers can drop the copy.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime, parseaddr

from email_validator import EmailNotValidError, validate_email

from onetomany.errors import PermanentDeliveryError
from onetomany.model import Message

#: RFC 5322 recommends lines of at most 78 characters and forbids more than 998.
_FOLD_AT = 78
_MAX_LINE = 998
#: The longest token (plain word, quoted string or encoded-word) put on a line: 68, so that
#: ``Reply-To: `` and a token fit 78. RFC 2047 allows encoded-words of up to 75 characters.
_MAX_WORD = _FOLD_AT - len("Reply-To: ")
#: ``=?utf-8?q?`` and ``?=`` take 12 of an encoded-word's characters.
_EW_TEXT = _MAX_WORD - 12
#: Base64 text of at most 56 characters holds 42 octets (14 groups of 3).
_B_OCTETS = _EW_TEXT // 4 * 3
#: An address longer than this cannot share a line with ``Reply-To: `` within 998 octets.
_MAX_ADDRESS = 900


def message_id(idempotency_key: str, domain: str) -> str:
    """A Message-ID that is the same every time the same key is sent."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    return f"<{digest}@{domain}>"


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# A header name: printable ASCII but the colon, and short enough to leave room on its line.
_HEADER_NAME = re.compile(r"[\x21-\x39\x3b-\x7e]{1,76}")
# RFC 5322 atext: what a display name may hold without quotes.
_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+")
# A plain header word: printable ASCII but the ``=?`` that opens an encoded-word.
_PLAIN = re.compile(r"[\x21-\x7e]*")
# Characters an encoded-word in a phrase may carry unencoded (RFC 2047 5(3)).
_Q_LITERAL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
#: Headers build_email writes itself; ``Message.headers`` may not give them again.
STRUCTURAL = frozenset(
    {
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "reply-to",
    }
)


def _checked(name: str, value: str) -> str:
    if "\r" in value or "\n" in value:
        raise PermanentDeliveryError(f"header {name} contains a line break: {value[:60]!r}")
    if _CONTROL.search(value):
        raise PermanentDeliveryError(f"header {name} contains a control character: {value[:60]!r}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise PermanentDeliveryError(
            f"header {name} contains a lone surrogate: {value[:60]!r}"
        ) from exc
    return value


# -- encoded-words and folding ------------------------------------------------------------------


def _q_piece(char: str) -> str:
    if char in _Q_LITERAL:
        return char
    if char == " ":
        return "_"
    return "".join(f"={octet:02X}" for octet in char.encode("utf-8"))


def _encoded_words(text: str) -> list[str]:
    """``text`` as RFC 2047 encoded-words of at most 68 characters, each whole characters.

    Q encoding when it is shorter (mostly Latin text), else B. A decoder drops the white space
    between adjacent encoded-words, so they read back as exactly ``text``.
    """
    pieces = [_q_piece(char) for char in text]
    octets = len(text.encode("utf-8"))
    if sum(map(len, pieces)) <= (octets + 2) // 3 * 4:
        words: list[list[str]] = []
        current: list[str] = []
        size = 0
        for piece in pieces:
            if size + len(piece) > _EW_TEXT:
                words.append(current)
                current, size = [], 0
            current.append(piece)
            size += len(piece)
        words.append(current)
        return [f"=?utf-8?q?{''.join(word)}?=" for word in words]
    chunks: list[str] = []
    chunk: list[str] = []
    size = 0
    for char in text:
        width = len(char.encode("utf-8"))
        if size + width > _B_OCTETS:
            chunks.append("".join(chunk))
            chunk, size = [], 0
        chunk.append(char)
        size += width
    chunks.append("".join(chunk))
    return [f"=?utf-8?b?{base64.b64encode(c.encode('utf-8')).decode('ascii')}?=" for c in chunks]


def _fold(name: str, tokens: Iterable[str]) -> str:
    """``tokens`` joined by single spaces, with a fold (CRLF before the space) wherever the
    next token would take the line past 78 characters. An empty token (from two spaces in a
    row) is never put at the start of a line, so no line is only white space."""
    lines: list[str] = []
    line: list[str] = []
    width = len(name) + 1  # "Name:"; each token adds its space
    for token in tokens:
        if line and token and width + 1 + len(token) > _FOLD_AT:
            lines.append(" ".join(line))
            line, width = [], 0
        line.append(token)
        width += 1 + len(token)
    lines.append(" ".join(line))
    return "\r\n ".join(lines)


def _unstructured(name: str, value: str) -> str:
    """A header value of free text (Subject, custom headers), folded and encoded as needed."""
    _checked(name, value)
    if value.isascii() and "=?" not in value:
        words = value.split(" ")
        if all(len(word) <= _MAX_WORD for word in words):
            if len(name) + 2 + len(value) <= _FOLD_AT:
                return value
            return _fold(name, words)
    return _fold(name, _encoded_words(value))


def _phrase(name: str) -> list[str]:
    """A display name (one space between words, see :func:`display_name`) as header tokens.

    Plain ASCII words stay as they are; a name with specials (``.``, ``,``, quotes) that fits
    one line becomes a quoted string; otherwise each run of words that need it (non-ASCII, too
    long, specials, or looking like an encoded-word) becomes encoded-words, with the spaces
    inside the run encoded too. RFC 2047 decoders drop the white space between adjacent
    encoded-words, and keep it between an encoded-word and a plain word.
    """
    words = name.split(" ")
    plain = [
        bool(_ATOM.fullmatch(word)) and len(word) <= _MAX_WORD and "=?" not in word
        for word in words
    ]
    if all(plain):
        return words
    if name.isascii() and "=?" not in name and name.isprintable():
        quoted = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if len(quoted) <= _MAX_WORD:
            return [quoted]
    tokens: list[str] = []
    run: list[str] = []
    for word, is_plain in zip(words, plain, strict=True):
        if is_plain:
            if run:
                tokens.extend(_encoded_words(" ".join(run)))
                run = []
            tokens.append(word)
        else:
            run.append(word)
    if run:
        tokens.extend(_encoded_words(" ".join(run)))
    return tokens


# -- addresses ----------------------------------------------------------------------------------


def display_name(name: str | None) -> str:
    """``name`` as one line of text: every run of white space or control characters becomes
    one space, and the ends are trimmed. A display name is not the place for line breaks."""
    if not name:
        return ""
    return " ".join(_CONTROL.sub(" ", name).split())


def mailbox(name: str | None, address: str) -> str:
    """The one-line form of a mailbox that ``Message.to`` and ``Message.sender`` hold.

    Unlike :func:`email.utils.formataddr` it takes any address (an internationalised domain
    or mailbox name is encoded when the message is written, see :func:`build_email`) and any
    name (see :func:`display_name`); :func:`parse_mailbox` reads it back unchanged.
    """
    name = display_name(name)
    if not name:
        return address
    if all(_ATOM.fullmatch(word) for word in name.split(" ")):
        return f"{name} <{address}>"
    escaped = name.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}" <{address}>'


# The two forms :func:`mailbox` writes for a plain name and address: ``Name <local@domain>``
# (every word of the name an atom, one space between words) and ``local@domain``, both with
# dot-atoms of ASCII atext on either side of the ``@``. For these, parseaddr's answer is the
# name and the address as written; a property test holds the two to agreeing.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = rf"{_ATEXT}(?:\.{_ATEXT})*"
_SIMPLE_MAILBOX = re.compile(
    rf"(?:(?P<name>{_ATEXT}(?: {_ATEXT})*) <)?(?P<address>{_DOT_ATOM}@{_DOT_ATOM})(?(name)>)"
)


def split_mailbox(value: str) -> tuple[str, str]:
    """``(name, address)`` as :func:`email.utils.parseaddr` reads ``value``.

    Every message parses its recipient, and parseaddr's tokenizer costs more than the whole
    Jinja render of a small email; the forms :func:`mailbox` writes for ordinary names are read
    with one regular expression, anything else by parseaddr.
    """
    simple = _SIMPLE_MAILBOX.fullmatch(value)
    if simple is not None:
        return simple["name"] or "", simple["address"]
    return parseaddr(value)


@dataclass(frozen=True, slots=True)
class Mailbox:
    """A display name and an address split into its mailbox name and domain."""

    name: str
    local: str
    domain: str

    @property
    def address(self) -> str:
        return f"{self.local}@{self.domain}"


# Cached: sending a message reads its recipient for the header and again for the envelope.
@functools.lru_cache(maxsize=256)
def parse_mailbox(header: str, value: str) -> Mailbox:
    """Read ``value`` (as :func:`mailbox` writes it, or ``Name <a@b>`` / ``a@b``) for the
    ``header`` named in errors; a PermanentDeliveryError when it is not one address."""
    _checked(header, value)
    name, address = split_mailbox(value)
    local, _, domain = address.rpartition("@")
    if not local or not domain:
        raise PermanentDeliveryError(f"header {header} is not an email address: {value!r}")
    if len(address) > _MAX_ADDRESS:
        raise PermanentDeliveryError(
            f"header {header}: the address is {len(address)} characters long: {address[:60]!r}..."
        )
    return Mailbox(name=display_name(name), local=local, domain=domain)


@functools.lru_cache(maxsize=256)
def _idna(domain: str) -> str | None:
    try:
        checked = validate_email(f"x@{domain}", check_deliverability=False, test_environment=True)
    except EmailNotValidError:
        return None
    return checked.ascii_domain


def ascii_domain(header: str, box: Mailbox) -> str:
    """The domain of ``box`` in ASCII: an internationalised one in IDNA (``xn--``) form."""
    if box.domain.isascii():
        return box.domain
    encoded = _idna(box.domain)
    if encoded is None:
        raise PermanentDeliveryError(
            f"header {header}: the domain of {box.address!r} is not a valid internationalised "
            "domain name"
        )
    return encoded


def needs_smtputf8(value: str) -> bool:
    """Whether the address in ``value`` has a non-ASCII mailbox name (left of the ``@``),
    which only a server that offers SMTPUTF8 (RFC 6531) can carry; a non-ASCII domain does
    not need it, as it is sent in IDNA form."""
    return not split_mailbox(value)[1].rpartition("@")[0].isascii()


def envelope_address(header: str, value: str, *, smtputf8: bool = False) -> str:
    """The address in ``value`` as the SMTP envelope (MAIL FROM, RCPT TO) carries it.

    The domain is in IDNA form. A non-ASCII mailbox name is kept as UTF-8 when ``smtputf8``
    (the server offers SMTPUTF8 and the transaction asks for it), and is otherwise a
    PermanentDeliveryError naming the address.
    """
    return _ascii_address(header, parse_mailbox(header, value), smtputf8=smtputf8)


def _ascii_address(header: str, box: Mailbox, *, smtputf8: bool) -> str:
    if not box.local.isascii() and not smtputf8:
        raise PermanentDeliveryError(
            f"header {header}: {box.address!r} has a non-ASCII mailbox name, which needs "
            "SMTPUTF8 (RFC 6531) from the transport"
        )
    return f"{box.local}@{ascii_domain(header, box)}"


# Cached: the sender is the same for most messages, and parsing it costs more than the Jinja
# render of a small email.
@functools.lru_cache(maxsize=256)
def _address_header(name: str, value: str, *, utf8: bool) -> str:
    box = parse_mailbox(name, value)
    address = _ascii_address(name, box, smtputf8=utf8)
    if not box.name:
        return address
    return _fold(name, [*_phrase(box.name), f"<{address}>"])


@functools.lru_cache(maxsize=256)
def sender_domain(sender: str) -> str:
    """The domain of ``sender`` in ASCII, for the Message-ID (``localhost`` if it has none)."""
    domain = split_mailbox(sender)[1].rpartition("@")[2]
    if not domain:
        return "localhost"
    if domain.isascii():
        return domain
    return _idna(domain) or "localhost"


# -- the message --------------------------------------------------------------------------------


#: Where a body is cut into pieces that are encoded (and kept) one by one: before each
#: ``<div``, which MJML writes around every block of text, so a recipient's own values (a
#: name, a link) fall in small pieces. Any cut gives the same decoded body.
_CUT = "<div"
#: Pieces shorter than this are kept once encoded, at most _KEPT_PIECES of them (about 4 MB).
_KEEP_UP_TO = 4096
_KEPT_PIECES = 1024
#: The longest line quoted-printable allows, soft line break included (RFC 2045 6.7).
_QP_LINE = 76


def _qp(body: str) -> bytes:
    """``body`` in quoted-printable with CRLF line ends, cut into pieces joined by soft line
    breaks (``=`` CRLF, which a decoder removes).

    Encoding the whole body (``b2a_qp``) was most of the time spent writing a message, yet
    every recipient of a touch gets the same template with a few values of their own: each
    piece starts a line, so its encoding does not depend on what came before, and the pieces
    of the template around the values are encoded once and kept.
    """
    if "\r" in body:
        body = body.replace("\r\n", "\n").replace("\r", "\n")
    # Each piece after the first is kept without the cut it follows, which its encoding
    # restores: gluing the cut back would copy the whole body once more per message.
    first, *rest = body.split(_CUT)
    if not rest:
        return _qp_piece(first, False, False)
    last = rest.pop()
    encoded = [_qp_piece(first, False, True)] if first else []
    encoded.extend(_qp_piece(piece, True, True) for piece in rest)
    encoded.append(_qp_piece(last, True, False))
    return b"=\r\n".join(encoded)


def _qp_piece(piece: str, cut: bool, joined: bool) -> bytes:
    if len(piece) < _KEEP_UP_TO:
        return _qp_kept(piece, cut, joined)
    return _qp_encode(piece, cut, joined)


def _qp_encode(text: str, cut: bool, joined: bool) -> bytes:
    """``text`` (after the cut when ``cut``) in quoted-printable; when ``joined`` (a soft line
    break follows), its last line leaves room for the ``=``: no line is longer than 76 octets
    (RFC 2045)."""
    if cut:
        text = _CUT + text
    # b2a_qp encodes white space at the end of its input, so no line ends in a bare space a
    # transport could strip, even where a piece ends.
    encoded = binascii.b2a_qp(text.encode("utf-8"), quotetabs=False, istext=True)
    if len(encoded) > _QP_LINE:
        encoded = b"\n".join(_rewrapped(line) for line in encoded.split(b"\n"))
    if joined and len(encoded) - encoded.rfind(b"\n") - 1 == _QP_LINE:
        # The last character (or its =XX) goes to a line of its own; an ``=`` in the output
        # only ever starts an =XX.
        at = len(encoded) - (3 if encoded[-3:-2] == b"=" else 1)
        encoded = encoded[:at] + b"=\n" + encoded[at:]
    return encoded.replace(b"\n", b"\r\n")


def _rewrapped(line: bytes) -> bytes:
    """``line`` cut by soft line breaks into lines of at most 76 octets. b2a_qp leaves a line
    of 77 when it encodes the white space that ends one (``=20``) after a full line."""
    if len(line) <= _QP_LINE:
        return line
    lines = []
    while len(line) > _QP_LINE:
        cut = _QP_LINE - 1
        # Never inside an =XX: an ``=`` in the output only ever starts one.
        escape = line.rfind(b"=", cut - 2, cut)
        if escape != -1:
            cut = escape
        lines.append(line[:cut] + b"=")
        line = line[cut:]
    lines.append(line)
    return b"\n".join(lines)


_qp_kept = functools.lru_cache(maxsize=_KEPT_PIECES)(_qp_encode)


#: The headers of the two parts.
_TEXT_PART = (
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
)
_HTML_PART = _TEXT_PART.replace(b"text/plain", b"text/html")


# A dispatch writes hundreds of messages a second, and the header shows whole seconds.
@functools.lru_cache(maxsize=4)
def _date(date: datetime) -> str:
    return format_datetime(date)


def build_email(message: Message, *, sender: str, date: datetime, utf8: bool = False) -> bytes:
    """The wire form of ``message``: headers, then a multipart/alternative body.

    ``sender`` is used when the message names none. ``utf8`` lets an address keep a non-ASCII
    mailbox name in its header (RFC 6532), for a transport that carries SMTPUTF8; without it
    such an address is refused. Raises :class:`~onetomany.errors.PermanentDeliveryError` for
    header values that cannot be sent.
    """
    from_ = message.sender or sender
    headers: list[tuple[str, str]] = [
        ("From", _address_header("From", from_, utf8=utf8)),
        ("To", _address_header("To", message.to, utf8=utf8)),
        ("Subject", _unstructured("Subject", message.subject)),
        ("Date", _date(date.replace(microsecond=0))),
        ("Message-ID", message_id(message.idempotency_key, sender_domain(from_))),
        ("MIME-Version", "1.0"),
    ]
    if message.reply_to:
        headers.append(("Reply-To", _address_header("Reply-To", message.reply_to, utf8=utf8)))
    headers.extend(_extra_headers(message.headers))
    boundary = (
        "=_" + hashlib.sha1(message.idempotency_key.encode(), usedforsecurity=False).hexdigest()
    )
    headers.append(("Content-Type", f'multipart/alternative;\r\n boundary="{boundary}"'))
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    return b"".join(
        (
            head.encode("utf-8" if utf8 else "ascii"),
            f"\r\n--{boundary}\r\n".encode(),
            _TEXT_PART,
            _qp(message.text),
            f"\r\n--{boundary}\r\n".encode(),
            _HTML_PART,
            _qp(message.html),
            f"\r\n--{boundary}--\r\n".encode(),
        )
    )


def _extra_headers(headers: Mapping[str, str]) -> Iterable[tuple[str, str]]:
    seen: set[str] = set()
    for name, value in headers.items():
        if not _HEADER_NAME.fullmatch(name):
            raise PermanentDeliveryError(f"invalid header name {name!r}")
        folded = name.lower()
        if folded in STRUCTURAL:
            raise PermanentDeliveryError(
                f"header {name} is written from the message itself and cannot be given in "
                "its headers"
            )
        if folded in seen:
            raise PermanentDeliveryError(f"header {name} is given twice (names ignore case)")
        seen.add(folded)
        yield name, _listed(name, value) if folded in _URL_LISTS else _unstructured(name, value)


#: Headers whose value is a list of <URL>s (RFC 2369): never encoded-words, which would hide
#: the URLs; folded only between items.
_URL_LISTS = frozenset({"list-unsubscribe", "list-unsubscribe-post"})


def _listed(name: str, value: str) -> str:
    _checked(name, value)
    if not value.isascii() or len(value) > _MAX_LINE - 2 - len(name):
        raise PermanentDeliveryError(f"header {name}: URLs must be ASCII and fit one line")
    return value.replace(", ", ",\r\n ") if len(name) + 2 + len(value) > _FOLD_AT else value
