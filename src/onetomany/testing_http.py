"""The scaffolding every local provider fake shares, importable without pytest.

A channel plugin's ``testing`` module stands in for its provider on loopback: a tests, demo or
benchmark process starts it, points the channel at :attr:`LocalHTTPFake.url`, scripts faults and
reads back what arrived. The server, its lifecycle and the scripted answers are the same for
every provider, so they live here once; a fake writes only :meth:`LocalHTTPFake.respond`, which
speaks its provider's documented API.

The server is the standard library's, HTTP/1.1 with keep-alive (as the providers' APIs), Nagle
off so headers and body leave together (otherwise each answer waits for the client's delayed
ACK, 40 ms on Linux).
"""

from __future__ import annotations

import json
import random
import threading
from collections import deque
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

__all__ = ["HANG_UP", "Answer", "LocalHTTPFake", "RequestCheck"]

#: ``(status, body, extra headers)``: a ``str`` body is sent as text, bytes as they are, any
#: other body as JSON; status :data:`HANG_UP` reads the request and closes unanswered (the
#: "unknown outcome" a client sees when a provider fails after the body was sent).
Answer = tuple[int, object, dict[str, str]]
HANG_UP = 0

#: Sees (method, path, headers, raw body) before a fake answers; raises ValueError to refuse.
#: Plugin tests validate requests against the provider's OpenAPI document there.
RequestCheck = Callable[[str, str, Mapping[str, str], bytes], None]


class LocalHTTPFake:
    """A provider's API on ``127.0.0.1``; use as a context manager or :meth:`start`/:meth:`stop`.

    Subclasses implement :meth:`respond`. Scripted answers (:meth:`script`) are taken in order
    of arrival by :meth:`next_answer`, then ``"accept"``; ``fail_ratio`` answers that share at
    random with one of :attr:`random_faults`.
    """

    #: What ``fail_ratio`` draws from.
    random_faults: tuple[str, ...] = ("transient", "rate_limited")

    def __init__(self, *, port: int = 0, seed: int = 0) -> None:
        self.arrived = 0
        self.connections = 0
        self.refused: list[str] = []
        self.retry_after = "1"
        self.fail_ratio = 0.0
        self._random = random.Random(seed)
        self._script: deque[str] = deque()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self._server.daemon_threads = True

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Self:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def serve_forever(self) -> None:
        """Serve in this thread (a fake run from a shell) until interrupted."""
        try:
            self._server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def script(self, *answers: str) -> None:
        """How the next messages are answered, in order of arrival; then ``accept``."""
        with self._lock:
            self._script.extend(answers)

    def next_answer(self) -> str:
        """The answer for the message that just arrived (counted in :attr:`arrived`)."""
        with self._lock:
            self.arrived += 1
            if self._script:
                return self._script.popleft()
            if self.fail_ratio and self._random.random() < self.fail_ratio:
                return self._random.choice(self.random_faults)
        return "accept"

    def checked(
        self,
        check: RequestCheck | None,
        method: str,
        path: str,
        headers: Mapping[str, str],
        raw: bytes,
    ) -> str | None:
        """Why ``check`` refuses the request (recorded in :attr:`refused`), or None."""
        if check is None:
            return None
        try:
            check(method, path, headers, raw)
        except ValueError as problem:
            with self._lock:
                self.refused.append(str(problem))
            return str(problem)
        return None

    def respond(self, method: str, path: str, headers: Mapping[str, str], raw: bytes) -> Answer:
        """Answer one request as the provider documents; called from the server's threads."""
        raise NotImplementedError

    def _connected(self) -> None:
        with self._lock:
            self.connections += 1


def _handler(fake: LocalHTTPFake) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True
        wbufsize = 1 << 16

        def setup(self) -> None:
            super().setup()
            fake._connected()

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            headers = dict(self.headers.items())
            status, body, extra = fake.respond(self.command, self.path, headers, raw)
            if status == HANG_UP:
                self.close_connection = True  # read it all, answer nothing
                return
            if isinstance(body, bytes):
                payload, kind = body, "application/octet-stream"
            elif isinstance(body, str):
                payload, kind = body.encode(), "text/plain; charset=utf-8"
            else:
                payload, kind = json.dumps(body).encode(), "application/json; charset=utf-8"
            self.send_response(status)
            if not any(name.lower() == "content-type" for name in extra):
                self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        do_POST = _serve
        do_GET = _serve
        do_PUT = _serve
        do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: tests and benchmarks read the fake's own records

    return Handler
