"""Segment-compatible ingestion: the ``identify``, ``track``, ``group``, ``page`` and ``batch``
calls of Segment's HTTP Tracking API, so a host that already sends Segment or RudderStack
events can point them at its mounted app unchanged.

==========================  ==============================================================
``POST /v1/identify``       ``userId`` + ``traits`` -> :meth:`Engine.identify` (a contact)
``POST /v1/track``          ``userId`` + ``event`` + ``properties`` -> :meth:`Engine.track`
``POST /v1/group``          ``groupId`` + ``traits`` -> an account; ``userId`` joins it
``POST /v1/page``           -> a ``page_viewed`` event (``name``, ``category``, properties)
``POST /v1/batch``          ``{"batch": [call, ...]}`` (also ``/v1/import``)
==========================  ==============================================================

Authentication is Segment's: HTTP basic auth with the write key as the user name and an
empty password (or ``writeKey`` in the body). The keys are the ones the host passes to
:func:`onetomany.web.create_app` (``segment_write_keys``); an app without keys serves no
``/v1`` calls.

What is kept from Segment's semantics (docs/segment.md):

* **messageId**: a ``track`` or ``page`` whose ``messageId`` was already recorded is not
  recorded again (the event's id is derived from it). ``identify`` and ``group`` merge traits,
  so applying one twice leaves the same profile.
* **Clock skew**: a call's time is ``receivedAt - (sentAt - timestamp)``, as Segment
  corrects a device clock; without ``sentAt``, ``timestamp`` as given; without either, the
  time the call arrived.
* **Limits**: a batch of at most 500 KB, each call at most 32 KB. A call that breaks a rule is
  answered 400 naming its index in the batch and the reason; the batch's other calls are
  stored (a sender retrying the whole batch records nothing twice, by messageId).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from onetomany.engine import Engine
from onetomany.errors import InputError
from onetomany.model import Account, Contact, Event
from onetomany.web.context import HTTPProblem, WebContext, answering, ok

#: Segment's documented limits: a batch request, and each call in it (or sent alone).
MAX_BATCH_BYTES = 500 * 1024
MAX_CALL_BYTES = 32 * 1024
#: Segment's reserved traits that onetomany keeps in a contact's own fields.
_CONTACT_FIELDS = ("email", "phone", "name", "firstName", "lastName")
CALL_TYPES = ("identify", "track", "group", "page")


class CallRefused(InputError):
    """One call of a request cannot be stored; the message says why."""


@attrs.frozen(kw_only=True)
class Parsed:
    """What one call becomes: profiles to save and an event to record."""

    profiles: tuple[Account | Contact, ...] = ()
    event: Event | None = None


def _text(call: Mapping[str, Any], field: str, *, required: bool = False) -> str | None:
    value = call.get(field)
    if value is None or value == "":
        if required:
            raise CallRefused(f'"{field}" is required')
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise CallRefused(f'"{field}" must be text, not {type(value).__name__}')
    return str(value)


def _object(call: Mapping[str, Any], field: str) -> dict[str, Any]:
    value = call.get(field)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CallRefused(f'"{field}" must be an object, not {type(value).__name__}')
    return value


def _time(call: Mapping[str, Any], field: str) -> datetime | None:
    text = call.get(field)
    if text is None:
        return None
    if not isinstance(text, str):
        raise CallRefused(f'"{field}" must be an ISO 8601 time')
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise CallRefused(f'"{field}" {text[:40]!r} is not an ISO 8601 time') from exc
    if value.utcoffset() is None:
        raise CallRefused(f'"{field}" {text[:40]!r} has no timezone offset')
    return value


def occurred_at(
    call: Mapping[str, Any], *, received_at: datetime, batch_sent_at: datetime | None = None
) -> datetime:
    """The call's time corrected for the sender's clock, as Segment documents:
    ``receivedAt - (sentAt - timestamp)``; ``timestamp`` alone without ``sentAt``; the time
    the call arrived without either."""
    original = _time(call, "originalTimestamp") or _time(call, "timestamp")
    if original is None:
        return received_at
    sent_at = _time(call, "sentAt") or batch_sent_at
    if sent_at is None:
        return original
    return received_at - (sent_at - original)


def event_id(message_id: str | None) -> str | None:
    """The event id a messageId maps to (a store id has at most 64 characters)."""
    if message_id is None:
        return None
    return "seg-" + hashlib.sha256(message_id.encode()).hexdigest()[:40]


def _contact(user_id: str, traits: Mapping[str, Any], context: Mapping[str, Any]) -> Contact:
    fields: dict[str, Any] = {"id": user_id}
    for field in ("email", "phone"):
        if traits.get(field):
            fields[field] = str(traits[field])
    full = " ".join(str(traits[k]) for k in ("firstName", "lastName") if traits.get(k))
    if traits.get("name") or full:
        fields["name"] = str(traits.get("name") or full)
    if isinstance(context.get("locale"), str) and context["locale"]:
        # Segment sends "en-US"; the program's languages are the part before the region.
        fields["locale"] = context["locale"].replace("_", "-").split("-")[0].lower()
    if isinstance(context.get("timezone"), str) and context["timezone"]:
        fields["timezone"] = context["timezone"]
    rest = {k: v for k, v in traits.items() if k not in _CONTACT_FIELDS}
    if rest:
        fields["traits"] = rest
    return Contact(**fields)


def parse_call(
    call: Any,
    *,
    received_at: datetime,
    kind: str | None = None,
    batch_sent_at: datetime | None = None,
) -> Parsed:
    """One Segment call as profiles and an event; :class:`CallRefused` or an
    :class:`InputError` (a contact's email that does not parse, ...) when it cannot be."""
    if not isinstance(call, dict):
        raise CallRefused(f"a call must be a JSON object, not {type(call).__name__}")
    kind = kind or _text(call, "type", required=True)
    if kind not in CALL_TYPES:
        raise CallRefused(f'"type" {str(kind)[:40]!r} is not one of {", ".join(CALL_TYPES)}')
    context = _object(call, "context")
    user_id = _text(call, "userId")
    if user_id is None and kind != "group":
        # An anonymous visitor is no contact yet: onetomany reaches people it can name.
        raise CallRefused(
            f'"userId" is required for {kind} (calls with only an anonymousId are not stored)'
        )
    at = occurred_at(call, received_at=received_at, batch_sent_at=batch_sent_at)
    group_id = _text(context, "groupId")
    if kind == "identify":
        return Parsed(profiles=(_contact(str(user_id), _object(call, "traits"), context),))
    if kind == "group":
        group = str(_text(call, "groupId", required=True))
        traits = _object(call, "traits")
        fields: dict[str, Any] = {"id": group}
        if traits.get("name"):
            fields["name"] = str(traits["name"])
        if rest := {k: v for k, v in traits.items() if k != "name"}:
            fields["traits"] = rest
        account = Account(**fields)
        members = (Contact(id=user_id, account_id=group),) if user_id else ()
        return Parsed(profiles=(account, *members))
    properties = _object(call, "properties")
    if kind == "page":
        name, properties = (
            "page_viewed",
            {
                **properties,
                **{k: call[k] for k in ("name", "category") if isinstance(call.get(k), str)},
            },
        )
    else:
        name = str(_text(call, "event", required=True))
    event: dict[str, Any] = {
        "name": name,
        "occurred_at": at,
        "contact_id": user_id,
        "account_id": group_id,
        "properties": properties,
    }
    if (message := event_id(_text(call, "messageId"))) is not None:
        event["id"] = message
    return Parsed(event=Event(**event))


@attrs.frozen
class Stored:
    """What a request stored: ``events`` new, ``duplicates`` already recorded, ``profiles``."""

    events: int = 0
    duplicates: int = 0
    profiles: int = 0


def store(engine: Engine, parsed: Sequence[Parsed]) -> Stored:
    """Save the calls' profiles, then record their events (a track may name the account a
    group call in the same batch creates)."""
    profiles = [p for call in parsed for p in call.profiles]
    if profiles:
        engine.identify(*profiles)
    events = [call.event for call in parsed if call.event is not None]
    new = engine.store.add_events(events, now=engine.clock.now()) if events else 0
    return Stored(events=new, duplicates=len(events) - new, profiles=len(profiles))


def _size(call: Any) -> int:
    return len(json.dumps(call, separators=(",", ":"), ensure_ascii=False).encode())


def check_time(engine: Engine, parsed: Parsed) -> Parsed:
    """Refuse an event dated further ahead than the engine accepts (after skew correction)."""
    event = parsed.event
    if event is not None and event.occurred_at > engine.clock.now() + engine.future_tolerance:
        raise CallRefused(
            f"its time {event.occurred_at.isoformat()} is ahead of the server's clock by more "
            f"than {engine.future_tolerance}, even after correcting by sentAt"
        )
    return parsed


def basic_user(request: Request) -> str | None:
    """The user name of the request's HTTP basic auth (Segment's write key), if it has one."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic" or not credentials.strip():
        return None
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise HTTPProblem(401, "the basic auth credentials are not base64 of user:pass") from exc
    return decoded.partition(":")[0]


def routes(context: WebContext) -> list[BaseRoute]:
    """The ``/v1`` routes, answering 404 when the host gave no write key."""
    engine = context.engine
    keys = [k.encode() for k in context.segment_write_keys]

    async def read(request: Request, limit: int) -> dict[str, Any]:
        if not keys:
            raise HTTPProblem(404, "Segment-compatible ingestion is off: no write key is set")
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind not in ("application/json", "text/plain", ""):
            raise HTTPProblem(415, f"the body must be application/json, not {kind[:60]!r}")
        # A key in the header is checked before the body is read: a stranger cannot make the
        # app parse 500 KB. Senders that put writeKey in the body are checked after it.
        given = basic_user(request)
        if given is not None:
            authenticate(given)
        raw = await context.body(request, limit=limit)
        try:
            body = json.loads(raw) if raw else {}
        except (ValueError, RecursionError) as exc:
            raise HTTPProblem(400, f"the body is not valid JSON: {exc}"[:200]) from exc
        if not isinstance(body, dict):
            raise HTTPProblem(400, f"the body must be a JSON object, not {type(body).__name__}")
        if given is None:
            in_body = body.get("writeKey")
            authenticate(in_body if isinstance(in_body, str) else "")
        return body

    def authenticate(given: str) -> None:
        if not any(hmac.compare_digest(given.encode(), k) for k in keys):
            raise HTTPProblem(
                401,
                "a valid write key is required (HTTP basic auth, the key as the user name)",
                {"WWW-Authenticate": 'Basic realm="onetomany"'},
            )

    def single(kind: str) -> Any:
        async def endpoint(request: Request) -> JSONResponse:
            body = await read(request, MAX_CALL_BYTES)
            now = engine.clock.now()
            try:
                parsed = check_time(engine, parse_call(body, received_at=now, kind=kind))
            except InputError as exc:
                raise HTTPProblem(400, f"{kind}: {exc}") from exc
            stored = await run_in_threadpool(store, engine, [parsed])
            return _answer(stored)

        endpoint.__name__ = kind
        return endpoint

    async def batch(request: Request) -> JSONResponse:
        body = await read(request, MAX_BATCH_BYTES)
        calls = body.get("batch")
        if not isinstance(calls, list):
            raise HTTPProblem(400, '"batch" is required: a list of identify/track/group/page calls')
        now = engine.clock.now()
        try:
            sent_at = _time(body, "sentAt")
        except CallRefused as exc:
            raise HTTPProblem(400, f"batch: {exc}") from exc
        shared = _object(body, "context") if isinstance(body.get("context"), dict) else {}
        parsed: list[Parsed] = []
        errors: list[dict[str, Any]] = []
        for index, call in enumerate(calls):
            try:
                if _size(call) > MAX_CALL_BYTES:
                    raise CallRefused(
                        f"it has {_size(call)} bytes; a call may have {MAX_CALL_BYTES}"
                    )
                if shared and isinstance(call, dict):
                    call = {**call, "context": {**shared, **_object(call, "context")}}
                parsed.append(
                    check_time(engine, parse_call(call, received_at=now, batch_sent_at=sent_at))
                )
            except InputError as exc:
                errors.append({"index": index, "error": str(exc)[:300]})
        stored = await run_in_threadpool(store, engine, parsed)
        if errors:
            first = errors[0]
            raise HTTPProblem(
                400,
                f"batch[{first['index']}]: {first['error']} ({len(errors)} call(s) refused, "
                f"{len(parsed)} stored)",
                payload={"errors": errors, "accepted": len(parsed)},
            )
        return _answer(stored)

    return [
        *(Route(f"/v1/{kind}", answering(single(kind)), methods=["POST"]) for kind in CALL_TYPES),
        Route("/v1/batch", answering(batch), methods=["POST"]),
        Route("/v1/import", answering(batch), methods=["POST"]),
    ]


def _answer(stored: Stored) -> JSONResponse:
    return ok(
        {
            "success": True,
            "events": stored.events,
            "duplicates": stored.duplicates,
            "profiles": stored.profiles,
        }
    )
