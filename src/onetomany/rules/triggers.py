"""Triggers: what makes a touch due, and how ``program.toml`` spells each one.

Two families:

* **Event-driven** triggers fire once per stored event that :meth:`matches`:
  :class:`EventTrigger` (``{ event = "signed_up" }``), :class:`SegmentTrigger` (``{ segment =
  "low_adoption", on = "enter" }``, fed by ``segment_entered``/``segment_left`` events) and
  :class:`StageTrigger` (``{ stage = "onboarding.setup", on = "overdue" }``, fed by the journey
  events ``stage_entered``/``stage_completed``/``stage_overdue``).
* **Time-driven** triggers are evaluated set-based on every tick: :class:`AbsenceTrigger` (no
  login for 30 days), :class:`CadenceTrigger` (an rrule in the contact's timezone from an
  anchor event) and :class:`EngagementTrigger` (a touch sent N days ago and not opened or
  clicked since: the step of an escalation ladder).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from datetime import datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import attrs

from onetomany.model import Event
from onetomany.rules.recurrence import Recurrence, never_fires

EVENT_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
_BY = ("account", "contact")

#: Events the engine itself records and what they carry in ``properties``.
SEGMENT_EVENTS = {"enter": "segment_entered", "leave": "segment_left"}
STAGE_EVENTS = {"enter": "stage_entered", "complete": "stage_completed", "overdue": "stage_overdue"}
#: Engagement events a host (or a provider webhook) tracks, with the touch's idempotency key
#: in ``properties["idempotency_key"]``: :meth:`~onetomany.Engine.track_engagement` does it.
ENGAGEMENT_EVENTS = {"opened": "message_opened", "clicked": "message_clicked"}
#: The event each delivery outcome emits (the store records it with the delivery).
DELIVERY_EVENTS = {"sent": "message_sent", "retrying": "message_failed", "dead": "message_dead"}
#: What :meth:`~onetomany.engine.Engine.update_tiers` records when an account changes tier.
TIER_EVENT = "tier_changed"
#: Every event name the engine, the delivery pipeline and engagement tracking write: the
#: program's own bookkeeping, never the customer's product events (a recap's ``activity``
#: leaves them out). A new event the core writes belongs here.
ENGINE_EVENT_NAMES = frozenset(
    {
        *SEGMENT_EVENTS.values(),
        *STAGE_EVENTS.values(),
        *ENGAGEMENT_EVENTS.values(),
        *DELIVERY_EVENTS.values(),
        TIER_EVENT,
    }
)
OUTCOMES = {"not_opened": ("opened", "clicked"), "not_clicked": ("clicked",)}


class Reporter(Protocol):
    def error(self, key: str, reason: str) -> None: ...


@attrs.frozen(kw_only=True)
class EventTrigger:
    """Fires once for every stored event named ``event`` whose properties include ``where``."""

    event: str
    where: Mapping[str, str] = attrs.field(factory=dict)

    @property
    def event_name(self) -> str:
        return self.event

    def matches(self, event: Event) -> bool:
        return event.name == self.event and all(
            str(event.properties.get(k)) == v for k, v in self.where.items()
        )

    def describe(self) -> str:
        return f"on event {self.event!r}"


@attrs.frozen(kw_only=True)
class SegmentTrigger:
    """Fires when a contact enters (or leaves) the named segment, once per crossing."""

    segment: str
    on: str = attrs.field(default="enter", validator=attrs.validators.in_(tuple(SEGMENT_EVENTS)))

    @property
    def event_name(self) -> str:
        return SEGMENT_EVENTS[self.on]

    def matches(self, event: Event) -> bool:
        return event.name == self.event_name and event.properties.get("segment") == self.segment

    def describe(self) -> str:
        return f"on {'entering' if self.on == 'enter' else 'leaving'} segment {self.segment!r}"


@attrs.frozen(kw_only=True)
class StageTrigger:
    """Fires when an account enters, completes or overruns a journey's stage."""

    journey: str
    stage: str
    on: str = attrs.field(default="enter", validator=attrs.validators.in_(tuple(STAGE_EVENTS)))

    @property
    def event_name(self) -> str:
        return STAGE_EVENTS[self.on]

    def matches(self, event: Event) -> bool:
        return (
            event.name == self.event_name
            and event.properties.get("journey") == self.journey
            and event.properties.get("stage") == self.stage
        )

    def describe(self) -> str:
        verb = {"enter": "entering", "complete": "completing", "overdue": "overrunning"}[self.on]
        return f"on {verb} stage {self.journey}.{self.stage}"


@attrs.frozen(kw_only=True)
class AbsenceTrigger:
    """Fires when the latest ``event`` is at least ``days`` whole days old, once per absence.

    ``by`` says whose events count: the contact's account (``"account"``, the default: nobody
    at the company logged in) or the contact's own. An account or contact that never had the
    event is not absent from it; a segment with ``missing(last("login"))`` finds those. A new
    ``event`` ends the absence, and the next absence fires again.
    """

    event: str = attrs.field(validator=attrs.validators.matches_re(EVENT_NAME))
    days: int = attrs.field(validator=attrs.validators.ge(1))
    by: str = attrs.field(default="account", validator=attrs.validators.in_(_BY))

    def describe(self) -> str:
        return f"no {self.event!r} by the {self.by} for {self.days} days"

    def condition(self) -> str:
        """The segment expression that selects the absent contacts."""
        return f'days_since(last("{self.event}", by="{self.by}")) >= {self.days}'


@attrs.frozen(kw_only=True)
class CadenceTrigger:
    """Fires at every occurrence of ``rrule``, counted from the subject's ``anchor`` event.

    The rule runs in the recipient contact's timezone (``BYHOUR=17`` is 17:00 where they are),
    starting at the first ``anchor`` event of the account (``by = "account"``) or the contact,
    ``after_days`` later (``after_days = 90`` with ``FREQ=DAILY;INTERVAL=90`` is "every 90
    days, the first 90 days after signing up").
    ``FREQ=DAILY;BYHOUR=17;BYMINUTE=0;COUNT=5`` is "every day at 17:00 for the first five
    days"; ``FREQ=MONTHLY;INTERVAL=3`` a quarterly review; ``FREQ=DAILY;INTERVAL=90`` NPS
    every 90 days. Each occurrence is sent once (its instant is the idempotency occurrence).
    """

    rrule: str
    anchor: str = attrs.field(validator=attrs.validators.matches_re(EVENT_NAME))
    by: str = attrs.field(default="account", validator=attrs.validators.in_(_BY))
    after_days: int = attrs.field(default=0, validator=attrs.validators.ge(0))

    def __attrs_post_init__(self) -> None:
        problem = cadence_problem(self.rrule)
        if problem:
            raise ValueError(problem)

    def start(self, anchor_at: datetime, timezone: str) -> datetime:
        """The rule's DTSTART in ``timezone``: the anchor's instant, or with ``after_days``
        the start of the local day that many days later, so that day's ``BYHOUR`` counts.
        """
        local = anchor_at.astimezone(ZoneInfo(timezone))
        if not self.after_days:
            return local
        day = (local + timedelta(days=self.after_days)).date()
        return datetime.combine(day, time(), tzinfo=local.tzinfo)

    @property
    def recurrence(self) -> Recurrence:
        """The parsed rule, to run per recipient (:meth:`Recurrence.occurrences`)."""
        return Recurrence.parse(self.rrule)

    def describe(self) -> str:
        start = f"{self.after_days} days after" if self.after_days else "from"
        return f"every {self.rrule!r} {start} the {self.by}'s first {self.anchor!r}"


@functools.lru_cache(maxsize=256)
def cadence_problem(text: str) -> str | None:
    """Why ``text`` is not a usable cadence (malformed, or never fires), or None.

    "Never fires" covers a rule no date matches (``BYMONTH=2;BYMONTHDAY=30``), one whose
    INTERVAL skips what it allows for some anchors (``FREQ=DAILY;INTERVAL=7;BYDAY=TU``), and
    an UNTIL before 2026 (:data:`onetomany.rules.recurrence.REFERENCE`).
    """
    try:
        recurrence = Recurrence.parse(text)
    except ValueError as exc:
        return f"not a valid RRULE {text!r}: {exc}"
    why = never_fires(recurrence)
    return f"the cadence {text!r} never fires: {why}" if why else None


@attrs.frozen(kw_only=True)
class EngagementTrigger:
    """Fires ``days`` after ``touch`` was sent to a contact who did not engage with it since.

    ``outcome`` is ``"not_opened"`` (no open and no click: a click implies an open) or
    ``"not_clicked"``. Engagement with any earlier step of the same ladder counts too, so a
    contact who opens the original email after the resend left does not get the CSM call.
    One firing per sent message (the sent row's key is the occurrence).
    """

    touch: str
    outcome: str = attrs.field(validator=attrs.validators.in_(tuple(OUTCOMES)))
    days: int = attrs.field(validator=attrs.validators.ge(1))

    @property
    def engagement(self) -> tuple[str, ...]:
        """The engagement event names that count as engaging."""
        return tuple(ENGAGEMENT_EVENTS[o] for o in OUTCOMES[self.outcome])

    def describe(self) -> str:
        what = "opened" if self.outcome == "not_opened" else "clicked"
        return f"{self.days} days after {self.touch!r} was sent, unless {what}"


EventDriven = EventTrigger | SegmentTrigger | StageTrigger
TimeDriven = AbsenceTrigger | CadenceTrigger | EngagementTrigger
Trigger = EventDriven | TimeDriven
EVENT_DRIVEN = (EventTrigger, SegmentTrigger, StageTrigger)


# -- reading from TOML ------------------------------------------------------------------------

_FORMS = (
    '{ event = "signed_up" }',
    '{ segment = "low_adoption", on = "enter" | "leave" }',
    '{ stage = "onboarding.setup", on = "enter" | "complete" | "overdue" }',
    '{ absence = "login", days = 30, by = "account" | "contact" }',
    '{ rrule = "FREQ=MONTHLY;INTERVAL=3", anchor = "signed_up", by = "account" | "contact", '
    "after_days = 0 }",
    '{ not_opened = "welcome", days = 3 } or { not_clicked = "welcome", days = 3 }',
)
_KEYS: dict[str, set[str]] = {
    "event": {"event", "where"},
    "segment": {"segment", "on"},
    "stage": {"stage", "on"},
    "absence": {"absence", "days", "by"},
    "rrule": {"rrule", "anchor", "by", "after_days"},
    "not_opened": {"not_opened", "days"},
    "not_clicked": {"not_clicked", "days"},
}


def read_trigger(body: object, path: str, reader: Reporter) -> Trigger | None:
    """One touch's ``trigger`` table; problems go to ``reader`` keyed by ``path``."""
    if body is None:
        return None  # a manual touch: only a broadcast sends it
    forms = "; ".join(_FORMS)
    if not isinstance(body, dict):
        reader.error(path, f"expected a table, one of: {forms}")
        return None
    kinds = [k for k in _KEYS if k in body]
    if len(kinds) != 1:
        mixed = f"both {' and '.join(kinds)}"
        found = mixed if kinds else f"unknown trigger key(s) {sorted(body)}"
        reader.error(path, f"{found} (a trigger is one of: {forms})")
        return None
    kind = kinds[0]
    unknown = set(body) - _KEYS[kind]
    if unknown:
        known = ", ".join(sorted(_KEYS[kind]))
        reader.error(
            path, f"unknown key(s) {sorted(unknown)} for a {kind} trigger (known: {known})"
        )
        return None
    return _READERS[kind](body, path, reader)


def _name(body: Mapping[str, Any], key: str, path: str, reader: Reporter) -> str | None:
    value = body.get(key)
    if not isinstance(value, str) or not EVENT_NAME.match(value):
        reader.error(f"{path}.{key}", f"expected a name (letters, digits, _.:-), got {value!r}")
        return None
    return value


def _choice(
    body: Mapping[str, Any], key: str, path: str, reader: Reporter, options: tuple[str, ...]
) -> str | None:
    value = body.get(key, options[0])
    if value not in options:
        reader.error(f"{path}.{key}", f"expected one of {', '.join(options)}, got {value!r}")
        return None
    return str(value)


def _days(body: Mapping[str, Any], path: str, reader: Reporter) -> int | None:
    days = body.get("days")
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        reader.error(f"{path}.days", f"expected a whole number of days >= 1, got {days!r}")
        return None
    return days


def _read_event(body: Mapping[str, Any], path: str, reader: Reporter) -> Trigger | None:
    event = _name(body, "event", path, reader)
    where = body.get("where", {})
    if not isinstance(where, dict) or not all(isinstance(v, str) for v in where.values()):
        reader.error(
            f"{path}.where", f'expected a table of strings, e.g. {{ plan = "pro" }}, got {where!r}'
        )
        return None
    return EventTrigger(event=event, where=where) if event else None


def _read_segment(body: Mapping[str, Any], path: str, reader: Reporter) -> Trigger | None:
    segment = _name(body, "segment", path, reader)
    on = _choice(body, "on", path, reader, tuple(SEGMENT_EVENTS))
    return SegmentTrigger(segment=segment, on=on) if segment and on else None


def _read_stage(body: Mapping[str, Any], path: str, reader: Reporter) -> Trigger | None:
    value = body.get("stage")
    on = _choice(body, "on", path, reader, tuple(STAGE_EVENTS))
    if not isinstance(value, str) or value.count(".") != 1 or not all(value.split(".")):
        reader.error(
            f"{path}.stage", f'expected "journey.stage", e.g. "onboarding.setup", got {value!r}'
        )
        return None
    journey, stage = value.split(".")
    return StageTrigger(journey=journey, stage=stage, on=on) if on else None


def _read_absence(body: Mapping[str, Any], path: str, reader: Reporter) -> Trigger | None:
    event = _name(body, "absence", path, reader)
    days = _days(body, path, reader)
    by = _choice(body, "by", path, reader, _BY)
    if event is None or days is None or by is None:
        return None
    return AbsenceTrigger(event=event, days=days, by=by)


def _read_cadence(body: Mapping[str, Any], path: str, reader: Reporter) -> Trigger | None:
    text = body.get("rrule")
    anchor = _name(body, "anchor", path, reader)
    by = _choice(body, "by", path, reader, _BY)
    if not isinstance(text, str):
        reader.error(
            f"{path}.rrule",
            f'expected an RRULE string, e.g. "FREQ=DAILY;INTERVAL=90", got {text!r}',
        )
        return None
    problem = cadence_problem(text)
    if problem:
        reader.error(f"{path}.rrule", problem)
        return None
    after = body.get("after_days", 0)
    if isinstance(after, bool) or not isinstance(after, int) or after < 0:
        reader.error(f"{path}.after_days", f"expected a whole number of days >= 0, got {after!r}")
        return None
    if anchor is None or by is None:
        return None
    return CadenceTrigger(rrule=text, anchor=anchor, by=by, after_days=after)


def _read_engagement(body: Mapping[str, Any], path: str, reader: Reporter) -> Trigger | None:
    outcome = "not_opened" if "not_opened" in body else "not_clicked"
    touch = _name(body, outcome, path, reader)
    days = _days(body, path, reader)
    if touch is None or days is None:
        return None
    return EngagementTrigger(touch=touch, outcome=outcome, days=days)


_READERS = {
    "event": _read_event,
    "segment": _read_segment,
    "stage": _read_stage,
    "absence": _read_absence,
    "rrule": _read_cadence,
    "not_opened": _read_engagement,
    "not_clicked": _read_engagement,
}
