"""A local stand-in for Postmark's email API, for tests, benchmarks and demos: never a sender.

:class:`FakePostmark` is an HTTP/1.1 server on loopback (standard library, keep-alive) that
follows Postmark's documented behaviour for ``POST /email`` and ``POST /email/batch``: the
``X-Postmark-Server-Token`` header (401, ErrorCode 10, when missing or wrong), JSON bodies
(422, ErrorCode 402, when unreadable), the checks behind ErrorCode 300 (a From and a To
address, a TextBody or HtmlBody, metadata within 10 fields of 80 characters), inactive
recipients (ErrorCode 406), at most 500 messages a batch (ErrorCode 410), and the answer
shapes (``To``, ``SubmittedAt``, ``MessageID``, ``ErrorCode``, ``Message``). It keeps every
message it accepted.

Tests script faults with :meth:`FakePostmark.script`: each message that arrives takes the
next answer (``"accept"``, ``"transient"`` for a 503 with ``Retry-After``, ``"rate_limited"``
for a 429, ``"permanent"`` for an inactive recipient, ``"no_answer"`` to read the request
and hang up); in a batch, a whole-call answer (transient, rate limited, no answer) is taken
from the first message's. ``fail_ratio`` answers that share of calls with 429 or 503 at random.

Run ``python -m onetomany_postmark.testing --port 8025`` to serve one from a shell.
"""

from __future__ import annotations

import argparse
import json
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from onetomany.testing_http import Answer, LocalHTTPFake

__all__ = ["FakePostmark"]

NO_CREDENTIALS = (
    "No Account or Server API tokens were supplied in the HTTP headers. Please add a header "
    "for either X-Postmark-Server-Token or X-Postmark-Account-Token."
)
BAD_CREDENTIALS = (
    "The Server Token you provided in the X-Postmark-Server-Token request header was invalid. "
    "Please verify that you are using a valid token."
)
_ADDRESS = re.compile(r"[^@\s<>]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
WHOLE_CALL = {"transient", "rate_limited", "no_answer"}


class FakePostmark(LocalHTTPFake):
    """Postmark's email endpoints on ``127.0.0.1``; use as a context manager or start/stop."""

    def __init__(
        self,
        *,
        token: str = "server-token",  # noqa: S107 - the fake's own, for local runs
        port: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__(port=port, seed=seed)
        self.token = token
        self.inactive: set[str] = set()
        self.accepted: list[dict[str, Any]] = []
        self.calls = 0

    def respond(self, method: str, path: str, headers: Mapping[str, str], raw: bytes) -> Answer:
        return self.answer(path, headers.get("X-Postmark-Server-Token"), raw)

    def answer(self, path: str, token: str | None, raw: bytes) -> Answer:
        """``(status, JSON body, headers)`` for one call; status 0 means hang up unanswered."""
        with self._lock:
            self.calls += 1
        if path not in ("/email", "/email/batch"):
            return 404, {"ErrorCode": 404, "Message": "Not found"}, {}
        if not token:
            return 401, {"ErrorCode": 10, "Message": NO_CREDENTIALS}, {}
        if token != self.token:
            return 401, {"ErrorCode": 10, "Message": BAD_CREDENTIALS}, {}
        try:
            document = json.loads(raw)
        except ValueError:
            return 422, {"ErrorCode": 402, "Message": "Received invalid JSON input."}, {}
        if path == "/email":
            if not isinstance(document, dict):
                return 422, {"ErrorCode": 403, "Message": "Incompatible JSON input."}, {}
            answer = self.next_answer()
            if answer in WHOLE_CALL:
                return self._whole_call(answer)
            result = self._one(document, answer)
            return (200 if result["ErrorCode"] == 0 else 422), result, {}
        if not isinstance(document, list):
            return 422, {"ErrorCode": 403, "Message": "Incompatible JSON input."}, {}
        if len(document) > 500:
            return 422, {"ErrorCode": 410, "Message": "Too many batch messages."}, {}
        answers = [self.next_answer() for _ in document]
        if answers and answers[0] in WHOLE_CALL:
            with self._lock:
                self.arrived -= len(document) - 1  # the call failed as one
            return self._whole_call(answers[0])
        results = [self._one(m, a) for m, a in zip(document, answers, strict=True)]
        return 200, results, {}

    def _whole_call(self, answer: str) -> Answer:
        if answer == "no_answer":
            return 0, None, {}
        if answer == "rate_limited":
            return (
                429,
                {"ErrorCode": 429, "Message": "Rate limit exceeded."},
                {"Retry-After": self.retry_after},
            )
        return (
            503,
            {"ErrorCode": 503, "Message": "Service unavailable."},
            {"Retry-After": self.retry_after},
        )

    def _one(self, message: object, answer: str) -> dict[str, Any]:
        problem = _invalid(message)
        if problem:
            return {"ErrorCode": 300, "Message": problem}
        assert isinstance(message, dict)
        to = str(message["To"])
        if answer == "permanent" or _bare(to) in self.inactive:
            return {
                "ErrorCode": 406,
                "Message": "You tried to send to recipient(s) that have been marked as "
                f"inactive. Found inactive addresses: {_bare(to)}. Inactive recipients are ones "
                "that have generated a hard bounce, a spam complaint, or a manual suppression.",
            }
        message_id = str(uuid.uuid4())
        with self._lock:
            self.accepted.append(dict(message, MessageID=message_id))
        return {
            "To": to,
            "SubmittedAt": datetime.now(UTC).isoformat(),
            "MessageID": message_id,
            "ErrorCode": 0,
            "Message": "OK",
        }


def _bare(address: str) -> str:
    found = _ADDRESS.search(address)
    return found.group(0).lower() if found else address


def _invalid(message: object) -> str | None:
    """Why Postmark would answer ErrorCode 300, or None."""
    if not isinstance(message, dict):
        return "Invalid email request: expected a JSON object."
    for field in ("From", "To"):
        value = message.get(field)
        if not isinstance(value, str) or not _ADDRESS.search(value):
            return f"Invalid '{field}' address: '{value}'."
    if not message.get("TextBody") and not message.get("HtmlBody"):
        return "Provide either email TextBody or HtmlBody or both."
    metadata = message.get("Metadata", {})
    if not isinstance(metadata, dict) or len(metadata) > 10:
        return "Metadata may hold at most 10 fields."
    for key, value in metadata.items():
        if len(key) > 20 or not isinstance(value, str) or len(value) > 80:
            return f"Metadata field '{key}' is too long (names: 20, values: 80 characters)."
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default="server-token")
    arguments = parser.parse_args()
    fake = FakePostmark(token=arguments.token, port=arguments.port)
    print(fake.url, flush=True)
    fake.serve_forever()


if __name__ == "__main__":
    main()
