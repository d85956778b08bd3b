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
import json
import re
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from onetomany.testing_http import Answer, LocalHTTPFake, RequestCheck

__all__ = ["FakeSlack", "RequestCheck"]

_WEBHOOK = re.compile(r"/services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]+")
WEBHOOK_PATH = "/services/T0001/B0001/Xx0x0x0x0x0x0x0x0x0x0x0x"


class FakeSlack(LocalHTTPFake):
    """Slack's chat.postMessage and incoming webhooks on ``127.0.0.1``."""

    def __init__(
        self,
        *,
        token: str = "xoxb-fake",  # noqa: S107 - the fake's own, for local runs
        webhook_path: str = WEBHOOK_PATH,
        port: int = 0,
        check: RequestCheck | None = None,
    ) -> None:
        super().__init__(port=port)
        self.token = token
        self.webhook_path = webhook_path
        self.check = check
        #: The channels that exist (None: every one); the bot is not in :attr:`outside`.
        self.channels: set[str] | None = None
        self.outside: set[str] = set()
        self.posted: list[dict[str, Any]] = []

    @property
    def api_url(self) -> str:
        return self.url + "/api"

    @property
    def webhook_url(self) -> str:
        return self.url + self.webhook_path

    def respond(self, method: str, path: str, headers: Mapping[str, str], raw: bytes) -> Answer:
        return self.answer(path, headers, raw)

    def answer(self, path: str, headers: Mapping[str, str], raw: bytes) -> Answer:
        """``(status, body, headers)``: a dict body is JSON, a str plain text; 0: hang up."""
        if path == "/api/chat.postMessage":
            return self._web_api(path, headers, raw)
        if _WEBHOOK.fullmatch(path):
            return self._webhook(path, raw)
        return 404, {"ok": False, "error": "unknown_method"}, {}

    def _web_api(self, path: str, headers: Mapping[str, str], raw: bytes) -> Answer:
        if self.checked(self.check, "POST", path, headers, raw) is not None:
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
        answer = self.next_answer()
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

    def _webhook(self, path: str, raw: bytes) -> Answer:
        if path != self.webhook_path:
            return 404, "no_service", {}
        answer = self.next_answer()
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


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default="xoxb-fake")
    arguments = parser.parse_args()
    fake = FakeSlack(token=arguments.token, port=arguments.port)
    print(fake.url, flush=True)
    fake.serve_forever()


if __name__ == "__main__":
    main()
