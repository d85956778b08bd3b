"""A local stand-in for Slack, for tests and demos: never a sender.

:class:`FakeSlack` is an HTTP/1.1 server on loopback (standard library, keep-alive) that
answers as Slack documents:

- ``POST /api/chat.postMessage`` (form or JSON, ``Authorization: Bearer``): HTTP 200 with
  ``{"ok": true, "channel", "ts", "message"}``, or HTTP 200 with ``{"ok": false, "error"}``:
  ``not_authed``/``invalid_auth`` (token), ``channel_not_found`` (a channel it does not
  know, when :attr:`FakeSlack.channels` is set), ``not_in_channel``, ``no_text``,
  ``invalid_blocks``; rate limits as HTTP 429 ``ratelimited`` with ``Retry-After``;
- ``POST /services/T.../B.../...`` (an incoming webhook, JSON): ``ok`` in plain text, or
  ``invalid_payload`` (400), ``no_text`` (400), ``no_service`` (404), 429 with ``Retry-After``.

``check`` (optional) sees each Web API request first (method, path, headers, raw body);
raising ``ValueError`` answers ``invalid_arguments`` and records the reason in
:attr:`FakeSlack.refused`: the plugin's tests validate requests against Slack's OpenAPI
document there.

Scripted answers (:meth:`FakeSlack.script`): ``"accept"``, ``"transient"`` (429),
``"internal_error"`` (HTTP 200, ``ok: false``), ``"permanent"`` (``channel_not_found``),
``"no_answer"`` (read the request and hang up).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

__all__ = ["FakeSlack", "RequestCheck"]

RequestCheck = Callable[[str, str, Mapping[str, str], bytes], None]

_WEBHOOK = re.compile(r"/services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]+")
WEBHOOK_PATH = "/services/T0001/B0001/Xx0x0x0x0x0x0x0x0x0x0x0x"


class FakeSlack:
    """Slack's chat.postMessage and incoming webhooks on ``127.0.0.1``."""

    def __init__(
        self,
        *,
        token: str = "xoxb-fake",  # noqa: S107 - the fake's own, for local runs
        webhook_path: str = WEBHOOK_PATH,
        port: int = 0,
        check: RequestCheck | None = None,
    ) -> None:
        self.token = token
        self.webhook_path = webhook_path
        self.check = check
        #: The channels that exist (None: every one); the bot is not in :attr:`outside`.
        self.channels: set[str] | None = None
        self.outside: set[str] = set()
        self.posted: list[dict[str, Any]] = []
        self.refused: list[str] = []
        self.arrived = 0
        self.retry_after = "1"
        self._script: deque[str] = deque()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self._server.daemon_threads = True

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def api_url(self) -> str:
        return self.url + "/api"

    @property
    def webhook_url(self) -> str:
        return self.url + self.webhook_path

    def start(self) -> FakeSlack:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def script(self, *answers: str) -> None:
        """How the next messages are answered, in order of arrival; then ``accept``."""
        self._script.extend(answers)

    def _next(self) -> str:
        with self._lock:
            self.arrived += 1
            return self._script.popleft() if self._script else "accept"

    def answer(
        self, path: str, headers: Mapping[str, str], raw: bytes
    ) -> tuple[int, object, dict[str, str]]:
        """``(status, body, headers)``: a dict body is JSON, a str plain text; 0: hang up."""
        if path == "/api/chat.postMessage":
            return self._web_api(path, headers, raw)
        if _WEBHOOK.fullmatch(path):
            return self._webhook(path, raw)
        return 404, {"ok": False, "error": "unknown_method"}, {}

    def _web_api(
        self, path: str, headers: Mapping[str, str], raw: bytes
    ) -> tuple[int, object, dict[str, str]]:
        if self.check is not None:
            try:
                self.check("POST", path, headers, raw)
            except ValueError as problem:
                with self._lock:
                    self.refused.append(str(problem))
                return 200, {"ok": False, "error": "invalid_arguments"}, {}
        auth = headers.get("Authorization", "")
        if not auth:
            return 200, {"ok": False, "error": "not_authed"}, {}
        if auth != f"Bearer {self.token}":
            return 200, {"ok": False, "error": "invalid_auth"}, {}
        if "json" in headers.get("Content-Type", ""):
            form = json.loads(raw or b"{}")
        else:
            form = {k: v[-1] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()}
            if "blocks" in form:
                form["blocks"] = json.loads(form["blocks"])
        answer = self._next()
        if answer == "no_answer":
            return 0, None, {}
        if answer == "transient":
            return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": self.retry_after}
        if answer == "internal_error":
            return 200, {"ok": False, "error": "internal_error"}, {}
        channel = str(form.get("channel") or "")
        if not channel:
            return 200, {"ok": False, "error": "channel_not_found"}, {}
        if answer == "permanent" or (self.channels is not None and channel not in self.channels):
            return 200, {"ok": False, "error": "channel_not_found"}, {}
        if channel in self.outside:
            return 200, {"ok": False, "error": "not_in_channel"}, {}
        if not form.get("text") and not form.get("blocks"):
            return 200, {"ok": False, "error": "no_text"}, {}
        if not isinstance(form.get("blocks", []), list) or len(form.get("blocks", [])) > 50:
            return 200, {"ok": False, "error": "invalid_blocks"}, {}
        ts = f"{time.time():.6f}"
        with self._lock:
            self.posted.append(dict(form, ts=ts))
        message = {"type": "message", "text": form.get("text", ""), "ts": ts, "bot_id": "B0001"}
        return 200, {"ok": True, "channel": channel, "ts": ts, "message": message}, {}

    def _webhook(self, path: str, raw: bytes) -> tuple[int, object, dict[str, str]]:
        if path != self.webhook_path:
            return 404, "no_service", {}
        answer = self._next()
        if answer == "no_answer":
            return 0, None, {}
        if answer in ("transient", "internal_error"):
            return 429, "rate_limited", {"Retry-After": self.retry_after}
        if answer == "permanent":
            return 404, "channel_not_found", {}
        try:
            document = json.loads(raw)
        except ValueError:
            return 400, "invalid_payload", {}
        if not isinstance(document, dict):
            return 400, "invalid_payload", {}
        if not document.get("text") and not document.get("blocks"):
            return 400, "no_text", {}
        with self._lock:
            self.posted.append(document)
        return 200, "ok", {}


def _handler(fake: FakeSlack) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            headers = dict(self.headers.items())
            status, body, extra = fake.answer(self.path, headers, raw)
            if status == 0:
                self.close_connection = True  # read it all, answer nothing
                return
            text = isinstance(body, str)
            payload = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(status)
            kind = "text/plain" if text else "application/json"
            self.send_header("Content-Type", f"{kind}; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default="xoxb-fake")
    arguments = parser.parse_args()
    fake = FakeSlack(token=arguments.token, port=arguments.port)
    print(fake.url, flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        fake._server.serve_forever()


if __name__ == "__main__":
    main()
