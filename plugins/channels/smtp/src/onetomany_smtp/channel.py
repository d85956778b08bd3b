"""The SMTP channel: every message of a dispatch batch over one ``smtplib`` session.

The dispatcher opens a channel once per batch (``with channel:``), so :meth:`SmtpChannel.open`
connects, upgrades to TLS and logs in once, and :meth:`SmtpChannel.send` reuses that session
for each message. Servers routinely hang up on sessions that sat idle or carried their quota
of mail, which says nothing about the message in hand, so ``send`` reconnects once before it
reports a dropped connection.

Failures become the two errors the dispatcher understands: SMTP replies by their class (4xx
is retried, 5xx is dead-lettered), network errors and timeouts are retried. The password never
appears in a repr, an error message or a log line.
"""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path

from onetomany.delivery.channels import Channel, Runtime
from onetomany.delivery.mime import build_email, envelope_address, needs_smtputf8
from onetomany.errors import (
    ConfigError,
    DeliveryError,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from onetomany.model import ChannelKind, DeliveryResult, Message
from onetomany.plugins.settings import MASK, PluginSettings

log = logging.getLogger(__name__)

#: The port each ``security`` mode listens on by convention (RFC 5321, RFC 6409, RFC 8314).
DEFAULT_PORTS = {"none": 25, "starttls": 587, "ssl": 465}

OPTIONS = frozenset(
    {
        "host",
        "port",
        "security",
        "username",
        "password",
        "timeout",
        "sender",
        "local_hostname",
        "cafile",
        "verify_tls",
    }
)

_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(<[^>\r\n]+>)", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True, kw_only=True)
class SmtpOptions:
    """The channel's options, checked. AUTH is used when ``username`` is not empty."""

    host: str = "localhost"
    port: int = DEFAULT_PORTS["none"]
    security: str = "none"
    username: str = ""
    password: str = field(default="", repr=False)
    timeout: float = 30.0
    sender: str = ""
    local_hostname: str | None = None
    cafile: Path | None = None
    verify_tls: bool = True

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def read_options(settings: PluginSettings) -> SmtpOptions:
    """The options in ``settings``; a missing or bad one is a :class:`ConfigError` naming it."""
    _reject_unknown(settings)
    security = _security(settings)
    username, password = _credentials(settings)
    return SmtpOptions(
        host=_host(settings),
        port=_port(settings, DEFAULT_PORTS[security]),
        security=security,
        username=username,
        password=password,
        timeout=_timeout(settings),
        sender=_sender(settings),
        local_hostname=settings.get("local_hostname", str, "").strip() or None,
        cafile=_cafile(settings, security),
        verify_tls=settings.get("verify_tls", bool, True),
    )


def _invalid(settings: PluginSettings, key: str, reason: str) -> ConfigError:
    return ConfigError(reason, file=settings.origin or None, key=f"{settings.name}.{key}")


def _reject_unknown(settings: PluginSettings) -> None:
    # A misspelt option would otherwise fall back to its default without a word.
    unknown = sorted(set(settings.options) - OPTIONS)
    if unknown:
        known = ", ".join(sorted(OPTIONS))
        raise _invalid(settings, unknown[0], f"unknown option (known: {known})")


def _security(settings: PluginSettings) -> str:
    security = settings.get("security", str, "none").strip().lower()
    if security not in DEFAULT_PORTS:
        known = ", ".join(DEFAULT_PORTS)
        raise _invalid(settings, "security", f"expected one of {known}; got {security!r}")
    return security


def _host(settings: PluginSettings) -> str:
    host = settings.get("host", str, "localhost").strip()
    if not host:
        raise _invalid(settings, "host", "is empty")
    return host


def _port(settings: PluginSettings, default: int) -> int:
    port = settings.get("port", int, default)
    if not 0 < port < 65536:
        raise _invalid(settings, "port", f"expected 1 to 65535, got {port}")
    return port


def _timeout(settings: PluginSettings) -> float:
    timeout = settings.get("timeout", float, 30.0)
    if not timeout > 0:
        raise _invalid(settings, "timeout", f"expected a number of seconds above 0, got {timeout}")
    return timeout


def _credentials(settings: PluginSettings) -> tuple[str, str]:
    username = settings.get("username", str, "")
    if username:
        return username, settings.require("password", str)
    if settings.get("password", str, ""):
        # A password without a user name would be silently ignored: more likely a typo.
        raise _invalid(settings, "username", "is needed to log in with the password that is set")
    return "", ""


def _sender(settings: PluginSettings) -> str:
    sender = settings.get("sender", str, "").strip()
    if sender and "@" not in parseaddr(sender)[1]:
        raise _invalid(settings, "sender", f"{sender!r} is not an email address")
    return sender


def _cafile(settings: PluginSettings, security: str) -> Path | None:
    if "cafile" not in settings.options:
        return None
    if security == "none":
        raise _invalid(settings, "cafile", "is set but security is 'none', so no TLS would use it")
    path = settings.path("cafile")
    if not path.is_file():
        raise _invalid(settings, "cafile", f"no such file: {path}")
    return path


def _tls_context(options: SmtpOptions, settings: PluginSettings) -> ssl.SSLContext | None:
    if options.security == "none":
        return None
    try:
        # With a cafile the bundle replaces the system store: a private CA is all it trusts.
        context = ssl.create_default_context(cafile=options.cafile)
    except (OSError, ValueError) as exc:
        raise _invalid(settings, "cafile", f"cannot load {options.cafile}: {exc}") from exc
    if not options.verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class _Client(smtplib.SMTP):
    """``smtplib.SMTP`` that keeps the last reply, which ``sendmail`` does not return."""

    last_reply: tuple[int, bytes] = (0, b"")

    def getreply(self) -> tuple[int, bytes]:
        self.last_reply = super().getreply()
        return self.last_reply


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
    """Sends email through an SMTP server; the options are listed in :data:`OPTIONS`."""

    kind = ChannelKind.EMAIL

    def __init__(self, settings: PluginSettings, *, runtime: Runtime | None = None) -> None:
        super().__init__(settings, runtime=runtime)
        self.options = read_options(settings)
        self._tls = _tls_context(self.options, settings)
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
        """Send over the batch's session, reconnecting once if the server dropped it.

        A drop after the data went out leaves it unknown whether the server kept the message;
        the copy sent again carries the same Message-ID, so a receiver can discard it.
        """
        outgoing = self._prepare(message)
        try:
            return self._transmit(outgoing)
        except smtplib.SMTPServerDisconnected as exc:
            log.info("SMTP channel %r: %s; reconnecting", self.settings.name, exc)
            self._discard()
        try:
            return self._transmit(outgoing)
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
        found = _MESSAGE_ID.search(data.partition(b"\r\n\r\n")[0])
        return _Outgoing(
            key=message.idempotency_key,
            sender=envelope_address("From", sender, smtputf8=True),
            recipient=envelope_address("To", message.to, smtputf8=True),
            data=data,
            message_id=found.group(1).decode("ascii") if found else None,
            needs_smtputf8=tuple(utf8),
        )

    def _transmit(self, outgoing: _Outgoing) -> DeliveryResult:
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
        try:
            client.sendmail(outgoing.sender, [outgoing.recipient], outgoing.data, options)
        except smtplib.SMTPServerDisconnected:
            raise
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
        except (smtplib.SMTPException, OSError) as exc:
            # The session's state is unknown: a timeout mid-data, a reply out of turn.
            self._discard()
            raise self._error(exc, f"sending {outgoing.key} to {outgoing.recipient}") from exc
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
