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
import time
from collections.abc import Mapping
from typing import Any

from onetomany.testing_http import Answer, LocalHTTPFake
from onetomany_webhook.signing import SignatureError, verify

__all__ = ["FakeReceiver"]


class FakeReceiver(LocalHTTPFake):
    """A signed-webhook receiver on ``127.0.0.1``; use as a context manager or start/stop."""

    def __init__(self, *, secret: str, port: int = 0) -> None:
        super().__init__(port=port)
        self.secret = secret
        self.received_documents: list[dict[str, Any]] = []
        self.seen_ids: set[str] = set()
        #: The receiver's clock, for the timestamp tolerance (seconds since the epoch).
        self.now: float | None = None

    @property
    def url(self) -> str:
        return super().url + "/hooks/onetomany"

    def respond(self, method: str, path: str, headers: Mapping[str, str], raw: bytes) -> Answer:
        return self.answer(dict(headers), raw)

    def answer(self, headers: dict[str, str], raw: bytes) -> Answer:
        answer = self.next_answer()
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
