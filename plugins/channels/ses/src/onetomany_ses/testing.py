"""A local fake of Amazon SES v2's ``SendEmail`` (``POST /v2/email/outbound-emails``), for
tests and demos: a threaded HTTP/1.1 server on 127.0.0.1 that speaks SES's REST JSON protocol.

It checks what SES checks before it takes a message: a SigV4 ``Authorization`` header for the
service ``ses`` naming the expected access key id, a JSON body with a destination and exactly
one of ``Simple``, ``Raw`` or ``Template`` content (raw data base64, as the wire carries it), and
tags whose names and values use only the characters SES allows. It answers as scripted, with
SES's documented error bodies: the code in the ``x-amzn-ErrorType`` header, the text in a JSON
``message``. ``"no_answer"`` reads the request and closes the connection without a word;
``"late"`` answers after ``late_seconds`` (past the channel's read timeout).
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PATH = "/v2/email/outbound-emails"
#: What each scripted answer sends: (HTTP status, error code, text).
ERRORS: dict[str, tuple[int, str, str]] = {
    "transient": (429, "TooManyRequestsException", "Too many requests have been submitted."),
    "throttling": (400, "Throttling", "Maximum sending rate exceeded."),
    "permanent": (400, "MessageRejected", "Email address is not verified."),
    "mail_from": (400, "MailFromDomainNotVerifiedException", "MAIL FROM domain not verified."),
    "suspended": (400, "AccountSuspendedException", "The account is suspended."),
    "unavailable": (503, "ServiceUnavailable", "Service unavailable."),
    "bad_request": (400, "BadRequestException", "Invalid request."),
    "credentials": (403, "UnrecognizedClientException", "The security token is invalid."),
}
_TAG = re.compile(r"[A-Za-z0-9_.@-]{1,256}")
_AUTH = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/\d{8}/(?P<region>[a-z0-9-]+)/ses/aws4_request, "
    r"SignedHeaders=[a-z0-9;-]+, Signature=[0-9a-f]{64}"
)


class FakeSes:
    """``with FakeSes(access_key_id=...) as fake: ... fake.url ...``; ``fake.script(...)``
    sets how the next messages are answered (``"accept"``, ``"no_answer"``, ``"late"`` or a key of
    :data:`ERRORS`), ``fake.sent`` holds the accepted requests' JSON bodies."""

    def __init__(self, *, access_key_id: str, late_seconds: float = 1.5) -> None:
        self.access_key_id = access_key_id
        self.late_seconds = late_seconds
        self.sent: list[dict[str, Any]] = []
        #: Requests that reached the fake, answered or not.
        self.arrived = 0
        self._answers: deque[str] = deque()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def script(self, *answers: str) -> None:
        for answer in answers:
            if answer not in ERRORS and answer not in ("accept", "no_answer", "late"):
                raise ValueError(f"no scripted answer {answer!r}")
        with self._lock:
            self._answers.extend(answers)

    def __enter__(self) -> FakeSes:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _next(self) -> str:
        with self._lock:
            self.arrived += 1
            return self._answers.popleft() if self._answers else "accept"

    def check(self, headers: Any, body: bytes) -> str | None:
        """What SES would refuse in this request (its text), or None."""
        found = _AUTH.fullmatch(headers.get("Authorization", ""))
        if found is None or found["key"] != self.access_key_id:
            return "auth"
        try:
            document = json.loads(body)
        except ValueError:
            return "the body is not JSON"
        if not isinstance(document, dict):
            return "the body is not a JSON object"
        to = (document.get("Destination") or {}).get("ToAddresses")
        if not isinstance(to, list) or not to:
            return "Destination.ToAddresses is required"
        content = document.get("Content")
        if not isinstance(content, dict) or len(content) != 1:
            return "Content takes exactly one of Simple, Raw and Template"
        if "Raw" in content:
            try:
                base64.b64decode(content["Raw"]["Data"], validate=True)
            except (KeyError, TypeError, ValueError):
                return "Content.Raw.Data is not base64"
        elif "Simple" in content:
            if not document.get("FromEmailAddress"):
                return "FromEmailAddress is required for simple content"
        elif "Template" not in content:
            return "Content takes exactly one of Simple, Raw and Template"
        for tag in document.get("EmailTags") or []:
            if not (_TAG.fullmatch(str(tag.get("Name"))) and _TAG.fullmatch(str(tag.get("Value")))):
                return f"Invalid tag {tag!r}"
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _error(self, status: int, code: str, text: str) -> None:
                body = json.dumps({"message": text}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header(
                    "x-amzn-ErrorType", f"{code}:http://internal.amazon.com/coral/com.amazon.ses/"
                )
                self.send_header("x-amzn-RequestId", "00000000-0000-0000-0000-000000000000")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if self.path != PATH:
                    self._error(404, "NotFoundException", f"no route {self.path}")
                    return
                answer = fake._next()
                problem = fake.check(self.headers, body)
                if problem == "auth":
                    self._error(
                        403, "UnrecognizedClientException", "The security token is invalid."
                    )
                    return
                if problem is not None:
                    self._error(400, "BadRequestException", problem)
                    return
                if answer == "no_answer":
                    self.close_connection = True
                    self.connection.close()
                    return
                if answer == "late":
                    time.sleep(fake.late_seconds)
                if answer in ERRORS:
                    self._error(*ERRORS[answer])
                    return
                with fake._lock:
                    fake.sent.append(json.loads(body))
                    message_id = f"0100018c-fake-{next(fake._ids):08d}-000000"
                reply = json.dumps({"MessageId": message_id}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        return Handler
