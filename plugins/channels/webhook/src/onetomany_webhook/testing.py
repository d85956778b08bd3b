"""A local webhook receiver for tests and demos: checks each signature as a receiver must.

:class:`FakeReceiver` is an HTTP/1.1 server on loopback (standard library, keep-alive). Each
POST's Standard Webhooks signature is verified with :func:`onetomany_webhook.signing.verify`
(401 when it does not hold); a ``webhook-id`` seen before is answered 200 and not kept again
(receivers deduplicate). Accepted documents are kept in :attr:`FakeReceiver.received_documents`.

Scripted answers (:meth:`FakeReceiver.script`): ``"accept"`` (200), ``"transient"`` (503 with
``Retry-After``), ``"permanent"`` (410 Gone), ``"redirect"`` (302 to ``/elsewhere``),
``"no_answer"`` (read the request and hang up).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from onetomany_webhook.signing import SignatureError, verify

__all__ = ["FakeReceiver"]


class FakeReceiver:
    """A signed-webhook receiver on ``127.0.0.1``; use as a context manager or start/stop."""

    def __init__(self, *, secret: str, port: int = 0) -> None:
        self.secret = secret
        self.received_documents: list[dict[str, Any]] = []
        self.seen_ids: set[str] = set()
        self.refused: list[str] = []
        self.arrived = 0
        self.retry_after = "1"
        #: The receiver's clock, for the timestamp tolerance (seconds since the epoch).
        self.now: float | None = None
        self._script: deque[str] = deque()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self._server.daemon_threads = True

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/hooks/onetomany"

    def start(self) -> FakeReceiver:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeReceiver:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def script(self, *answers: str) -> None:
        """How the next requests are answered, in order of arrival; then ``accept``."""
        self._script.extend(answers)

    def answer(self, headers: dict[str, str], raw: bytes) -> tuple[int, str, dict[str, str]]:
        with self._lock:
            self.arrived += 1
            answer = self._script.popleft() if self._script else "accept"
        if answer == "no_answer":
            return 0, "", {}
        if answer == "transient":
            return 503, "busy", {"Retry-After": self.retry_after}
        if answer == "permanent":
            return 410, "this hook is gone", {}
        if answer == "redirect":
            return 302, "", {"Location": "/elsewhere"}
        try:
            verify(self.secret, headers, raw, now=self.now if self.now is not None else time.time())
        except SignatureError as problem:
            with self._lock:
                self.refused.append(str(problem))
            return 401, f"bad signature: {problem}", {}
        ident = {k.lower(): v for k, v in headers.items()}["webhook-id"]
        with self._lock:
            if ident not in self.seen_ids:
                self.seen_ids.add(ident)
                self.received_documents.append(json.loads(raw))
        return 200, json.dumps({"received": ident}), {}


def _handler(fake: FakeReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            status, body, extra = fake.answer(dict(self.headers.items()), raw)
            if status == 0:
                self.close_connection = True
                return
            payload = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
