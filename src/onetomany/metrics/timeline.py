"""A contact's or an account's timeline: everything the program saw and did, in order.

"Which emails did this customer get?" in one call. The timeline displays what was recorded
and works nothing out: the events (product events, stage and tier changes, segment
crossings, opens, clicks, answers), the decisions each tick recorded (queued, skipped and
why, deferred), and every message with its delivery attempts. A message whose queued
decision was pruned (after ``decision_retention``) still shows as queued, from its outbox row.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

from onetomany.errors import InputError
from onetomany.metrics import events as names
from onetomany.model import Event
from onetomany.rules.triggers import (
    DELIVERY_EVENTS,
    SEGMENT_EVENTS,
    STAGE_EVENTS,
    TIER_EVENT,
)
from onetomany.store.queries.timeline import (
    subject_decisions,
    subject_events,
    subject_messages,
)

if TYPE_CHECKING:
    from onetomany.store import Store

#: What a timeline entry is about.
KINDS = ("event", "stage", "tier", "segment", "decision", "message", "delivery", "engagement")
_ENGAGEMENT = {
    names.DELIVERED: "delivered",
    names.OPENED: "opened",
    names.CLICKED: "clicked",
    names.BOUNCED: "bounced",
    names.COMPLAINED: "complained",
    names.UNSUBSCRIBED: "unsubscribed",
    names.NPS_ANSWERED: "answered",
}
# The dispatcher's own events repeat the delivery rows, which say more.
_DELIVERY_EVENT_NAMES = frozenset(DELIVERY_EVENTS.values())
_STAGE_WORDS = {v: k for k, v in STAGE_EVENTS.items()}
_SEGMENT_WORDS = {v: k for k, v in SEGMENT_EVENTS.items()}


@attrs.frozen(kw_only=True)
class Entry:
    """One line of a timeline: when (in the viewer's timezone), what kind, and what."""

    at: datetime
    kind: str
    text: str
    contact_id: str | None = None
    touch: str | None = None
    idempotency_key: str | None = None
    details: Mapping[str, Any] = attrs.field(factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "kind": self.kind,
            "text": self.text,
            "contact_id": self.contact_id,
            "touch": self.touch,
            "idempotency_key": self.idempotency_key,
            "details": dict(self.details),
        }


@attrs.frozen(kw_only=True)
class Timeline:
    """What happened to ``subject`` (a contact or an account), oldest first."""

    subject: str
    #: ``contact`` or ``account``.
    subject_kind: str
    account_id: str | None
    contact_ids: tuple[str, ...]
    timezone: str
    entries: tuple[Entry, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "subject_kind": self.subject_kind,
            "account_id": self.account_id,
            "contact_ids": list(self.contact_ids),
            "timezone": self.timezone,
            "entries": [e.as_dict() for e in self.entries],
        }


def machine_zone(localtime: Path = Path("/etc/localtime")) -> tzinfo:
    """This machine's timezone, with its daylight-saving rules.

    ``datetime.now().astimezone().tzinfo`` is today's fixed offset: in December it would show
    a September send in Los Angeles at 07:00 PST, an hour off the 08:00 PDT its recipient's
    clock read. So the zone is looked up by name: ``TZ``, else the zone file /etc/localtime
    links to; today's offset only when neither names a zone.
    """
    names = [os.environ.get("TZ", "").removeprefix(":")]
    if localtime.is_symlink():
        names.append(str(localtime.readlink()).partition("zoneinfo/")[2])
    for name in filter(None, names):
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            continue
    return datetime.now().astimezone().tzinfo or UTC


def build_timeline(store: Store, subject: str, *, tz: tzinfo) -> Timeline:
    """The timeline of the contact or account ``subject`` in ``store``, its times in ``tz``.

    A contact's timeline holds its own events and messages and its account's events that
    name no contact; an account's holds those of every contact in it. An id that is neither
    is an InputError naming it.
    """
    contact = store.get_contact(subject)
    if contact is not None:
        kind, account_id, contact_ids = "contact", contact.account_id, [contact.id]
    elif store.get_account(subject) is not None:
        kind, account_id = "account", subject
        contact_ids = [c.id for c in store.contacts_of(subject)]
    else:
        problem = f"no contact or account has the id {subject!r} in {store!r}"
        if store.count("contacts") == 0 and store.count("accounts") == 0:
            # The usual cause: reading the program's own store after a simulation, which
            # never writes it (`make demo` keeps examples/onboarding/var/simulation.db).
            problem += (
                ", which holds no contact at all; a simulation's store (simulate --store PATH)"
                " is read with --store PATH"
            )
        raise InputError(problem)

    messages = subject_messages(store, contact_ids, account_id)
    # An open or a click names its message by key; the timeline names it by its touch.
    touches = {row.idempotency_key: row.touch for row, _, _ in messages}
    entries = [
        _event_entry(e, tz, touches)
        for e in subject_events(store, contact_ids, account_id)
        if e.name not in _DELIVERY_EVENT_NAMES
    ]
    queued_keys: set[str] = set()
    for record in subject_decisions(store, contact_ids):
        entry = _decision_entry(record, tz)
        entries.append(entry)
        if record["outcome"] == "queued":
            queued_keys.add(record["idempotency_key"])
    for row, queued_at, attempts in messages:
        if row.idempotency_key not in queued_keys:
            entries.append(
                Entry(
                    at=queued_at.astimezone(tz),
                    kind="message",
                    text=f"queued {row.touch} ({row.channel})",
                    contact_id=row.contact_id,
                    touch=row.touch,
                    idempotency_key=row.idempotency_key,
                )
            )
        for attempt in attempts:
            text = f"{attempt.status} {row.touch} by {row.channel}"
            if attempt.provider and attempt.provider != row.channel:
                text += f" via {attempt.provider}"
            if attempt.error:
                text += f": {attempt.error}"
            entries.append(
                Entry(
                    at=attempt.at.astimezone(tz),
                    kind="delivery",
                    text=text,
                    contact_id=row.contact_id,
                    touch=row.touch,
                    idempotency_key=row.idempotency_key,
                    details={
                        "attempt": attempt.attempt,
                        "status": attempt.status,
                        "provider": attempt.provider,
                    },
                )
            )
    order = {k: i for i, k in enumerate(KINDS)}
    # Stable: same-instant entries keep cause before effect (event, decision, delivery).
    entries.sort(key=lambda e: (e.at, order[e.kind]))
    return Timeline(
        subject=subject,
        subject_kind=kind,
        account_id=account_id,
        contact_ids=tuple(contact_ids),
        timezone=str(tz),
        entries=tuple(entries),
    )


def _event_entry(event: Event, tz: tzinfo, touches: Mapping[str, str]) -> Entry:
    props = event.properties
    key = props.get("idempotency_key")
    touch = props.get("touch") or touches.get(str(key))
    at = event.occurred_at.astimezone(tz)
    common: dict[str, Any] = {"at": at, "contact_id": event.contact_id}
    if event.name in _ENGAGEMENT and key is not None:
        what = _ENGAGEMENT[event.name]
        text = f"{what} {touch or key}"
        if props.get(names.MACHINE_FLAG) is True:
            text += " (machine open)"
        if event.name == names.NPS_ANSWERED and "score" in props:
            text += f": score {props['score']}"
        return Entry(
            kind="engagement",
            text=text,
            touch=touch,
            idempotency_key=str(key),
            details=dict(props),
            **common,
        )
    if event.name == names.NPS_ANSWERED:
        return Entry(
            kind="engagement",
            text=f"answered NPS: score {props.get('score')}",
            details=dict(props),
            **common,
        )
    if event.name in _STAGE_WORDS:
        text = f"stage {props.get('journey')}.{props.get('stage')} {_STAGE_WORDS[event.name]}"
        return Entry(kind="stage", text=text, details=dict(props), **common)
    if event.name == TIER_EVENT:
        before = props.get("from") or "none"
        return Entry(
            kind="tier", text=f"tier {before} -> {props.get('to')}", details=dict(props), **common
        )
    if event.name in _SEGMENT_WORDS:
        text = f"{_SEGMENT_WORDS[event.name]} segment {props.get('segment')}"
        return Entry(kind="segment", text=text, details=dict(props), **common)
    return Entry(kind="event", text=event.name, details=dict(props), **common)


def _decision_entry(record: Mapping[str, Any], tz: tzinfo) -> Entry:
    outcome = record["outcome"]
    text = f"{outcome} {record['touch']} ({record['trigger']} trigger)"
    if outcome == "skipped":
        text += f": {record.get('reason')}"
    elif outcome == "deferred":
        text += f" until {datetime.fromisoformat(record['until']).astimezone(tz):%Y-%m-%d %H:%M}"
    return Entry(
        at=datetime.fromisoformat(record["at"]).astimezone(tz),
        kind="decision",
        text=text,
        contact_id=record["contact_id"],
        touch=record["touch"],
        idempotency_key=record["idempotency_key"],
        details={"checks": record.get("checks", [])},
    )
