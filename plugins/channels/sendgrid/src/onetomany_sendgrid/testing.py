"""A local stand-in for SendGrid's v3 Mail Send API, for tests and demos: never a sender.

:class:`FakeSendGrid` answers ``POST /v3/mail/send`` on loopback as SendGrid documents it:
``Authorization: Bearer <key>`` (401 when missing or wrong), a JSON body (400 when it does not
read), ``personalizations`` with at least one ``to``, a ``from``, a ``subject`` and
``content`` (400 naming the ``field`` otherwise), addresses that look like addresses (400,
``Does not contain a valid address.``), and 202 Accepted with an ``X-Message-Id`` header and no
body. Every failure body is SendGrid's ``{"errors": [{"message", "field", "help"}]}``. It keeps
every message it accepted.

``check`` (optional) sees each request first (method, path, headers, raw body); raising
``ValueError`` answers 400 and records the reason in :attr:`FakeSendGrid.refused`: the
plugin's tests validate every request against SendGrid's OpenAPI document there.

Scripted answers (:meth:`FakeSendGrid.script`): ``"accept"``, ``"transient"`` (503 with
``Retry-After``), ``"rate_limited"`` (429 with SendGrid's ``X-RateLimit-*`` headers),
``"permanent"`` (400, an invalid address), ``"forbidden"`` (403), ``"too_large"`` (413),
``"no_answer"`` (read the request and hang up). ``fail_ratio`` answers that share of calls
with 429 or 503 at random.

Run ``python -m onetomany_sendgrid.testing --port 8026`` to serve one from a shell.
"""

from __future__ import annotations

import argparse
import json
import re
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from onetomany.testing_http import HANG_UP, Answer, LocalHTTPFake, RequestCheck

__all__ = ["FakeSendGrid"]

_ADDRESS = re.compile(r"[^@\s<>]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
# SendGrid's documented 400 messages, word for word.
NO_PERSONALIZATIONS = (
    "The personalizations field is required and must have at least one personalization."
)
NO_TO = (
    "The to array is required for all personalization objects, and must have at least "
    "one email object with a valid email address."
)
INVALID_ADDRESS = "Does not contain a valid address."
NO_FROM = (
    "The from object must be provided for every email send. It is an object that "
    "requires the email parameter, but may also contain a name parameter."
)
NO_SUBJECT = (
    "The subject is required. You can get around this requirement if you use a "
    "template with a subject defined or if every personalization has a subject "
    "defined."
)
NO_CONTENT = (
    "Unless a valid template_id is provided, the content parameter is required. There "
    "must be at least one defined content block. We typically suggest both text/plain "
    "and text/html blocks are included, but only one block is required."
)


def _errors(*errors: tuple[str | None, str]) -> dict[str, Any]:
    return {
        "errors": [{"message": message, "field": field, "help": None} for field, message in errors]
    }


class FakeSendGrid(LocalHTTPFake):
    """SendGrid's Mail Send endpoint on ``127.0.0.1``."""

    def __init__(
        self,
        *,
        api_key: str = "SG.fake-key",
        port: int = 0,
        seed: int = 0,
        check: RequestCheck | None = None,
    ) -> None:
        super().__init__(port=port, seed=seed)
        self.api_key = api_key
        self.check = check
        self.accepted: list[dict[str, Any]] = []
        #: Addresses SendGrid would refuse outright (400).
        self.invalid: set[str] = set()
        #: The fake's clock (seconds since the epoch), for ``X-RateLimit-Reset``.
        self.now: Callable[[], float] = time.time

    def respond(self, method: str, path: str, headers: Mapping[str, str], raw: bytes) -> Answer:
        if method != "POST" or path.split("?", 1)[0] != "/v3/mail/send":
            return 404, _errors((None, "not found")), {}
        problem = self.checked(self.check, method, path, headers, raw)
        if problem is not None:
            return 400, _errors((None, f"Refused by the OpenAPI check: {problem}")), {}
        authorization = headers.get("Authorization", "")
        if authorization != f"Bearer {self.api_key}":
            message = "The provided authorization grant is invalid, expired, or revoked"
            return 401, _errors((None, message)), {}
        try:
            document = json.loads(raw)
        except ValueError:
            return 400, _errors((None, "Bad Request")), {}
        answer = self.next_answer()
        if answer == "no_answer":
            return HANG_UP, None, {}
        if answer == "rate_limited":
            reset = str(int(self.now()) + int(self.retry_after))
            limits = {"X-RateLimit-Limit": "600", "X-RateLimit-Remaining": "0"}
            return 429, _errors((None, "too many requests")), limits | {"X-RateLimit-Reset": reset}
        if answer == "transient":
            return 503, _errors((None, "Service Unavailable")), {"Retry-After": self.retry_after}
        if answer == "forbidden":
            message = (
                "The from address does not match a verified Sender Identity. Mail cannot be "
                "sent until this error is resolved."
            )
            return 403, _errors(("from", message)), {}
        if answer == "too_large":
            return 413, _errors((None, "Payload Too Large")), {}
        problems = _problems(document, self.invalid, refuse=answer == "permanent")
        if problems:
            return 400, _errors(*problems), {}
        message_id = uuid.uuid4().hex[:22]
        with self._lock:
            self.accepted.append(dict(document, message_id=message_id))
        return 202, "", {"X-Message-Id": message_id}


def _problems(document: object, invalid: set[str], *, refuse: bool) -> list[tuple[str | None, str]]:
    """SendGrid's 400 ``errors[]`` for a body, or [] when it would be accepted."""
    if not isinstance(document, dict):
        return [(None, "Bad Request")]
    found: list[tuple[str | None, str]] = []
    personalizations = document.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        found.append(
            (
                "personalizations",
                NO_PERSONALIZATIONS,
            )
        )
    else:
        for index, personalization in enumerate(personalizations):
            to = personalization.get("to") if isinstance(personalization, dict) else None
            if not isinstance(to, list) or not to:
                found.append(
                    (
                        f"personalizations.{index}.to",
                        NO_TO,
                    )
                )
                continue
            for position, recipient in enumerate(to):
                email = str(recipient.get("email", "")) if isinstance(recipient, dict) else ""
                if refuse or not _ADDRESS.fullmatch(email) or email.lower() in invalid:
                    found.append(
                        (
                            f"personalizations.{index}.to.{position}.email",
                            INVALID_ADDRESS,
                        )
                    )
    sender = document.get("from")
    if not isinstance(sender, dict) or not _ADDRESS.fullmatch(str(sender.get("email", ""))):
        found.append(
            (
                "from.email",
                NO_FROM,
            )
        )
    if not document.get("subject") and not document.get("template_id"):
        found.append(
            (
                "subject",
                NO_SUBJECT,
            )
        )
    content = document.get("content")
    if not document.get("template_id") and (not isinstance(content, list) or not content):
        found.append(
            (
                "content",
                NO_CONTENT,
            )
        )
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", default="SG.fake-key")
    arguments = parser.parse_args()
    fake = FakeSendGrid(api_key=arguments.api_key, port=arguments.port)
    print(fake.url, flush=True)
    fake.serve_forever()


if __name__ == "__main__":
    main()
