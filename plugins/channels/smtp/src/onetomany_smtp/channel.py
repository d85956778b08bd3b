"""The SMTP channel: every message of a dispatch batch over one ``smtplib`` session.

The dispatcher opens a channel once per batch (``with channel:``), so :meth:`SmtpChannel.open`
connects, upgrades to TLS and logs in once, and :meth:`SmtpChannel.send` reuses that session
for each message. Servers routinely hang up on sessions that sat idle or carried their quota
of mail, which says nothing about the message in hand, so ``send`` reconnects once before it
reports a dropped connection. :meth:`SmtpChannel.send_many` builds each next message (its MIME
bytes and DKIM signature) while the server reads the one before, so that work costs no time
on the wire.

Failures become the two errors the dispatcher understands: SMTP replies by their class (4xx
is retried, 5xx is dead-lettered), network errors and timeouts are retried. The password never
appears in a repr, an error message or a log line.
"""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from email.utils import parseaddr
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import attrs

from onetomany.delivery.channels import Channel, Runtime
from onetomany.delivery.mime import (
    build_email,
    envelope_address,
    message_id,
    needs_smtputf8,
    sender_domain,
)
from onetomany.errors import (
    ConfigError,
    DeliveryError,
    PermanentDeliveryError,
    TransientDeliveryError,
    UnknownOutcomeError,
)
from onetomany.model import ChannelKind, DeliveryResult, Message
from onetomany.plugins.options import MASK, email_address, option, positive, secret
from onetomany.plugins.settings import PluginSettings
from onetomany_smtp.dkim_signing import DkimSigner

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

log = logging.getLogger(__name__)

#: The port each ``security`` mode listens on by convention (RFC 5321, RFC 6409, RFC 8314).
DEFAULT_PORTS = {"none": 25, "starttls": 587, "ssl": 465}


def _not_empty(_instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not value:
        raise ConfigError("is empty", key=attribute.name)


def _a_port(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not 0 < value < 65536:
        raise ConfigError(f"expected 1 to 65535, got {value}", key=attribute.name)


def _none_if_blank(value: str | None) -> str | None:
    return (value or "").strip() or None


@attrs.frozen(kw_only=True)
class SmtpOptions:
    """The channel's options, checked. AUTH is used when ``username`` is not empty."""

    host: str = option(
        "localhost", help="the SMTP server", converter=str.strip, validator=_not_empty
    )
    security: Literal["none", "starttls", "ssl"] = option(
        "none", help="none, starttls (RFC 3207) or ssl (implicit TLS, RFC 8314)"
    )
    port: int = option(
        help="the server's port (default: 25, 587 or 465 by security)",
        validator=_a_port,
    )
    username: str = option("", help="the user name to log in with (AUTH); empty: no login")
    password: str = secret("", help="the password to log in with")
    timeout: float = option(30.0, help="seconds to wait for the server", validator=positive)
    sender: str = option(
        "",
        help="the From address when the program sets none",
        converter=str.strip,
        validator=email_address,
    )
    local_hostname: str | None = option(
        None, help="the name sent in EHLO (default: this host's)", converter=_none_if_blank
    )
    cafile: Path | None = option(
        None, help="a PEM bundle of the CAs to trust instead of the system's (needs TLS)"
    )
    verify_tls: bool = option(True, help="check the server's certificate and name")
    dkim_domain: str = option("", help="sign with DKIM for this domain (d=); empty: no signing")
    dkim_selector: str = option("", help="the DKIM selector (s=): its key is in DNS there")
    dkim_key: Path | None = option(None, help="the DKIM private key, a PEM file")

    @port.default
    def _port_for_security(self) -> int:
        return DEFAULT_PORTS[self.security]

    def __attrs_post_init__(self) -> None:
        if self.username and not self.password:
            raise ConfigError("the 'smtp' plugin needs this option to log in", key="password")
        if self.password and not self.username:
            # A password without a user name would be silently ignored: more likely a typo.
            raise ConfigError("is needed to log in with the password that is set", key="username")
        if self.cafile is not None:
            if self.security == "none":
                raise ConfigError(
                    "is set but security is 'none', so no TLS would use it", key="cafile"
                )
            if not self.cafile.is_file():
                raise ConfigError(f"no such file: {self.cafile}", key="cafile")
        if self.dkim_domain or self.dkim_selector or self.dkim_key is not None:
            # All three or none: a half-configured signer would send unsigned mail unnoticed.
            if not self.dkim_domain:
                raise ConfigError("is needed to sign with DKIM", key="dkim_domain")
            if not self.dkim_selector:
                raise ConfigError("is needed to sign with DKIM", key="dkim_selector")
            if self.dkim_key is None:
                raise ConfigError("is needed to sign with DKIM", key="dkim_key")
            if not self.dkim_selector.isascii():
                raise ConfigError("a DKIM selector is ASCII", key="dkim_selector")
            DkimSigner.check_key(self.dkim_key)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def _tls_context(options: SmtpOptions, settings: PluginSettings) -> ssl.SSLContext | None:
    if options.security == "none":
        return None
    try:
        # With a cafile the bundle replaces the system store: a private CA is all it trusts.
        context = ssl.create_default_context(cafile=options.cafile)
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"cannot load {options.cafile}: {exc}",
            file=settings.origin or None,
            key=f"channels.{settings.name}.cafile",
        ) from exc
    if not options.verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class _Client(smtplib.SMTP):
    """``smtplib.SMTP`` that keeps the last reply, which ``sendmail`` does not return."""

    last_reply: tuple[int, bytes] = (0, b"")
    #: The server said 354 to DATA in the current transaction: the message is going out, so
    #: from here a lost connection leaves it unknown whether the server kept it.
    body_sent: bool = False

    #: Work to do once the message's data is out, while the server reads it: the channel
    #: builds the next message there (see :meth:`SmtpChannel.send_many`). Called once.
    meanwhile: Callable[[], None] | None = None

    def getreply(self) -> tuple[int, bytes]:
        self.last_reply = super().getreply()
        if self.last_reply[0] == 354:
            self.body_sent = True
        return self.last_reply

    # The channel hands MAIL and RCPT an address it has already parsed (envelope_address);
    # smtplib parses it again with email.utils.parseaddr, about 25-45 us per address, which
    # for a plain address only puts it in angle brackets.

    def mail(self, sender: str, options: Sequence[str] = ()) -> tuple[int, bytes]:
        if not _plain_envelope(sender) or any(o.lower() == "smtputf8" for o in options):
            return super().mail(sender, options)
        self.putcmd("mail", f"FROM:<{sender}>{_option_list(self, options)}")
        return self.getreply()

    def rcpt(self, recip: str, options: Sequence[str] = ()) -> tuple[int, bytes]:
        if not _plain_envelope(recip):
            return super().rcpt(recip, options)
        self.putcmd("rcpt", f"TO:<{recip}>{_option_list(self, options)}")
        return self.getreply()

    def data(self, msg: ReadableBuffer | str) -> tuple[int, bytes]:
        if not isinstance(msg, bytes):
            return super().data(msg)
        self.putcmd("data")
        code, reply = self.getreply()
        if code != 354:
            raise smtplib.SMTPDataError(code, reply)
        self.send(wire_data(msg))
        meanwhile, self.meanwhile = self.meanwhile, None
        if meanwhile is not None:
            meanwhile()
        return self.getreply()


def wire_data(message: bytes) -> bytes:
    """What DATA sends for ``message``: lines starting with ``.`` doubled, the message ended
    by CRLF and the closing ``.`` line, as ``smtplib.SMTP.data`` writes it.

    smtplib doubles the dots with a multi-line regular expression over the whole message
    (tens of microseconds for 10 KB, each message); most messages have no line to change,
    which a bytes search finds in a few.
    """
    if message.startswith(b".") or b"\n." in message:
        message = _LEADING_DOT.sub(b"..", message)
    if not message.endswith(b"\r\n"):
        message += b"\r\n"
    return message + b".\r\n"


_LEADING_DOT = re.compile(rb"(?m)^\.")


#: An envelope address that smtplib's ``quoteaddr`` would only put in angle brackets: printable
#: ASCII without spaces or the characters RFC 5322 gives a meaning outside atoms (anything
#: else goes through smtplib's own parsing). tests/test_smtp_wire.py holds it to quoteaddr.
_plain_envelope = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.@]+").fullmatch


def _option_list(client: smtplib.SMTP, options: Sequence[str]) -> str:
    return " " + " ".join(options) if options and client.does_esmtp else ""


class _SslClient(_Client, smtplib.SMTP_SSL):
    """The same over implicit TLS."""


@dataclass(frozen=True)
class _Outgoing:
    """One message in wire form, with its envelope."""

    key: str
    sender: str
    recipient: str
    data: bytes
    message_id: str | None
    #: The addresses whose non-ASCII mailbox name needs the server's SMTPUTF8.
    needs_smtputf8: tuple[str, ...] = ()


class SmtpChannel(Channel):
    """Sends email through an SMTP server; the options are those of :class:`SmtpOptions`."""

    kinds = (ChannelKind.EMAIL,)
    Options = SmtpOptions
    options: SmtpOptions
    sends_one_by_one = True

    def __init__(self, settings: PluginSettings, *, runtime: Runtime | None = None) -> None:
        super().__init__(settings, runtime=runtime)
        self._tls = _tls_context(self.options, settings)
        self._dkim = (
            DkimSigner(
                domain=self.options.dkim_domain,
                selector=self.options.dkim_selector,
                key_file=self.options.dkim_key,
            )
            if self.options.dkim_key is not None
            else None
        )
        self._client: _Client | None = None
        self._in_batch = False
        self._batch_failure: DeliveryError | None = None

    # -- the batch ---------------------------------------------------------------------------

    def open(self) -> None:
        """Connect for a batch. A failure is not raised here but by each ``send`` after it."""
        self._in_batch = True
        try:
            self._connection()
        except DeliveryError as error:
            # The contract reports failures per message; raising from ``with channel:`` would
            # abort the dispatcher's whole run instead.
            log.warning("SMTP channel %r: %s", self.settings.name, error)

    def close(self) -> None:
        """Say QUIT and forget the session; safe to call twice."""
        client, self._client = self._client, None
        self._in_batch = False
        self._batch_failure = None
        if client is None:
            return
        try:
            client.quit()
        except (smtplib.SMTPException, OSError) as exc:
            # Every message is accepted or refused by now: a failed goodbye changes nothing.
            log.debug("SMTP channel %r: QUIT failed: %s", self.settings.name, exc)
            client.close()

    def send(self, message: Message) -> DeliveryResult:
        """Send over the batch's session, reconnecting once if the server dropped it before
        the message went out.

        A drop after the message went out (the server said 354 to DATA, and its final reply
        never came) leaves it unknown whether the server kept it: that is an
        :class:`~onetomany.errors.UnknownOutcomeError`, never sent again here.
        """
        return self._send(self._prepare(message))

    def send_many(self, messages: Sequence[Message]) -> Iterator[DeliveryResult | DeliveryError]:
        """Send each message as :meth:`send` does, yielding its outcome before the next one
        leaves; each message after the first is built (MIME, DKIM) while the server reads the
        one before it, between the end of its data and the server's reply, which is the
        longest wait of a transaction. A message that cannot be built fails at its own turn,
        as it would in :meth:`send`.
        """
        ahead: _Outgoing | Exception | None = None
        for index, message in enumerate(messages):
            built = ahead if ahead is not None else self._built(message)
            ahead = None
            on_data: Callable[[], None] | None = None
            if index + 1 < len(messages):
                following = messages[index + 1]

                def build_next(following: Message = following) -> None:
                    nonlocal ahead
                    ahead = self._built(following)

                on_data = build_next
            try:
                if isinstance(built, Exception):
                    raise built
                yield self._send(built, meanwhile=on_data)
            except DeliveryError as error:
                yield error

    def _built(self, message: Message) -> _Outgoing | Exception:
        """``message`` built for the wire, or what building it raised, kept for its turn."""
        try:
            return self._prepare(message)
        except Exception as exc:
            return exc

    def _send(
        self, outgoing: _Outgoing, meanwhile: Callable[[], None] | None = None
    ) -> DeliveryResult:
        try:
            return self._transmit(outgoing, meanwhile)
        except smtplib.SMTPServerDisconnected as exc:
            log.info("SMTP channel %r: %s; reconnecting", self.settings.name, exc)
            self._discard()
        try:
            return self._transmit(outgoing, meanwhile)
        except smtplib.SMTPServerDisconnected as exc:
            self._discard()
            raise self._error(exc, f"sending {outgoing.key}") from exc

    # -- one message -------------------------------------------------------------------------

    def _prepare(self, message: Message) -> _Outgoing:
        sender = message.sender or self.options.sender
        if not sender:
            raise PermanentDeliveryError(
                f"message {message.idempotency_key}: no sender; set the program's sender or "
                f"the 'sender' option of channel {self.settings.name!r}"
            )
        # A non-ASCII mailbox name (left of the @) needs SMTPUTF8; whether the server offers it
        # is known once connected, in _transmit. A non-ASCII domain is sent in IDNA form.
        utf8 = [parseaddr(value)[1] for value in (sender, message.to) if needs_smtputf8(value)]
        data = build_email(message, sender=sender, date=self.runtime.clock.now(), utf8=bool(utf8))
        if self._dkim is not None:
            data = self._dkim.sign(data)
        return _Outgoing(
            key=message.idempotency_key,
            sender=envelope_address("From", sender, smtputf8=True),
            recipient=envelope_address("To", message.to, smtputf8=True),
            data=data,
            # The Message-ID build_email wrote (it derives it from the key and the sender).
            message_id=message_id(message.idempotency_key, sender_domain(sender)),
            needs_smtputf8=tuple(utf8),
        )

    def _transmit(
        self, outgoing: _Outgoing, meanwhile: Callable[[], None] | None = None
    ) -> DeliveryResult:
        """Send over the current session; a dropped session is left for :meth:`send` to handle.

        Whatever fails inside the transaction (after MAIL FROM), the session is reset before
        the error leaves, so the next message of the batch does not find it half-used.
        """
        client = self._connection()
        options: list[str] = []
        if outgoing.needs_smtputf8:
            client.ehlo_or_helo_if_needed()
            if not client.has_extn("smtputf8"):
                raise PermanentDeliveryError(
                    f"channel {self.settings.name!r}: sending {outgoing.key}: "
                    f"{', '.join(map(repr, outgoing.needs_smtputf8))} has a non-ASCII mailbox "
                    f"name, which needs SMTPUTF8, and {self.options.address} does not offer it"
                )
            options.append("SMTPUTF8")
        client.body_sent = False
        client.meanwhile = meanwhile
        try:
            client.sendmail(outgoing.sender, [outgoing.recipient], outgoing.data, options)
        except (
            smtplib.SMTPSenderRefused,
            smtplib.SMTPRecipientsRefused,
            smtplib.SMTPDataError,
        ) as exc:
            # smtplib has reset the transaction after a refusal and the session goes on;
            # after a 421 it has hung up.
            if client.sock is None:
                self._discard()
            raise self._error(exc, f"sending {outgoing.key} to {outgoing.recipient}") from exc
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            # smtplib's own exceptions are OSErrors (a refusal is handled above). Before the
            # message: a timeout, a reply out of turn; the session's state is unknown.
            if not client.body_sent:
                if isinstance(exc, smtplib.SMTPServerDisconnected):
                    raise  # before the message: send() reconnects and sends it
                self._discard()
                raise self._error(exc, f"sending {outgoing.key} to {outgoing.recipient}") from exc
            # The message went out and its reply never came: the server may have kept it.
            self._discard()
            raise UnknownOutcomeError(
                f"channel {self.settings.name!r}: sending {outgoing.key} to "
                f"{outgoing.recipient}: the connection was lost after the message was sent "
                f"({type(exc).__name__}); the server may have accepted it"
            ) from exc
        except (UnicodeError, ValueError) as exc:
            # A value smtplib cannot write (a line break, an unencodable character).
            self._reset(client)
            raise PermanentDeliveryError(
                f"channel {self.settings.name!r}: sending {outgoing.key} to "
                f"{outgoing.recipient!r}: {type(exc).__name__}: {exc}"
            ) from exc
        except BaseException:
            self._reset(client)
            raise
        finally:
            client.meanwhile = None
        code, text = client.last_reply
        log.debug("SMTP channel %r: sent %s: %s", self.settings.name, outgoing.key, code)
        return DeliveryResult(provider_message_id=outgoing.message_id, detail=_reply(code, text))

    # -- the session -------------------------------------------------------------------------

    def _connection(self) -> _Client:
        """The open session, connecting if there is none.

        Within a batch a failed connection is not tried again for every message: one
        unreachable server should cost one timeout per batch, not one per message.
        """
        if self._client is not None:
            return self._client
        if self._batch_failure is not None:
            failure = self._batch_failure
            raise type(failure)(f"{failure} (earlier in this batch)") from failure.__cause__
        try:
            self._client = self._connect()
        except DeliveryError as error:
            if self._in_batch:
                self._batch_failure = error
            raise
        return self._client

    def _connect(self) -> _Client:
        options = self.options
        log.debug(
            "SMTP channel %r: connecting to %s (security %s)",
            self.settings.name,
            options.address,
            options.security,
        )
        try:
            client = self._new_client()
        except (smtplib.SMTPException, OSError) as exc:
            raise self._error(exc, f"cannot connect to {options.address}") from exc
        try:
            if options.security == "starttls":
                client.starttls(context=self._tls)
            if options.username:
                client.login(options.username, options.password)
        except (smtplib.SMTPException, OSError) as exc:
            client.close()
            raise self._error(exc, f"cannot open a session with {options.address}") from exc
        return client

    def _new_client(self) -> _Client:
        options = self.options
        if options.security == "ssl":
            return _SslClient(
                options.host,
                options.port,
                local_hostname=options.local_hostname,
                timeout=options.timeout,
                context=self._tls,
            )
        return _Client(
            options.host,
            options.port,
            local_hostname=options.local_hostname,
            timeout=options.timeout,
        )

    def _reset(self, client: _Client) -> None:
        """End a transaction that failed half-way (RSET); drop the session if even that fails."""
        try:
            code, _ = client.rset()
        except (smtplib.SMTPException, OSError) as exc:
            log.info("SMTP channel %r: RSET failed (%s); reconnecting", self.settings.name, exc)
            self._discard()
            return
        if code != 250:
            self._discard()

    def _discard(self) -> None:
        """Drop the session without QUIT: it is gone or no longer trusted."""
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def _error(self, exc: BaseException, doing: str) -> DeliveryError:
        kind, description = _classify(exc)
        text = f"channel {self.settings.name!r}: {doing}: {description}"
        if self.options.password:
            text = text.replace(self.options.password, MASK)
        return kind(text)


def _classify(exc: BaseException) -> tuple[type[DeliveryError], str]:
    """Whether ``exc`` is worth retrying, and a description of it."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        refused = exc.recipients.items()
        replies = "; ".join(f"{address}: {_reply(code, text)}" for address, (code, text) in refused)
        codes = [code for code, _ in exc.recipients.values()]
        permanent = bool(codes) and all(_is_permanent(code) for code in codes)
        return (PermanentDeliveryError if permanent else TransientDeliveryError), (
            f"recipient refused: {replies}"
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        kind = PermanentDeliveryError if _is_permanent(exc.smtp_code) else TransientDeliveryError
        return kind, f"server replied {_reply(exc.smtp_code, exc.smtp_error)}"
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return TransientDeliveryError, f"connection lost: {exc}"
    if isinstance(exc, smtplib.SMTPException):
        # smtplib raises the bare class when the server lacks what the options ask for
        # (STARTTLS, AUTH, a common AUTH mechanism): retrying will not add it.
        return PermanentDeliveryError, str(exc)
    # Refused or reset connections, timeouts, DNS and TLS failures: all may pass.
    return TransientDeliveryError, f"{type(exc).__name__}: {exc}"


def _is_permanent(code: int) -> bool:
    # Anything but a 5xx, including the odd codes smtplib invents (-1), may pass.
    return 500 <= code < 600


def _reply(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {text}".strip()
