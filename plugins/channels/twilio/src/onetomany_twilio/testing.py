"""A local stand-in for Twilio's Messages API, for tests and demos: never a sender.

:class:`FakeTwilio` is an HTTP/1.1 server on loopback (standard library, keep-alive) that
answers ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` as Twilio documents it: basic
auth (401, error 20003, when missing or wrong), a form body with ``To``, ``Body`` and ``From``
or ``MessagingServiceSid`` (400, error 21604/21602/21603 when one is missing), an E.164 ``To``
(400, error 21211, otherwise), numbers that replied STOP (400, error 21610) or take no SMS
(400, error 21614), and the 201
answer with the message resource (``sid``, ``status``, ``num_segments``, ...). It keeps every
message it accepted.

``check`` (optional) sees each request first (method, URL path, headers, raw body); raising
``ValueError`` answers 400 and records the reason in :attr:`FakeTwilio.refused`: the plugin's
tests validate requests there against Twilio's OpenAPI document.

Tests script answers with :meth:`FakeTwilio.script`: ``"accept"``, ``"transient"`` (503 with
``Retry-After``), ``"rate_limited"`` (429, error 20429), ``"permanent"`` (400, error 21211),
``"no_answer"`` (read the request and hang up). ``fail_ratio`` answers that share of calls with
429 or 503 at random.
"""

from __future__ import annotations

import argparse
import base64
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qs

from onetomany.testing_http import Answer, LocalHTTPFake, RequestCheck

__all__ = ["FakeTwilio", "RequestCheck"]

_PATH = re.compile(r"/2010-04-01/Accounts/(AC[0-9a-fA-F]{32})/Messages\.json")
_E164 = re.compile(r"(whatsapp:)?\+[1-9]\d{6,14}")
ACCOUNT_SID = "AC" + "0123456789abcdef" * 2


def _error(status: int, code: int, message: str) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


class FakeTwilio(LocalHTTPFake):
    """Twilio's Messages API on ``127.0.0.1``; use as a context manager or start/stop."""

    def __init__(
        self,
        *,
        account_sid: str = ACCOUNT_SID,
        auth_token: str = "auth-token",  # noqa: S107 - the fake's own, for local runs
        port: int = 0,
        seed: int = 0,
        check: RequestCheck | None = None,
    ) -> None:
        super().__init__(port=port, seed=seed)
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.check = check
        #: Numbers that replied STOP (error 21610) and numbers that take no SMS (21614).
        self.stopped: set[str] = set()
        self.landlines: set[str] = set()
        self.accepted: list[dict[str, str]] = []

    def respond(self, method: str, path: str, headers: Mapping[str, str], raw: bytes) -> Answer:
        return self.answer(method, path, headers, raw)

    def answer(self, method: str, path: str, headers: Mapping[str, str], raw: bytes) -> Answer:
        """``(status, JSON body, headers)`` for one call; status 0 means hang up unanswered."""
        found = _PATH.fullmatch(path.split("?", 1)[0])
        if method != "POST" or found is None or found.group(1) != self.account_sid:
            return 404, _error(404, 20404, "The requested resource was not found"), {}
        problem = self.checked(self.check, method, path, headers, raw)
        if problem is not None:
            return 400, _error(400, 21600, f"Refused by the OpenAPI check: {problem}"), {}
        if not self._authorised(headers.get("Authorization", "")):
            return 401, _error(401, 20003, "Authenticate"), {}
        form = {k: v[-1] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()}
        answer = self.next_answer()
        if answer == "no_answer":
            return 0, None, {}
        if answer == "rate_limited":
            return 429, _error(429, 20429, "Too Many Requests"), {"Retry-After": self.retry_after}
        if answer == "transient":
            body = _error(503, 20500, "Service Unavailable")
            return 503, body, {"Retry-After": self.retry_after}
        return self._create(form, refuse=answer == "permanent")

    def _authorised(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except ValueError:
            return False
        return user == self.account_sid and password == self.auth_token

    def _create(self, form: dict[str, str], *, refuse: bool) -> Answer:
        to = form.get("To", "")
        if not to:
            return 400, _error(400, 21604, "A 'To' phone number is required."), {}
        if not form.get("Body"):
            return 400, _error(400, 21602, "Message body is required."), {}
        if not form.get("From") and not form.get("MessagingServiceSid"):
            return 400, _error(400, 21603, "A 'From' phone number is required."), {}
        if refuse or not _E164.fullmatch(to):
            return 400, _error(400, 21211, f"The 'To' number {to} is not a valid phone number."), {}
        if to.removeprefix("whatsapp:") in self.stopped:
            message = "Attempt to send to unsubscribed recipient"
            return 400, _error(400, 21610, message), {}
        if to.removeprefix("whatsapp:") in self.landlines:
            return 400, _error(400, 21614, f"'To' number {to} is not a valid mobile number"), {}
        sid = "SM" + uuid.uuid4().hex
        now = format_datetime(datetime.now(UTC), usegmt=True)
        with self._lock:
            self.accepted.append(dict(form, sid=sid))
        body = form["Body"]
        resource = {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": body,
            "date_created": now,
            "date_updated": now,
            "date_sent": None,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": form.get("From"),
            "messaging_service_sid": form.get("MessagingServiceSid"),
            "num_media": "0",
            "num_segments": str(-(-len(body) // 153) if len(body) > 160 else 1),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued" if form.get("MessagingServiceSid") is None else "accepted",
            "to": to,
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
        }
        return 201, resource, {}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--account-sid", default=ACCOUNT_SID)
    parser.add_argument("--auth-token", default="auth-token")
    arguments = parser.parse_args()
    fake = FakeTwilio(
        account_sid=arguments.account_sid, auth_token=arguments.auth_token, port=arguments.port
    )
    print(fake.url, flush=True)
    fake.serve_forever()


if __name__ == "__main__":
    main()
