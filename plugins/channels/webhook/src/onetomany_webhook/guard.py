"""The SSRF guard: a webhook URL may only reach public addresses unless the program allows more.

A program's webhook URL comes from configuration that may be less trusted than the server
running the sends; without a guard it could point the sender at the cloud metadata service
(169.254.169.254), a database on loopback or an internal admin panel. So every address the
host resolves to must be global (not private, loopback, link-local, shared, reserved,
multicast or unspecified) and not a metadata address, or be inside one of the ``allow``
networks. The check runs twice: on the DNS answer before connecting, and on the peer of the
connection actually made (:class:`GuardedAdapter`), so a name that resolves differently the
second time (DNS rebinding) is still refused.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

__all__ = ["AddressRefused", "Guard", "GuardedAdapter"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Cloud metadata services, refused even where they would count as global.
METADATA = (
    ipaddress.ip_network("169.254.169.254/32"),  # AWS, GCP, Azure, OpenStack
    ipaddress.ip_network("100.100.100.200/32"),  # Alibaba Cloud
    ipaddress.ip_network("fd00:ec2::254/128"),  # AWS over IPv6
)


class AddressRefused(Exception):
    """The webhook's host resolved to an address the guard refuses."""


class Guard:
    """Which addresses a channel may connect to: global ones, and the ``allow`` networks."""

    def __init__(self, allow: Iterable[str] = ()) -> None:
        self.allow: tuple[Network, ...] = tuple(
            ipaddress.ip_network(entry, strict=False) for entry in allow
        )

    def problem(self, address: str) -> str | None:
        """Why ``address`` is refused, or None when it may be reached."""
        ip: Address = ipaddress.ip_address(address.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in network for network in self.allow):
            return None
        if any(ip in network for network in METADATA):
            return f"{ip} is a cloud metadata address"
        if not ip.is_global or ip.is_multicast:
            kind = next(
                (
                    name
                    for name in ("loopback", "link_local", "private", "multicast", "reserved")
                    if getattr(ip, f"is_{name}")
                ),
                "non-global",
            )
            return f"{ip} is a {kind.replace('_', '-')} address"
        return None

    def check_host(self, host: str, port: int) -> None:
        """Resolve ``host`` and raise :class:`AddressRefused` if any address is refused."""
        try:
            answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError:
            return  # unresolvable: the connection attempt reports it (transient)
        for *_, sockaddr in answers:
            problem = self.problem(str(sockaddr[0]))
            if problem:
                raise AddressRefused(
                    f"{host} resolves to {problem}; refused (allow it with the allow option)"
                )

    def check_peer(self, sock: socket.socket) -> None:
        problem = self.problem(str(sock.getpeername()[0]))
        if problem:
            sock.close()
            raise AddressRefused(f"connected to {problem}; refused")


def _guarded(base: type[HTTPConnection], guard: Guard) -> type[HTTPConnection]:
    class Guarded(base):  # type: ignore[valid-type, misc]
        def _new_conn(self) -> socket.socket:
            sock: socket.socket = super()._new_conn()
            guard.check_peer(sock)
            return sock

    return Guarded


class GuardedAdapter(HTTPAdapter):
    """A requests adapter whose every new connection is checked by ``guard`` once made."""

    def __init__(self, guard: Guard, **kwargs: Any) -> None:
        self.guard = guard
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        guard = self.guard

        class Plain(HTTPConnectionPool):
            ConnectionCls = _guarded(HTTPConnection, guard)

        class Secure(HTTPSConnectionPool):
            ConnectionCls = _guarded(HTTPSConnection, guard)  # type: ignore[assignment]

        self.poolmanager.pool_classes_by_scheme = {"http": Plain, "https": Secure}
