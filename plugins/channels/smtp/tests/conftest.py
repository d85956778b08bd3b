"""Fixtures for the SMTP channel tests: a real aiosmtpd server on loopback, and channels for it.

Every server listens on 127.0.0.1 on a port the kernel picked; nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from onetomany.delivery.channels import Runtime
from onetomany.model import ChannelKind, Message
from onetomany.model.clock import FrozenClock
from onetomany.plugins.settings import PluginSettings
from onetomany_smtp import SmtpChannel

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Received:
    """One message the server accepted, as it came over the wire."""

    peer: tuple[str, int]
    authenticated: bool
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    #: The MAIL command's parameters (SIZE, SMTPUTF8, ...).
    mail_options: list[str] = field(default_factory=list)


@dataclass
class RecordingHandler:
    """An aiosmtpd handler that keeps what it accepts and answers as a test scripts it.

    ``rcpt_replies`` and ``data_replies`` map a recipient to the reply its RCPT or DATA gets.
    """

    accepted: str = "250 2.0.0 Ok: queued as 7E1A"
    received: list[Received] = field(default_factory=list)
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_replies: dict[str, str] = field(default_factory=dict)
    hang_up_after_data: bool = False
    quits: int = 0
    resets: int = 0

    @property
    def connections(self) -> int:
        """How many client connections carried the accepted messages."""
        return len({message.peer for message in self.received})

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address in self.rcpt_replies:
            return self.rcpt_replies[address]
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        reply = self.data_replies.get(envelope.rcpt_tos[0], self.accepted)
        if reply.startswith("250"):
            self.received.append(
                Received(
                    peer=session.peer,
                    authenticated=bool(session.authenticated),
                    mail_from=envelope.mail_from,
                    rcpt_tos=list(envelope.rcpt_tos),
                    data=envelope.original_content,
                    mail_options=list(envelope.mail_options),
                )
            )
        if self.hang_up_after_data:
            # Runs after the reply is written: the client sees 250, then a closed connection
            # when it starts the next message, like a server that drops idle sessions.
            asyncio.get_running_loop().call_soon(server.transport.close)
        return reply

    async def handle_RSET(self, server: Any, session: Any, envelope: Any) -> str:
        self.resets += 1
        return "250 2.0.0 Ok"

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:
        self.quits += 1
        return "221 2.0.0 Bye"


@dataclass
class Authenticator:
    """Accepts one user; ``echo`` makes a refusal quote the password it was given."""

    username: str = "mailer"
    password: str = "Tr0ub4dor-and-3"
    echo: bool = False
    mechanisms: list[str] = field(default_factory=list)

    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        self.mechanisms.append(mechanism)
        if data.login == self.username.encode() and data.password == self.password.encode():
            return AuthResult(success=True)
        message = f"535 5.7.8 bad password {data.password.decode()}" if self.echo else None
        return AuthResult(success=False, handled=False, message=message)


class LoopbackController(Controller):
    """A Controller serving a socket bound before it starts.

    Binding first and handing the socket over leaves no moment in which another process could
    take the port, unlike probing for a free port and binding it again.
    """

    def __init__(self, handler: Any, **kwargs: Any) -> None:
        self.listener = socket.create_server((LOOPBACK, 0))
        port = self.listener.getsockname()[1]
        super().__init__(handler, hostname=LOOPBACK, port=port, **kwargs)

    def _create_server(self) -> Any:
        return self.loop.create_server(
            self._factory_invoker, sock=self.listener, ssl=self.ssl_context
        )


@dataclass
class SmtpServer:
    controller: LoopbackController
    handler: RecordingHandler
    authenticator: Authenticator
    running: bool = True

    @property
    def port(self) -> int:
        return int(self.controller.port)

    def stop(self) -> None:
        if self.running:
            self.running = False
            self.controller.stop()


StartServer = Callable[..., SmtpServer]


@pytest.fixture
def start_server() -> Iterator[StartServer]:
    """Start an aiosmtpd server: ``start_server(**smtp_parameters)``; stopped after the test."""
    servers: list[SmtpServer] = []

    def start(*, echo_password: bool = False, **smtp_parameters: Any) -> SmtpServer:
        handler = RecordingHandler()
        authenticator = Authenticator(echo=echo_password)
        controller = LoopbackController(
            handler,
            server_hostname="mx.test",
            authenticator=authenticator,
            auth_require_tls=False,
            **smtp_parameters,
        )
        controller.start()
        server = SmtpServer(controller, handler, authenticator)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def server(start_server: StartServer) -> SmtpServer:
    """A plain SMTP server: no TLS, AUTH offered but not required."""
    return start_server()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


MakeChannel = Callable[..., SmtpChannel]


@pytest.fixture
def make_channel(start_server: StartServer, clock: FrozenClock) -> Iterator[MakeChannel]:
    """An SmtpChannel for ``server`` (or any port) with ``options`` over the test defaults."""
    channels: list[SmtpChannel] = []

    def make(server: SmtpServer | None = None, **options: Any) -> SmtpChannel:
        defaults: dict[str, Any] = {
            "host": LOOPBACK,
            "sender": "Success Team <success@example.com>",
            "local_hostname": "client.test",
            "timeout": 5,
        }
        if server is not None:
            defaults["port"] = server.port
        settings = PluginSettings(
            name="email", plugin="smtp", options=defaults | options, origin="program.toml"
        )
        channel = SmtpChannel(settings, runtime=Runtime(clock=clock))
        channels.append(channel)
        return channel

    yield make
    # Torn down before start_server (it depends on it), so every QUIT finds its server.
    for channel in channels:
        channel.close()


@pytest.fixture
def channel(make_channel: MakeChannel, server: SmtpServer) -> SmtpChannel:
    """A channel for the plain ``server``."""
    return make_channel(server)


MakeMessage = Callable[..., Message]


@pytest.fixture
def make_message() -> MakeMessage:
    """Build an email Message with readable defaults and a fresh key: ``make_message(**fields)``."""
    keys = itertools.count(1)

    def make(**fields: Any) -> Message:
        defaults: dict[str, Any] = {
            "idempotency_key": f"touch-welcome:contact-{next(keys)}",
            "channel": "email",
            "kind": ChannelKind.EMAIL,
            "to": "Ana Souza <ana@customer.example>",
            "subject": "Welcome aboard",
            "text": "Hi Ana,\nwelcome aboard.\n",
            "html": "<p>Hi Ana,</p><p>welcome aboard.</p>",
        }
        return Message(**(defaults | fields))

    return make


# -- TLS ----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def certificate_authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def server_tls(certificate_authority: trustme.CA) -> ssl.SSLContext:
    """The server side: a certificate for 127.0.0.1 signed by the test CA."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate_authority.issue_cert(LOOPBACK, "localhost").configure_cert(context)
    return context


@pytest.fixture(scope="session")
def ca_bundle(certificate_authority: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test CA as a PEM file, for the channel's ``cafile`` option."""
    path = tmp_path_factory.mktemp("tls") / "ca.pem"
    certificate_authority.cert_pem.write_to_path(str(path))
    return path
