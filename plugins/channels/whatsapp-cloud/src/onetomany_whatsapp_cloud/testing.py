"""A local stand-in for Meta's WhatsApp Cloud API, for tests and demos: never a sender.

:class:`FakeWhatsAppCloud` is an HTTP/1.1 server on loopback (standard library, keep-alive)
answering ``POST /{version}/{phone_number_id}/messages`` as Meta documents it: a Bearer token
(401, error 190, when wrong), ``messaging_product: whatsapp``, ``to`` and a ``text`` or
``template`` message (400, error 100, otherwise), templates it knows with their parameter
count (:attr:`FakeWhatsAppCloud.templates`; 132001 for an unknown template, 132000 for a
wrong count), session text only to recipients inside the 24-hour window
(:attr:`FakeWhatsAppCloud.window_open`; 131047 otherwise), and the success answer
``{"messaging_product", "contacts": [{"input", "wa_id"}], "messages": [{"id": "wamid..."}]}``.

Scripted answers (:meth:`FakeWhatsAppCloud.script`): ``"accept"``, ``"transient"`` (400,
error 130429, the throughput limit), ``"pair_limit"`` (400, error 131056), ``"permanent"``
(400, error 131026, undeliverable), ``"no_answer"`` (read the request and hang up).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from typing import Any

from onetomany.testing_http import Answer, LocalHTTPFake

__all__ = ["FakeWhatsAppCloud"]

PHONE_NUMBER_ID = "106540352242922"
_PATH = re.compile(r"/v\d+\.\d+/(\d+)/messages")


def _error(code: int, message: str, details: str, kind: str = "OAuthException") -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": kind,
            "code": code,
            "error_data": {"messaging_product": "whatsapp", "details": details},
            "fbtrace_id": "A" + uuid.uuid4().hex[:22],
        }
    }


class FakeWhatsAppCloud(LocalHTTPFake):
    """The Cloud API's messages endpoint on ``127.0.0.1``."""

    def __init__(
        self,
        *,
        token: str = "EAAG-fake",  # noqa: S107 - the fake's own, for local runs
        phone_number_id: str = PHONE_NUMBER_ID,
        port: int = 0,
    ) -> None:
        super().__init__(port=port)
        self.token = token
        self.phone_number_id = phone_number_id
        #: Approved templates: name -> how many body parameters it takes.
        self.templates: dict[str, int] = {}
        #: Recipients (wa_id digits) inside the 24-hour window; None: every recipient.
        self.window_open: set[str] | None = None
        self.accepted: list[dict[str, Any]] = []

    def respond(self, method: str, path: str, headers: Mapping[str, str], raw: bytes) -> Answer:
        status, body = self.answer(path, headers.get("Authorization", ""), raw)
        return status, body, {}

    def answer(self, path: str, authorization: str, raw: bytes) -> tuple[int, object]:
        found = _PATH.fullmatch(path)
        if found is None or found.group(1) != self.phone_number_id:
            return 400, _error(
                100, "Unsupported post request.", "Object does not exist", "GraphMethodException"
            )
        if authorization != f"Bearer {self.token}":
            return 401, _error(
                190,
                "Invalid OAuth access token - Cannot parse access token",
                "The access token could not be decrypted",
            )
        try:
            document = json.loads(raw)
        except ValueError:
            return 400, _error(100, "Invalid parameter", "the body is not JSON")
        scripted = self.next_answer()
        if scripted == "no_answer":
            return 0, None
        if scripted == "transient":
            return 400, _error(
                130429, "Rate limit hit", "Cloud API message throughput has been reached."
            )
        if scripted == "pair_limit":
            return 400, _error(
                131056,
                "(Business Account, Consumer Account) pair rate limit hit",
                "Too many messages sent to this phone number in a short time.",
            )
        if scripted == "permanent":
            return 400, _error(131026, "Message undeliverable", "Unable to deliver message.")
        problem = self._problem(document)
        if problem is not None:
            return 400, problem
        to = str(document["to"]).lstrip("+")
        wamid = "wamid." + uuid.uuid4().hex.upper()
        with self._lock:
            self.accepted.append(dict(document, id=wamid))
        return 200, {
            "messaging_product": "whatsapp",
            "contacts": [{"input": document["to"], "wa_id": to}],
            "messages": [{"id": wamid}],
        }

    def _problem(self, document: object) -> dict[str, Any] | None:
        if not isinstance(document, dict) or document.get("messaging_product") != "whatsapp":
            return _error(100, "Invalid parameter", "messaging_product must be whatsapp")
        to = str(document.get("to") or "")
        if not to.lstrip("+").isdigit():
            return _error(100, "Invalid parameter", "Parameter 'to' is not a phone number")
        kind = document.get("type")
        if kind == "text":
            body = (document.get("text") or {}).get("body")
            if not body:
                return _error(100, "Invalid parameter", "text.body is required")
            if self.window_open is not None and to.lstrip("+") not in self.window_open:
                return _error(
                    131047,
                    "Re-engagement message",
                    "Message failed to send because more than 24 hours have passed "
                    "since the customer last replied to this number.",
                )
            return None
        if kind == "template":
            template = document.get("template") or {}
            name = template.get("name")
            if name not in self.templates:
                return _error(
                    132001,
                    "Template name does not exist in the translation",
                    f"template name ({name}) does not exist",
                )
            given = sum(
                len(component.get("parameters") or [])
                for component in template.get("components") or []
                if component.get("type") == "body"
            )
            if given != self.templates[name]:
                return _error(
                    132000,
                    "Number of parameters does not match the expected number of params",
                    f"body: expected {self.templates[name]}, got {given}",
                )
            return None
        return _error(100, "Invalid parameter", f"unsupported message type {kind!r}")
