"""Why a touch did, or did not, fire for one account or contact.

:func:`explain` reads the program's store (it writes nothing) and answers, for each contact
the question is about, the questions a CSM asks when a customer says "I never got that email":

* **audience**: does the touch's role fallback pick this contact ("no sponsor, so the leader
  ct-3")?
* **trigger**: did what fires it happen for them (the latest matching events and the outbox
  row each produced; the absence's last event and the day it becomes due; the cadence's
  schedule; the previous step of an escalation ladder and whether it was opened)?
* **segment**: is the contact in the touch's segment, and if not, which parts of the
  expression failed, with their values (``account.active_users / account.seats < 0.5`` was
  0.8 < 0.5 -> false)?
* **re-entry**: does an existing key or a recent send block it?
* **consent** and **address**: may the channel reach them, and where?

Then the touch's outbox rows for them (status, attempts, last error) and when it is next due.
The result is a frozen :class:`Explanation`; ``onetomany explain`` renders it, and
:meth:`Explanation.as_dict` gives it as JSON-ready data.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from onetomany.delivery.compose import recipient
from onetomany.engine import EVENT_CURSOR, Engine, pick
from onetomany.errors import InputError, PermanentDeliveryError
from onetomany.model import Account, ChannelKind, Contact, Event
from onetomany.program import Touch
from onetomany.rules.segments.ast import (
    And,
    Between,
    Compare,
    Count,
    Exists,
    Expr,
    Field,
    In,
    Last,
    Not,
    Or,
    SegmentRef,
    unparse,
    walk,
)
from onetomany.rules.segments.evaluate import Instant, Profile, Value, value_of
from onetomany.rules.segments.named import SegmentSet
from onetomany.rules.triggers import (
    EVENT_DRIVEN,
    AbsenceTrigger,
    CadenceTrigger,
    EngagementTrigger,
    SegmentTrigger,
    StageTrigger,
)
from onetomany.store import EventPosition, Store
from onetomany.store.queries.events import events_of, latest_events_of
from onetomany.store.queries.journeys import journey_state, latest_steps, stage_entries
from onetomany.store.queries.outbox import last_queued, touch_rows
from onetomany.store.queries.schedules import schedule
from onetomany.store.queries.segment_members import member_since
from onetomany.store.store import DELIVERY_EVENT_NAMES
from onetomany.tracking.reentry import idempotency_key

__all__ = [
    "Check",
    "Explanation",
    "NextDue",
    "OutboxEntry",
    "RecipientExplanation",
    "explain",
    "profile_of",
]

CHECK_STATUSES = ("pass", "fail", "info")
#: How many of the latest trigger events, and outbox rows, an explanation lists.
RECENT = 5
ROWS = 20


@attrs.frozen(kw_only=True)
class Check:
    """One thing that lets a touch through or stops it, in plain English.

    ``status`` is ``pass``, ``fail`` or ``info`` (context that decides nothing on its own);
    ``values`` holds what the reason was computed from; ``details`` are further lines (each
    failing part of a segment, each recent event).
    """

    name: str
    status: str = attrs.field(validator=attrs.validators.in_(CHECK_STATUSES))
    reason: str
    values: Mapping[str, Any] = attrs.field(factory=dict)
    details: tuple[str, ...] = attrs.field(default=(), converter=tuple[str, ...])


@attrs.frozen(kw_only=True)
class OutboxEntry:
    """One outbox row of the touch for the contact, as stored."""

    id: int
    idempotency_key: str
    status: str
    attempts: int
    last_error: str | None
    event_id: str | None
    available_at: datetime
    created_at: datetime
    updated_at: datetime


@attrs.frozen(kw_only=True)
class NextDue:
    """When the touch is next due for the contact: a time, or what must happen first."""

    at: datetime | None
    reason: str


@attrs.frozen(kw_only=True)
class RecipientExplanation:
    """The explanation for one contact: a verdict, the checks behind it, its outbox rows."""

    contact_id: str
    name: str
    role: str | None
    picked: bool
    state: str
    verdict: str
    checks: tuple[Check, ...] = attrs.field(converter=tuple[Check, ...])
    rows: tuple[OutboxEntry, ...] = attrs.field(converter=tuple[OutboxEntry, ...])
    next_due: NextDue | None = None

    def check(self, name: str) -> Check:
        """The check called ``name`` (``audience``, ``trigger``, ``segment``, ...)."""
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(f"no check {name!r} (checks: {', '.join(c.name for c in self.checks)})")


@attrs.frozen(kw_only=True)
class Explanation:
    """Why ``touch`` did or did not fire for ``subject_id`` (an account or a contact)."""

    program: str
    touch: str
    trigger: str
    subject_id: str
    subject_kind: str
    account_id: str | None
    now: datetime
    audience: Check
    recipients: tuple[RecipientExplanation, ...] = attrs.field(
        converter=tuple[RecipientExplanation, ...]
    )

    @property
    def verdict(self) -> str:
        """One line: the verdict for the contacts the audience picks (or why nobody)."""
        if not self.recipients:
            return f"would not fire: account {self.subject_id!r} has no contacts"
        chosen = [r for r in self.recipients if r.picked] or list(self.recipients)
        if len(chosen) == 1:
            return chosen[0].verdict
        return "; ".join(f"{r.contact_id}: {r.verdict}" for r in chosen)

    def recipient(self, contact_id: str) -> RecipientExplanation:
        for found in self.recipients:
            if found.contact_id == contact_id:
                return found
        raise KeyError(f"contact {contact_id!r} is not part of this explanation")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data: datetimes as ISO 8601 strings, plus the one-line ``verdict``."""
        data = attrs.asdict(self, value_serializer=_serialize)
        return {"verdict": self.verdict, **data}

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2)


def _serialize(_instance: object, _field: object, value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


# -- the public entry point -----------------------------------------------------------------


def explain(engine: Engine, subject_id: str, touch_name: str) -> Explanation:
    """Why ``touch_name`` did or did not fire for ``subject_id``, read from ``engine``'s store.

    ``subject_id`` is a contact id (explained for that contact) or an account id (explained
    for each of its contacts, saying which one the audience picks). Raises
    :class:`~onetomany.errors.ConfigError` for an unknown touch and
    :class:`~onetomany.errors.InputError` for an id that is neither.
    """
    touch = engine.program.touch(touch_name)
    store = engine.store
    contact = store.get_contact(subject_id)
    if contact is not None:
        kind = "contact"
        account_id = contact.account_id
    elif store.get_account(subject_id) is not None:
        kind = "account"
        account_id = subject_id
    else:
        raise InputError(
            f"no account or contact {subject_id!r} in the store of program "
            f"{engine.program.name!r} (is the store synced? `onetomany run` fills it)"
        )
    return _Explainer(engine, touch).explain(subject_id, kind, account_id, contact)


def profile_of(
    store: Store,
    contact: Contact,
    *,
    account: Account | None = None,
    event_names: Iterable[str] | None = None,
) -> Profile:
    """The segment :class:`~onetomany.rules.segments.Profile` of a stored contact.

    Its account (``account``, else read from the store) and the events of the account and of
    the contact; only those named ``event_names`` when given (:func:`event_names` of the
    expression), since an expression looks at no others.
    """
    if account is None and contact.account_id:
        account = store.get_account(contact.account_id)
    names = None if event_names is None else sorted(set(event_names))
    if names is not None and not names:
        return Profile(contact=contact, account=account)
    events = events_of(store, contact, names=names)
    return Profile(contact=contact, account=account, events=events)


def event_names(expr: Expr, segments: SegmentSet | None = None) -> set[str]:
    """The event names ``count()`` and ``last()`` read in ``expr`` and the segments it uses."""
    names: set[str] = set()
    seen: set[str] = set()
    pending = [expr]
    while pending:
        for node in walk(pending.pop()):
            if isinstance(node, Count | Last):
                names.add(node.event)
            elif (
                isinstance(node, SegmentRef)
                and segments is not None
                and node.name in segments
                and node.name not in seen
            ):
                seen.add(node.name)
                pending.append(segments.expr(node.name))
    return names


# -- the work -------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class _Finding:
    """What the trigger says for one contact."""

    checks: list[Check]
    occurred: bool
    key: str | None = None
    next_due: NextDue | None = None


class _Explainer:
    def __init__(self, engine: Engine, touch: Touch) -> None:
        self.engine = engine
        self.program = engine.program
        self.store = engine.store
        self.touch = touch
        self.now = engine.clock.now()
        self.segments = engine.segments
        channel = engine.channels.get(touch.channel)
        self.kind: ChannelKind | None = channel.serves if channel is not None else None

    def explain(
        self, subject_id: str, kind: str, account_id: str | None, contact: Contact | None
    ) -> Explanation:
        if account_id is not None:
            contacts = self.store.contacts_of(account_id)
        else:
            contacts = [contact] if contact is not None else []
        account = self.store.get_account(account_id) if account_id else None
        picked = pick(self.touch.audience, contacts)
        audience = self._audience(contacts, picked, account_id)
        wanted = [contact] if contact is not None else contacts
        recipients = [self._recipient(c, account, audience, picked) for c in wanted]
        trigger = self.touch.trigger
        return Explanation(
            program=self.program.name,
            touch=self.touch.name,
            trigger=trigger.describe() if trigger is not None else "no trigger (broadcast only)",
            subject_id=subject_id,
            subject_kind=kind,
            account_id=account_id,
            now=self.now,
            audience=audience,
            recipients=recipients,
        )

    # -- audience ---------------------------------------------------------------------------

    def _audience(
        self, contacts: list[Contact], picked: list[Contact], account_id: str | None
    ) -> Check:
        audience = self.touch.audience
        where = f"account {account_id!r}" if account_id else "the contact, who has no account"
        chosen = ", ".join(_who(c) for c in picked)
        values = {
            "roles": list(audience.roles),
            "every": audience.every,
            "picks": [c.id for c in picked],
        }
        if not audience.roles:
            first = "every contact" if audience.every else "the first contact"
            named = (
                "the event's contact when it names one, else "
                if isinstance(self.touch.trigger, EVENT_DRIVEN)
                else ""
            )
            reason = f"no roles: {named}{first} of {where}" + (f" ({chosen})" if chosen else "")
            return Check(name="audience", status="info", reason=reason, values=values)
        missing = []
        for role in audience.roles:
            if any(c.role == role for c in contacts):
                break
            missing.append(role)
        if not picked:
            roles = " or ".join(audience.roles)
            reason = f"no {roles} in {where}, so the audience picks nobody"
            return Check(name="audience", status="fail", reason=reason, values=values)
        winner = picked[0].role
        lead = f"no {' or '.join(missing)}, so " if missing else ""
        many = "every " if audience.every else ""
        reason = f"roles {' then '.join(audience.roles)}: {lead}{many}the {winner} {chosen}"
        return Check(name="audience", status="pass", reason=reason, values=values)

    def _audience_for(self, contact: Contact, audience: Check, picked: list[Contact]) -> Check:
        trigger = self.touch.trigger
        values = dict(audience.values)
        if isinstance(trigger, AbsenceTrigger) and trigger.by == "contact":
            # Each absent contact is its own group, so the roles filter instead of falling back.
            roles = self.touch.audience.roles
            if roles and contact.role not in roles:
                reason = f"role {contact.role!r} is not one of the audience's ({', '.join(roles)})"
                return Check(name="audience", status="fail", reason=reason, values=values)
            return Check(name="audience", status="pass", reason="an absent contact", values=values)
        if isinstance(trigger, CadenceTrigger | EngagementTrigger):
            # The schedule, or the previous step's row, decides who; the roles only inform.
            return Check(name="audience", status="info", reason=audience.reason, values=values)
        if not self.touch.audience.roles and isinstance(trigger, EVENT_DRIVEN):
            return Check(name="audience", status="info", reason=audience.reason, values=values)
        if any(c.id == contact.id for c in picked):
            return Check(name="audience", status="pass", reason=audience.reason, values=values)
        reason = f"not picked: {audience.reason}"
        return Check(name="audience", status="fail", reason=reason, values=values)

    # -- one contact ------------------------------------------------------------------------

    def _recipient(
        self, contact: Contact, account: Account | None, audience: Check, picked: list[Contact]
    ) -> RecipientExplanation:
        rows = self._rows(contact)
        by_key = {r.idempotency_key: r for r in rows}
        who = self._audience_for(contact, audience, picked)
        finding = self._trigger(contact, by_key)
        checks = [who, *finding.checks]
        segment = self._segment_check(contact, account)
        if segment is not None:
            checks.append(segment)
        reentry, reentry_due = self._reentry(contact, by_key)
        checks.append(reentry)
        checks += self._channel(contact, account)
        next_due = _later(finding.next_due, reentry_due)
        row = by_key.get(finding.key) if finding.key else None
        state, verdict = _verdict(checks, finding, row, next_due)
        return RecipientExplanation(
            contact_id=contact.id,
            name=contact.name,
            role=contact.role,
            picked=who.status != "fail",
            state=state,
            verdict=verdict,
            checks=checks,
            rows=rows,
            next_due=next_due,
        )

    def _key(self, contact: Contact, occurrence: str) -> str | None:
        """The key the touch's row for ``occurrence`` gets, after its re-entry rule."""
        rule = self.touch.reentry
        if rule.kind == "once":
            occurrence = "once"
        elif rule.kind == "stage":
            assert rule.journey is not None
            entry = stage_entries(self.store, rule.journey, [contact.account_id]).get(
                contact.account_id or ""
            )
            if entry is None:
                return None
            occurrence = f"stage-{entry}"
        return idempotency_key(self.program.name, self.touch.name, contact.id, occurrence)

    def _rows(self, contact: Contact) -> list[OutboxEntry]:
        return _outbox(self.store, self.touch.name, contact.id)

    # -- triggers ---------------------------------------------------------------------------

    def _trigger(self, contact: Contact, by_key: Mapping[str, OutboxEntry]) -> _Finding:
        trigger = self.touch.trigger
        if trigger is None:
            check = Check(
                name="trigger",
                status="fail",
                reason="it has no trigger: only a broadcast sends it (onetomany broadcast)",
            )
            return _Finding(
                checks=[check],
                occurred=False,
                next_due=NextDue(at=None, reason="when someone broadcasts it"),
            )
        if isinstance(trigger, AbsenceTrigger):
            return self._absence(contact, trigger)
        if isinstance(trigger, CadenceTrigger):
            return self._cadence(contact, trigger)
        if isinstance(trigger, EngagementTrigger):
            return self._engagement(contact, trigger, by_key)
        finding = self._events(contact, by_key)
        if isinstance(trigger, SegmentTrigger):
            finding.checks.extend(self._segment_state(contact, trigger))
        elif isinstance(trigger, StageTrigger):
            extra, due = self._stage_state(contact, trigger)
            finding.checks.extend(extra)
            if due is not None and not finding.occurred:
                finding = attrs.evolve(finding, next_due=due)
        return finding

    def _events(self, contact: Contact, by_key: Mapping[str, OutboxEntry]) -> _Finding:
        trigger = self.touch.trigger
        assert isinstance(trigger, EVENT_DRIVEN)
        name = trigger.event_name
        position = EventPosition.parse(self.store.get_cursor(EVENT_CURSOR))
        found = [
            (seq, e)
            for seq, e in _events_for(self.store, contact, [name], limit=200)
            if trigger.matches(e)
            and not (
                e.properties.get("touch") == self.touch.name and e.name in DELIVERY_EVENT_NAMES
            )
        ][:RECENT]
        if not found:
            owner = f" or account {contact.account_id!r}" if contact.account_id else ""
            if isinstance(trigger, SegmentTrigger):
                what = f"{name!r} event for segment {trigger.segment!r}"
                verb = "enter" if trigger.on == "enter" else "leave"
                when = f"when they {verb} segment {trigger.segment!r}"
            elif isinstance(trigger, StageTrigger):
                what = f"{name!r} event for stage {trigger.journey}.{trigger.stage}"
                when = f"when a {what} happens"
            else:
                where = ", ".join(f"{k} = {v!r}" for k, v in trigger.where.items())
                what = f"{name!r} event" + (f" with {where}" if where else "")
                when = f"when a {what} happens"
            check = Check(
                name="trigger",
                status="fail",
                reason=f"no {what} for {contact.id!r}{owner} yet",
                values={"event": name},
            )
            return _Finding(checks=[check], occurred=False, next_due=NextDue(at=None, reason=when))
        lines: list[str] = []
        events: list[dict[str, Any]] = []
        latest_key: str | None = None
        latest_ok = False
        latest_line = ""
        for index, (seq, event) in enumerate(found):
            reached = [c.id for c in self.engine.addressees(self.touch, event)]
            key = self._key(contact, event.id) if contact.id in reached else None
            row = by_key.get(key) if key else None
            head = f"{event.name} {event.id} at {_when(event.occurred_at)}"
            if row is not None and row.event_id == event.id:
                line, ok = f"{head} produced row #{row.id} ({row.status})", True
            elif row is not None:
                line = (
                    f"{head} was blocked by re-entry ({self.touch.reentry.describe()}): "
                    f"key {row.idempotency_key} is held by row #{row.id} (event {row.event_id})"
                )
                ok = True
            elif contact.id not in reached:
                to = ", ".join(reached) or "nobody"
                line, ok = f"{head} went to {to}, not {contact.id}", False
            elif key is None:
                line, ok = f"{head} reached them, but re-entry lets nothing through", True
            elif seq > position:
                line, ok = f"{head} is not processed yet: the next tick considers it", True
            else:
                line, ok = f"{head} produced no row for them (see the checks below)", True
            lines.append(line)
            events.append({"id": event.id, "at": event.occurred_at.isoformat(), "key": key})
            if index == 0:
                latest_key, latest_ok, latest_line = key, ok, line
        check = Check(
            name="trigger",
            status="pass" if latest_ok else "fail",
            reason=f"latest: {latest_line}",
            values={"event": name, "events": events},
            details=lines,
        )
        return _Finding(
            checks=[check],
            occurred=latest_ok,
            key=latest_key,
            next_due=None
            if latest_ok
            else NextDue(at=None, reason=f"when a {name!r} event reaches {contact.id}"),
        )

    def _segment_state(self, contact: Contact, trigger: SegmentTrigger) -> list[Check]:
        since = member_since(self.store, trigger.segment, contact.id)
        recorded = (
            f"recorded in segment {trigger.segment!r} since {_when(since)}"
            if since is not None
            else f"not recorded as a member of segment {trigger.segment!r}"
        )
        membership = Check(
            name="membership",
            status="info",
            reason=recorded,
            values={"segment": trigger.segment, "since": since},
        )
        now = self._segment_check(contact, None, name=trigger.segment, label="segment now")
        return [membership, *([now] if now is not None else [])]

    def _stage_state(
        self, contact: Contact, trigger: StageTrigger
    ) -> tuple[list[Check], NextDue | None]:
        where = f"{trigger.journey}.{trigger.stage}"
        if contact.account_id is None:
            check = Check(name="journey", status="info", reason="the contact has no account")
            return [check], None
        state = journey_state(self.store, trigger.journey, contact.account_id)
        history = latest_steps(self.store, contact.account_id, trigger.journey, limit=RECENT)
        details = [f"{r.at.isoformat()} {r.action} {r.stage} (entry {r.entry_id})" for r in history]
        ideal = self.program.journeys[trigger.journey].stage(trigger.stage).ideal_days
        if state is None:
            reason = f"account {contact.account_id!r} has not entered journey {trigger.journey!r}"
            check = Check(name="journey", status="info", reason=reason, details=details)
            return [check], NextDue(at=None, reason=f"when the account reaches stage {where}")
        reason = (
            f"account {contact.account_id!r} is in stage {trigger.journey}.{state.stage} since "
            f"{_when(state.entered_at)} (entry {state.entry_id})"
        )
        if state.completed_at is not None:
            reason += f", completed {_when(state.completed_at)}"
        if state.overdue_at is not None:
            reason += f", overdue since {_when(state.overdue_at)}"
        values = {
            "stage": state.stage,
            "entry_id": state.entry_id,
            "entered_at": state.entered_at,
            "completed_at": state.completed_at,
            "overdue_at": state.overdue_at,
        }
        check = Check(name="journey", status="info", reason=reason, values=values, details=details)
        due: NextDue | None
        if state.stage != trigger.stage:
            due = NextDue(at=None, reason=f"when the account reaches stage {where}")
        elif trigger.on == "overdue" and ideal is not None and state.completed_at is None:
            at = state.entered_at + timedelta(days=ideal)
            due = NextDue(at=at, reason=f"when stage {where} overruns its {ideal} ideal days")
        elif trigger.on == "complete":
            due = NextDue(at=None, reason=f"when the account completes stage {where}")
        else:
            due = NextDue(at=None, reason=f"when the account enters stage {where} again")
        return [check], due

    def _absence(self, contact: Contact, trigger: AbsenceTrigger) -> _Finding:
        subject = contact.account_id if trigger.by == "account" else contact.id
        owner = f"the account {subject!r}" if trigger.by == "account" else f"{contact.id!r}"
        later = NextDue(at=None, reason=f"{trigger.days} days after a {trigger.event!r} by {owner}")
        if subject is None:
            check = Check(
                name="trigger",
                status="fail",
                reason="the contact has no account, so an absence by account never applies",
            )
            return _Finding(checks=[check], occurred=False)
        last = self.store.latest_events(
            trigger.event, by=trigger.by, ids=[subject], until=self.now
        ).get(subject)
        if last is None:
            reason = (
                f"no {trigger.event!r} by {owner} ever, so it is not absent from it "
                f'(a segment with missing(last("{trigger.event}")) finds those)'
            )
            check = Check(name="trigger", status="fail", reason=reason)
            return _Finding(checks=[check], occurred=False, next_due=later)
        due = last.occurred_at + timedelta(days=trigger.days)
        days = (self.now - last.occurred_at) // timedelta(days=1)
        values = {"last_event": last.id, "last_at": last.occurred_at, "days": days, "due_at": due}
        head = f"last {trigger.event!r} by {owner} was {last.id} at {_when(last.occurred_at)}"
        if self.now >= due:
            reason = f"{head}, {days} days ago: absent at least {trigger.days} days"
            check = Check(name="trigger", status="pass", reason=reason, values=values)
            key = self._key(contact, f"absence-{last.id}")
            return _Finding(checks=[check], occurred=True, key=key)
        reason = f"{head}, {days} days ago: absent only from {_when(due)} ({trigger.days} days)"
        check = Check(name="trigger", status="fail", reason=reason, values=values)
        due_next = NextDue(at=due, reason=f"{trigger.days} days after {last.id}, unless a new one")
        return _Finding(checks=[check], occurred=False, next_due=due_next)

    def _cadence(self, contact: Contact, trigger: CadenceTrigger) -> _Finding:
        row = schedule(self.store, self.touch.name, contact.id)
        if row is None:
            subject = contact.account_id if trigger.by == "account" else contact.id
            anchors = (
                self.store.latest_events(
                    trigger.anchor, by=trigger.by, ids=[subject], until=self.now
                )
                if subject
                else {}
            )
            anchor = anchors.get(subject or "")
            if anchor is None:
                reason = f"no anchor event {trigger.anchor!r} for the {trigger.by} yet"
                check = Check(name="trigger", status="fail", reason=reason)
                return _Finding(
                    checks=[check],
                    occurred=False,
                    next_due=NextDue(
                        at=None, reason=f"after a {trigger.anchor!r} event, by the rule"
                    ),
                )
            reason = (
                f"anchor {anchor.name} {anchor.id} at {_when(anchor.occurred_at)}, but no "
                "schedule yet: the next tick schedules it"
            )
            check = Check(name="trigger", status="fail", reason=reason)
            return _Finding(
                checks=[check], occurred=False, next_due=NextDue(at=None, reason="at the next tick")
            )
        values = {
            "anchor_id": row.anchor_id,
            "anchor_at": row.anchor_at,
            "next_at": row.next_at,
            "fired": row.fired,
        }
        head = f"anchored on {row.anchor_id} at {_when(row.anchor_at)}, {row.fired} sent so far"
        if row.next_at is None:
            reason = f"{head}: the cadence has no further occurrence"
            check = Check(name="trigger", status="fail", reason=reason, values=values)
            return _Finding(checks=[check], occurred=False)
        local = _local(row.next_at, contact.timezone)
        if row.next_at <= self.now:
            reason = f"{head}: an occurrence is due since {local}"
            check = Check(name="trigger", status="pass", reason=reason, values=values)
            return _Finding(checks=[check], occurred=True)
        reason = f"{head}: next occurrence at {local}"
        check = Check(name="trigger", status="fail", reason=reason, values=values)
        due = NextDue(at=row.next_at, reason=f"the cadence's next occurrence ({local})")
        return _Finding(checks=[check], occurred=False, next_due=due)

    def _engagement(
        self, contact: Contact, trigger: EngagementTrigger, by_key: Mapping[str, OutboxEntry]
    ) -> _Finding:
        previous = trigger.touch
        sent = [r for r in _outbox(self.store, previous, contact.id) if r.status == "sent"]
        what = "opened" if trigger.outcome == "not_opened" else "clicked"
        if not sent:
            reason = f"{previous!r} was never sent to {contact.id}"
            check = Check(name="trigger", status="fail", reason=reason)
            later = NextDue(at=None, reason=f"{trigger.days} days after {previous!r} is sent")
            return _Finding(checks=[check], occurred=False, next_due=later)
        row = sent[0]  # the newest sent message is the one a new escalation would follow
        ladder = [previous, *self.program.ladder(previous)]
        keys = {r.idempotency_key for name in ladder for r in _outbox(self.store, name, contact.id)}
        engaged = [
            e
            for _, e in _events_for(self.store, contact, trigger.engagement, limit=200)
            if e.properties.get("idempotency_key") in keys
        ]
        sent_at = row.updated_at  # a sent row's last update is its delivery
        due = sent_at + timedelta(days=trigger.days)
        values: dict[str, Any] = {
            "previous_row": row.id,
            "previous_key": row.idempotency_key,
            "sent_at": sent_at,
            "due_at": due,
            "engagement": [e.id for e in engaged],
        }
        head = f"{previous!r} row #{row.id} was sent at {_when(sent_at)}"
        key = self._key(contact, f"after-{row.id}")
        if engaged:
            first = engaged[-1]
            reason = (
                f"{head} and {what}: {first.name} {first.id} at {_when(first.occurred_at)} "
                f"(key {first.properties.get('idempotency_key')}), so no escalation"
            )
            check = Check(name="trigger", status="fail", reason=reason, values=values)
            return _Finding(checks=[check], occurred=False, key=key)
        if self.now >= due:
            reason = f"{head}, not {what} in {trigger.days} days: escalation due since {_when(due)}"
            check = Check(name="trigger", status="pass", reason=reason, values=values)
            return _Finding(checks=[check], occurred=True, key=key)
        reason = f"{head}, not {what} yet: escalation due at {_when(due)} unless {what} first"
        check = Check(name="trigger", status="fail", reason=reason, values=values)
        return _Finding(
            checks=[check],
            occurred=False,
            next_due=NextDue(
                at=due, reason=f"{trigger.days} days after row #{row.id}, unless {what}"
            ),
        )

    # -- segment ----------------------------------------------------------------------------

    def _segment_check(
        self,
        contact: Contact,
        account: Account | None,
        *,
        name: str | None = None,
        label: str = "segment",
    ) -> Check | None:
        segment = name or self.touch.segment
        if segment is None:
            return None
        expr = self.segments.expr(segment)
        profile = profile_of(
            self.store, contact, account=account, event_names=event_names(expr, self.segments)
        )
        result = _SegmentWhy(profile, self.now, self.segments)
        truth = result.truth(expr)
        values = {"segment": segment, "expression": unparse(expr), "result": truth}
        if truth is True:
            reason = f"in segment {segment!r}"
            status = "info" if label != "segment" else "pass"
            return Check(name=label, status=status, reason=reason, values=values)
        lines = result.why_not(expr)
        word = "false" if truth is False else "unknown"
        because = f" because {lines[0].strip()}" if lines else ""
        status = "info" if label != "segment" else "fail"
        reason = f"segment {segment!r} is {word}{because}"
        return Check(name=label, status=status, reason=reason, values=values, details=lines)

    # -- re-entry and channel ---------------------------------------------------------------

    def _reentry(
        self, contact: Contact, by_key: Mapping[str, OutboxEntry]
    ) -> tuple[Check, NextDue | None]:
        rule = self.touch.reentry
        values: dict[str, Any] = {"rule": rule.kind}
        if rule.kind == "once":
            key = self._key(contact, "once")
            row = by_key.get(key) if key else None
            if row is not None:
                reason = f"once ever, and row #{row.id} ({row.status}) already holds {key}"
                return Check(name="re-entry", status="fail", reason=reason, values=values), None
            return Check(name="re-entry", status="pass", reason="once ever: not yet sent"), None
        if rule.kind == "stage":
            assert rule.journey is not None
            entry = stage_entries(self.store, rule.journey, [contact.account_id]).get(
                contact.account_id or ""
            )
            values["entry_id"] = entry
            if entry is None:
                reason = (
                    f"once per entry into a {rule.journey} stage, and the account is in no "
                    f"stage of {rule.journey!r}, so nothing passes"
                )
                due = NextDue(at=None, reason=f"when the account enters a {rule.journey} stage")
                return Check(name="re-entry", status="fail", reason=reason, values=values), due
            key = idempotency_key(self.program.name, self.touch.name, contact.id, f"stage-{entry}")
            row = by_key.get(key)
            if row is not None:
                reason = f"once per {rule.journey} stage entry, and row #{row.id} holds {key}"
                due = NextDue(
                    at=None, reason=f"when the account enters its next {rule.journey} stage"
                )
                return Check(name="re-entry", status="fail", reason=reason, values=values), due
            reason = f"once per {rule.journey} stage entry: not yet sent in entry {entry}"
            return Check(name="re-entry", status="pass", reason=reason, values=values), None
        if rule.kind == "period":
            assert rule.days is not None
            last = last_queued(self.store, self.touch.name, [contact.id]).get(contact.id)
            values["last_queued"] = last
            if last is not None and self.now - last < timedelta(days=rule.days):
                until = last + timedelta(days=rule.days)
                reason = (
                    f"at most once every {rule.days} days, and it was queued at {_when(last)}: "
                    f"blocked until {_when(until)}"
                )
                due = NextDue(at=until, reason=f"the {rule.days}-day re-entry period ends")
                return Check(name="re-entry", status="fail", reason=reason, values=values), due
            reason = f"at most once every {rule.days} days: " + (
                f"last queued {_when(last)}" if last else "never queued"
            )
            return Check(name="re-entry", status="pass", reason=reason, values=values), None
        return (
            Check(name="re-entry", status="pass", reason="once per occurrence", values=values),
            None,
        )

    def _channel(self, contact: Contact, account: Account | None) -> list[Check]:
        kind = self.kind
        if kind is None:
            reason = f"channel {self.touch.channel!r} is not configured"
            return [Check(name="channel", status="fail", reason=reason)]
        values = {"channel": self.touch.channel, "kind": str(kind)}
        if contact.allows(kind):
            consent = Check(
                name="consent",
                status="pass",
                reason=f"consented to {kind} (no recorded refusal)",
                values=values | {"consent": dict(contact.consent)},
            )
        else:
            consent = Check(
                name="consent",
                status="fail",
                reason=f"{contact.id} refused {kind} (consent {kind} = false)",
                values=values | {"consent": dict(contact.consent)},
            )
        willing = attrs.evolve(contact, consent={**contact.consent, str(kind): True})
        try:
            address = recipient(willing, kind, account)
        except PermanentDeliveryError as exc:
            found = Check(name="address", status="fail", reason=str(exc), values=values)
        else:
            found = Check(
                name="address",
                status="pass",
                reason=f"{kind} goes to {address}",
                values=values | {"to": address},
            )
        return [consent, found]


# -- the segment walk -----------------------------------------------------------------------


class _SegmentWhy:
    """Evaluates parts of an expression for one profile and says which parts failed."""

    def __init__(self, profile: Profile, now: datetime, segments: SegmentSet) -> None:
        self.profile = profile
        self.now = now
        self.segments = segments

    def value(self, node: Expr) -> Value:
        return value_of(node, self.profile, now=self.now, segments=self.segments)

    def truth(self, node: Expr) -> bool | None:
        value = self.value(node)
        return value if isinstance(value, bool) else None

    def why_not(self, node: Expr, depth: int = 0) -> list[str]:
        """One line per failing leaf of ``node`` (false or unknown), nested under segments."""
        pad = "  " * depth
        match node:
            case And(left, right):
                return [
                    line
                    for part in (left, right)
                    if self.truth(part) is not True
                    for line in self.why_not(part, depth)
                ]
            case Or(left, right):
                return self.why_not(left, depth) + self.why_not(right, depth)
            case SegmentRef(name):
                inner = self.why_not(self.segments.expr(name), depth + 1)
                return [f'{pad}segment("{name}") is false:', *inner]
        return [pad + self.leaf(node)]

    def leaf(self, node: Expr) -> str:
        """``node`` with the values it was computed from: `a / b < 0.5` was 0.8 < 0.5 -> false."""
        result = self.value(node)
        word = _truth_word(result)
        match node:
            case Compare(op, left, right):
                how = f"{_show(self.value(left))} {op} {_show(self.value(right))}"
            case In(operand, items, negated):
                listed = ", ".join(_show(self.value(i)) for i in items)
                how = f"{_show(self.value(operand))} {'not in' if negated else 'in'} [{listed}]"
            case Between(operand, low, high, negated):
                verb = "not between" if negated else "between"
                how = (
                    f"{_show(self.value(operand))} {verb} {_show(self.value(low))} and "
                    f"{_show(self.value(high))}"
                )
            case Not(operand):
                how = f"not {_show(self.value(operand))}"
            case Exists(operand):
                shown = _show(self.value(operand))
                return f"`{unparse(node)}`: {unparse(operand)} is {shown} -> {word}"
            case _:
                how = _show(result)
        text = f"`{unparse(node)}` was {how} -> {word}"
        missing = list(
            dict.fromkeys(
                unparse(n)
                for n in walk(node)
                if isinstance(n, Field | Last) and self.value(n) is None
            )
        )
        if missing:
            text += f" ({' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing)"
        return text


def _truth_word(value: Value) -> str:
    if value is None:
        return "unknown"
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"{_show(value)}, not a boolean, so unknown"


def _show(value: Value) -> str:
    if value is None:
        return "missing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, Instant):
        return datetime.fromtimestamp(value.epoch, tz=UTC).isoformat()
    return json.dumps(value, ensure_ascii=False)


# -- verdicts and small helpers -------------------------------------------------------------


def _verdict(
    checks: Sequence[Check], finding: _Finding, row: OutboxEntry | None, next_due: NextDue | None
) -> tuple[str, str]:
    """``(state, one line)``: ``fired``, ``would fire`` or ``would not fire``."""
    audience = next((c for c in checks if c.name == "audience"), None)
    if audience is not None and audience.status == "fail":
        return "would not fire", f"would not fire: {audience.reason}"
    if row is not None:
        status = {
            "sent": f"sent at {_when(row.updated_at)}",
            "pending": f"queued, due {_when(row.available_at)}",
            "claimed": "being delivered",
            "dead": f"dead-lettered after {row.attempts} attempt(s): {row.last_error}",
        }.get(row.status, row.status)
        return "fired", f"fired: row #{row.id} {status}"
    failing = [c for c in checks if c.status == "fail"]
    if failing:
        first = failing[0]
        line = f"would not fire: {first.name}: {first.reason}"
        if next_due is not None:
            line += f"; next due {_due(next_due)}"
        return "would not fire", line
    if finding.occurred:
        return "would fire", "would fire at the next tick: every check passes"
    return "would not fire", "would not fire: its trigger has not happened for them"


def _due(due: NextDue) -> str:
    return f"{_when(due.at)} ({due.reason})" if due.at is not None else due.reason


def _later(first: NextDue | None, second: NextDue | None) -> NextDue | None:
    """The later of two due times: both must have passed for the touch to go out."""
    if first is None or second is None:
        return first or second
    if first.at is None or second.at is None:
        return first if first.at is None else second
    return first if first.at >= second.at else second


def _who(contact: Contact) -> str:
    return contact.id


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "never"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _local(moment: datetime, timezone: str) -> str:
    from zoneinfo import ZoneInfo

    return moment.astimezone(ZoneInfo(timezone)).strftime(f"%Y-%m-%d %H:%M {timezone}")


def _events_for(
    store: Store, contact: Contact, names: Iterable[str], *, limit: int
) -> list[tuple[EventPosition, Event]]:
    """The newest events named ``names`` of the contact or its account, with positions."""
    return latest_events_of(store, contact, names, limit=limit)


def _outbox(store: Store, touch: str, contact_id: str) -> list[OutboxEntry]:
    """The newest outbox rows of ``touch`` for the contact."""
    names = [f.name for f in attrs.fields(OutboxEntry)]
    return [
        OutboxEntry(**{name: row[name] for name in names})
        for row in touch_rows(store, touch, contact_id, limit=ROWS)
    ]


# -- text -----------------------------------------------------------------------------------

_MARKS = {"pass": "✓", "fail": "✗", "info": "·"}


def render(explanation: Explanation) -> list[str]:
    """The explanation as lines of text, verdict first, ready to print one per line."""
    e = explanation
    lines = [
        e.verdict,
        f"touch {e.touch!r} ({e.trigger}) for {e.subject_kind} {e.subject_id!r}, at {_when(e.now)}",
        f"audience: {e.audience.reason}",
    ]
    width = max((len(c.name) for r in e.recipients for c in r.checks), default=0)
    for r in e.recipients:
        role = f" ({r.role})" if r.role else ""
        name = f" {r.name}" if r.name else ""
        lines += ["", f"{r.contact_id}{name}{role}: {r.verdict}"]
        for check in r.checks:
            lines.append(f"  {_MARKS[check.status]} {check.name:<{width}}  {check.reason}")
            if not (len(check.details) == 1 and check.details[0].strip() in check.reason):
                lines += [f"      {detail}" for detail in check.details]
        if r.rows:
            lines.append("  outbox rows, newest first:")
        for row in r.rows:
            line = (
                f"    #{row.id} {row.status}, {row.attempts} attempt(s), key "
                f"{row.idempotency_key}, queued {_when(row.created_at)}, updated "
                f"{_when(row.updated_at)}"
            )
            if row.status == "pending":
                line += f", due {_when(row.available_at)}"
            if row.last_error:
                line += f"; last error: {row.last_error}"
            lines.append(line)
        if r.next_due is not None:
            lines.append(f"  next due: {_due(r.next_due)}")
    return lines
