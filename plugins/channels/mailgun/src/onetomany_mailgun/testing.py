"""A local stand-in for Mailgun's messages API, for tests and demos: never a sender.

:class:`FakeMailgun` answers ``POST /v3/{domain}/messages`` on loopback as Mailgun documents
it: HTTP Basic auth ``api:<key>`` (401 with a bare ``Forbidden`` when missing or wrong), a
domain it knows (404, ``Domain not found: ...``), a form body (urlencoded) with ``from``,
``to``, ``subject`` and ``text`` or ``html`` (400 with Mailgun's ``message`` naming what is
missing or invalid), and the 200 answer ``{"id": "<...@domain>", "message": "Queued. Thank
you."}``. It keeps every message it accepted, as its list of form fields in a dict (repeated
fields, such as ``o:tag``, as lists).

Scripted answers (:meth:`FakeMailgun.script`): ``"accept"``, ``"transient"`` (503 with
``Retry-After``), ``"rate_limited"`` (429 with ``Retry-After``), ``"permanent"`` (400, an
invalid address), ``"too_large"`` (413), ``"no_answer"`` (read the request and hang up).
``fail_ratio`` answers that share of calls with 429 or 503 at random.

Run ``python -m onetomany_mailgun.testing --port 8027`` to serve one from a shell.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import re
import time
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from onetomany.testing_http import HANG_UP, Answer, LocalHTTPFake

__all__ = ["FakeMailgun"]

_PATH = re.compile(r"/v3/([^/]+)/messages")
_ADDRESS = re.compile(r"[^@\s<>,]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
INVALID_TO = "to parameter is not a valid address. please check documentation"


class FakeMailgun(LocalHTTPFake):
    """Mailgun's messages endpoint on ``127.0.0.1``."""

    def __init__(
        self,
        *,
        api_key: str = "key-fake",
        domain: str = "mg.example.com",
        port: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__(port=port, seed=seed)
        self.api_key = api_key
        self.domain = domain
        self.accepted: list[dict[str, Any]] = []
        #: Addresses Mailgun refuses outright (400).
        self.invalid: set[str] = set()

    def respond(self, method: str, path: str, headers: Mapping[str, str], raw: bytes) -> Answer:
        found = _PATH.fullmatch(path.split("?", 1)[0])
        if method != "POST" or found is None:
            return 404, {"message": "Not Found"}, {}
        if not self._authorised(headers.get("Authorization", "")):
            return 401, "Forbidden", {}
        if found.group(1) != self.domain:
            return 404, {"message": f"Domain not found: {found.group(1)}"}, {}
        kind = headers.get("Content-Type", "")
        if not kind.startswith("application/x-www-form-urlencoded"):
            return 400, {"message": "expected a form body"}, {}
        fields = parse_qsl(raw.decode(), keep_blank_values=True)
        answer = self.next_answer()
        if answer == "no_answer":
            return HANG_UP, None, {}
        if answer == "rate_limited":
            return 429, {"message": "Too many requests"}, {"Retry-After": self.retry_after}
        if answer == "transient":
            return 503, {"message": "Service Unavailable"}, {"Retry-After": self.retry_after}
        if answer == "too_large":
            return 413, {"message": "Request Entity Too Large"}, {}
        form: dict[str, Any] = {}
        for name, value in fields:
            if name in form:
                form[name] = (
                    [*form[name], value]
                    if isinstance(form[name], list)
                    else [
                        form[name],
                        value,
                    ]
                )
            else:
                form[name] = value
        problem = self._problem(form, refuse=answer == "permanent")
        if problem is not None:
            return 400, {"message": problem}, {}
        message_id = f"<{time.strftime('%Y%m%d%H%M%S')}.{uuid.uuid4().hex[:12]}@{self.domain}>"
        with self._lock:
            self.accepted.append(dict(form, id=message_id))
        return 200, {"id": message_id, "message": "Queued. Thank you."}, {}

    def _authorised(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return user == "api" and password == self.api_key

    def _problem(self, form: Mapping[str, Any], *, refuse: bool) -> str | None:
        for field in ("from", "to"):
            if not form.get(field):
                return f"{field} parameter is missing"
        to = str(form["to"])
        address = _ADDRESS.search(to)
        if refuse or address is None or address.group(0).lower() in self.invalid:
            return INVALID_TO
        if _ADDRESS.search(str(form["from"])) is None:
            return "from parameter is not a valid address. please check documentation"
        if not form.get("subject"):
            return "subject parameter is missing"
        if not form.get("text") and not form.get("html") and not form.get("template"):
            return "Need at least one of 'text' or 'html' parameters specified"
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", default="key-fake")
    parser.add_argument("--domain", default="mg.example.com")
    arguments = parser.parse_args()
    fake = FakeMailgun(api_key=arguments.api_key, domain=arguments.domain, port=arguments.port)
    print(fake.url, flush=True)
    fake.serve_forever()


if __name__ == "__main__":
    main()
