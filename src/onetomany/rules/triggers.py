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
from collections.abc import Collection, Mapping
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Protocol
from zoneinfo import ZoneInfo

import attrs

from onetomany.model import Event
from onetomany.rules.event_conditions import Condition, parse_condition
from onetomany.rules.recurrence import Recurrence, never_fires

if TYPE_CHECKING:
    from onetomany.rules.journeys import Journey

EVENT_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
_BY = ("account", "contact")

#: Events the engine itself records and what they carry in ``properties``.
SEGMENT_EVENTS = {"enter": "segment_entered", "leave": "segment_left"}
STAGE_EVENTS = {"enter": "stage_entered", "complete": "stage_completed", "overdue": "stage_overdue"}
#: Engagement events a host (or a provider webhook) tracks, with the touch's idempotency key
#: in ``properties["idempotency_key"]``: :meth:`~onetomany.Engine.track_engagement` does it.
ENGAGEMENT_EVENTS = {"opened": "message_opened", "clicked": "message_clicked"}
#: The event each delivery outcome emits (the store records it with the delivery).
DELIVERY_EVENTS = {
    "sent": "message_sent",
    "retrying": "message_failed",
    "dead": "message_dead",
    "unknown": "message_unknown",
}
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
class Names:
    """What a program defines that a trigger may name (checked by :meth:`unreachable`)."""

    segments: Collection[str] = ()
    journeys: Mapping[str, Journey] = attrs.field(factory=dict)
    touches: Collection[str] = ()


def _unknown(what: str, name: str, known: Collection[str]) -> str:
    return f"unknown {what} {name!r} ({', '.join(sorted(known)) or 'none'})"


@attrs.frozen(kw_only=True)
class EventTrigger:
    """Fires once for every stored event named ``event`` whose properties include ``where``
    (a table of equal strings) or meet it (a condition such as ``"score <= 6"``,
    :mod:`onetomany.rules.event_conditions`)."""

    kind: ClassVar[str] = "event"
    #: Each key that selects this form in ``program.toml``, with the keys the form allows.
    forms: ClassVar[Mapping[str, frozenset[str]]] = {"event": frozenset({"event", "where"})}
    example: ClassVar[str] = '{ event = "signed_up" }'

    event: str
    where: Mapping[str, str] = attrs.field(factory=dict)
    condition: Condition | None = None

    @classmethod
    def read(cls, body: Mapping[str, Any], path: str, reader: Reporter) -> EventTrigger | None:
        event = _name(body, "event", path, reader)
        where = body.get("where", {})
        condition = None
        if isinstance(where, str):
            try:
                condition = parse_condition(where)
            except ValueError as exc:
                reader.error(f"{path}.where", str(exc))
                return None
            where = {}
        if not isinstance(where, dict) or not all(isinstance(v, str) for v in where.values()):
            reader.error(
                f"{path}.where",
                f'expected a table of strings, e.g. {{ plan = "pro" }}, or a condition such '
                f'as "score <= 6", got {where!r}',
            )
            return None
        return cls(event=event, where=where, condition=condition) if event else None

    def unreachable(self, names: Names, touch: str) -> str | None:
        """Why no occurrence of this trigger can happen in the program, or None."""
        return None

    @property
    def event_name(self) -> str:
        return self.event

    def matches(self, event: Event) -> bool:
        return (
            event.name == self.event
            and all(str(event.properties.get(k)) == v for k, v in self.where.items())
            and (self.condition is None or self.condition.holds(event.properties))
        )

    def describe(self) -> str:
        if self.condition is not None:
            return f"on event {self.event!r} where {self.condition.describe()}"
        return f"on event {self.event!r}"


@attrs.frozen(kw_only=True)
class SegmentTrigger:
    """Fires when a contact enters (or leaves) the named segment, once per crossing."""

    kind: ClassVar[str] = "segment"
    forms: ClassVar[Mapping[str, frozenset[str]]] = {"segment": frozenset({"segment", "on"})}
    example: ClassVar[str] = '{ segment = "low_adoption", on = "enter" | "leave" }'

    segment: str
    on: str = attrs.field(default="enter", validator=attrs.validators.in_(tuple(SEGMENT_EVENTS)))

    @classmethod
    def read(cls, body: Mapping[str, Any], path: str, reader: Reporter) -> SegmentTrigger | None:
        segment = _name(body, "segment", path, reader)
        on = _choice(body, "on", path, reader, tuple(SEGMENT_EVENTS))
        return cls(segment=segment, on=on) if segment and on else None

    def unreachable(self, names: Names, touch: str) -> str | None:
        if self.segment not in names.segments:
            return _unknown("segment", self.segment, names.segments)
        return None

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

    kind: ClassVar[str] = "stage"
    forms: ClassVar[Mapping[str, frozenset[str]]] = {"stage": frozenset({"stage", "on"})}
    example: ClassVar[str] = '{ stage = "onboarding.setup", on = "enter" | "complete" | "overdue" }'

    journey: str
    stage: str
    on: str = attrs.field(default="enter", validator=attrs.validators.in_(tuple(STAGE_EVENTS)))

    @classmethod
    def read(cls, body: Mapping[str, Any], path: str, reader: Reporter) -> StageTrigger | None:
        value = body.get("stage")
        on = _choice(body, "on", path, reader, tuple(STAGE_EVENTS))
        if not isinstance(value, str) or value.count(".") != 1 or not all(value.split(".")):
            reader.error(
                f"{path}.stage",
                f'expected "journey.stage", e.g. "onboarding.setup", got {value!r}',
            )
            return None
        journey, stage = value.split(".")
        return cls(journey=journey, stage=stage, on=on) if on else None

    def unreachable(self, names: Names, touch: str) -> str | None:
        journey = names.journeys.get(self.journey)
        if journey is None:
            return _unknown("journey", self.journey, names.journeys)
        if self.stage not in [s.name for s in journey.stages]:
            known = ", ".join(s.name for s in journey.stages)
            return f"journey {journey.name!r} has no stage {self.stage!r} ({known})"
        if self.on == "overdue" and journey.stage(self.stage).ideal_days is None:
            return f"stage {journey.name}.{self.stage} has no ideal_days, so it is never overdue"
        return None

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

    kind: ClassVar[str] = "absence"
    forms: ClassVar[Mapping[str, frozenset[str]]] = {
        "absence": frozenset({"absence", "days", "by"})
    }
    example: ClassVar[str] = '{ absence = "login", days = 30, by = "account" | "contact" }'

    event: str = attrs.field(validator=attrs.validators.matches_re(EVENT_NAME))
    days: int = attrs.field(validator=attrs.validators.ge(1))
    by: str = attrs.field(default="account", validator=attrs.validators.in_(_BY))

    @classmethod
    def read(cls, body: Mapping[str, Any], path: str, reader: Reporter) -> AbsenceTrigger | None:
        event = _name(body, "absence", path, reader)
        days = _days(body, path, reader)
        by = _choice(body, "by", path, reader, _BY)
        if event is None or days is None or by is None:
            return None
        return cls(event=event, days=days, by=by)

    def unreachable(self, names: Names, touch: str) -> str | None:
        return None

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

    kind: ClassVar[str] = "cadence"
    forms: ClassVar[Mapping[str, frozenset[str]]] = {
        "rrule": frozenset({"rrule", "anchor", "by", "after_days"})
    }
    example: ClassVar[str] = (
        '{ rrule = "FREQ=MONTHLY;INTERVAL=3", anchor = "signed_up", by = "account" | "contact", '
        "after_days = 0 }"
    )

    rrule: str
    anchor: str = attrs.field(validator=attrs.validators.matches_re(EVENT_NAME))
    by: str = attrs.field(default="account", validator=attrs.validators.in_(_BY))
    after_days: int = attrs.field(default=0, validator=attrs.validators.ge(0))

    def __attrs_post_init__(self) -> None:
        problem = cadence_problem(self.rrule)
        if problem:
            raise ValueError(problem)

    @classmethod
    def read(cls, body: Mapping[str, Any], path: str, reader: Reporter) -> CadenceTrigger | None:
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
            reader.error(
                f"{path}.after_days", f"expected a whole number of days >= 0, got {after!r}"
            )
            return None
        if anchor is None or by is None:
            return None
        return cls(rrule=text, anchor=anchor, by=by, after_days=after)

    def unreachable(self, names: Names, touch: str) -> str | None:
        return None

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

    kind: ClassVar[str] = "engagement"
    forms: ClassVar[Mapping[str, frozenset[str]]] = {
        outcome: frozenset({outcome, "days"}) for outcome in OUTCOMES
    }
    example: ClassVar[str] = (
        '{ not_opened = "welcome", days = 3 } or { not_clicked = "welcome", days = 3 }'
    )

    touch: str
    outcome: str = attrs.field(validator=attrs.validators.in_(tuple(OUTCOMES)))
    days: int = attrs.field(validator=attrs.validators.ge(1))

    @classmethod
    def read(cls, body: Mapping[str, Any], path: str, reader: Reporter) -> EngagementTrigger | None:
        outcome = next(o for o in OUTCOMES if o in body)
        touch = _name(body, outcome, path, reader)
        days = _days(body, path, reader)
        if touch is None or days is None:
            return None
        return cls(touch=touch, outcome=outcome, days=days)

    def unreachable(self, names: Names, touch: str) -> str | None:
        if self.touch not in names.touches:
            return f"unknown touch {self.touch!r}"
        if self.touch == touch:
            return "it waits on its own engagement"
        return None

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
#: Every trigger kind's data and ``program.toml`` form, in the order forms are listed. A new
#: kind adds its class here and its tick half to :data:`onetomany.triggers.KINDS`.
TRIGGER_TYPES: tuple[type[Trigger], ...] = (
    EventTrigger,
    SegmentTrigger,
    StageTrigger,
    AbsenceTrigger,
    CadenceTrigger,
    EngagementTrigger,
)


# -- reading from TOML ------------------------------------------------------------------------


def _by_key() -> dict[str, type[Trigger]]:
    return {key: cls for cls in TRIGGER_TYPES for key in cls.forms}


def read_trigger(body: object, path: str, reader: Reporter) -> Trigger | None:
    """One touch's ``trigger`` table; problems go to ``reader`` keyed by ``path``."""
    if body is None:
        return None  # a manual touch: only a broadcast sends it
    forms = "; ".join(cls.example for cls in TRIGGER_TYPES)
    if not isinstance(body, dict):
        reader.error(path, f"expected a table, one of: {forms}")
        return None
    by_key = _by_key()
    kinds = [k for k in by_key if k in body]
    if len(kinds) != 1:
        mixed = f"both {' and '.join(kinds)}"
        found = mixed if kinds else f"unknown trigger key(s) {sorted(body)}"
        reader.error(path, f"{found} (a trigger is one of: {forms})")
        return None
    key = kinds[0]
    cls = by_key[key]
    allowed = cls.forms[key]
    unknown = set(body) - allowed
    if unknown:
        known = ", ".join(sorted(allowed))
        reader.error(path, f"unknown key(s) {sorted(unknown)} for a {key} trigger (known: {known})")
        return None
    return cls.read(body, path, reader)


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
