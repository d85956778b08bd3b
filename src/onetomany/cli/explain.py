"""Why a touch did, or did not, fire for one account or contact: a view of the engine's
own decisions.

:func:`explain` asks the engine what a tick would decide now (:meth:`Engine.decide
<onetomany.engine.Engine.decide>`, a dry run of the same trigger kinds and re-entry rules, which
writes nothing) and, for a contact nothing is proposed to, what the trigger waits for
(:meth:`Engine.waiting <onetomany.engine.Engine.waiting>`, in the trigger kind's own words). It
works out no rule itself; it adds what helps people read the verdict:

* **audience**: whom the touch's role fallback picks ("no sponsor, so the leader ct-3");
* **segment**: for a failing segment, which parts of the expression failed, with their values
  (``account.active_users / account.seats < 0.5`` was 0.8 < 0.5 -> false), from the segment
  evaluator;
* **consent** and **address**: whether the channel can reach them, from the composer's own
  ``recipient``;
* the touch's outbox rows for them (status, attempts, last error) and when it is next due.

The result is a frozen :class:`Explanation`; ``onetomany explain`` renders it, and
:meth:`Explanation.as_dict` gives it as JSON-ready data.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import attrs

from onetomany.delivery.compose import recipient
from onetomany.engine import Engine, pick
from onetomany.errors import InputError, PermanentDeliveryError
from onetomany.model import Account, ChannelKind, Contact
from onetomany.model import decisions as decided
from onetomany.model.decisions import Decision, Outcome
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
from onetomany.store.profiles import load_profiles
from onetomany.store.queries.decisions import recorded_decisions
from onetomany.store.queries.outbox import touch_rows
from onetomany.triggers.base import when as _when

__all__ = [
    "Check",
    "Explanation",
    "NextDue",
    "OutboxEntry",
    "RecipientExplanation",
    "explain",
]

CHECK_STATUSES = ("pass", "fail", "info")
#: How many outbox rows, and recorded decisions, an explanation lists.
ROWS = 20
RECENT = 5


@attrs.frozen(kw_only=True)
class Check:
    """One thing that lets a touch through or stops it, in plain English.

    ``status`` is ``pass``, ``fail`` or ``info`` (context that decides nothing on its own);
    ``values`` holds what the reason was computed from; ``details`` are further lines (each
    failing part of a segment, each other occurrence).
    """

    name: str
    status: str = attrs.field(validator=attrs.validators.in_(CHECK_STATUSES))
    reason: str
    values: Mapping[str, Any] = attrs.field(factory=dict)
    details: tuple[str, ...] = attrs.field(default=(), converter=tuple[str, ...])

    @classmethod
    def of(cls, check: decided.Check) -> Check:
        """The engine's check, as shown."""
        return cls(
            name=check.name, status=str(check.verdict), reason=check.reason, values=check.inputs
        )


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
    #: The provider that took the latest attempt (a failover group's member), if any.
    provider: str | None = None


@attrs.frozen(kw_only=True)
class NextDue:
    """When the touch is next due for the contact: a time, or what must happen first."""

    at: datetime | None
    reason: str


@attrs.frozen(kw_only=True)
class RecipientExplanation:
    """The explanation for one contact: a verdict, the checks behind it, its outbox rows.

    ``state`` is ``would fire`` (the next tick queues a row, under ``key``), ``fired`` (the
    outbox already holds the row for what is due now) or ``would not fire``; ``decisions``
    are the engine's, as JSON-ready data.
    """

    contact_id: str
    name: str
    role: str | None
    picked: bool
    state: str
    verdict: str
    checks: tuple[Check, ...] = attrs.field(converter=tuple[Check, ...])
    rows: tuple[OutboxEntry, ...] = attrs.field(converter=tuple[OutboxEntry, ...])
    next_due: NextDue | None = None
    key: str | None = None
    decisions: tuple[dict[str, Any], ...] = attrs.field(
        default=(), converter=tuple[dict[str, Any], ...]
    )

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
    for each of its contacts, saying which one the audience picks). Writes nothing. Raises
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
    contacts = store.contacts_of(account_id) if account_id else [contact] if contact else []
    account = store.get_account(account_id) if account_id else None
    picked = pick(touch.audience, contacts)
    wanted = [contact] if contact is not None else contacts
    decisions: dict[str, list[Decision]] = {}
    for decision in engine.decide(touch.name, [c.id for c in wanted]):
        decisions.setdefault(decision.contact_id, []).append(decision)
    view = _View(engine, touch, account)
    return Explanation(
        program=engine.program.name,
        touch=touch.name,
        trigger=touch.trigger.describe() if touch.trigger else "no trigger (broadcast only)",
        subject_id=subject_id,
        subject_kind=kind,
        account_id=account_id,
        now=view.now,
        audience=_audience(touch, picked, account_id),
        recipients=[view.recipient(c, decisions.get(c.id, []), picked=c in picked) for c in wanted],
    )


def _audience(touch: Touch, picked: list[Contact], account_id: str | None) -> Check:
    """Whom the touch's audience picks among the account's contacts (for an event that names
    no contact; a time-driven trigger picks per schedule or per message)."""
    audience = touch.audience
    where = f"account {account_id!r}" if account_id else "the contact, who has no account"
    chosen = ", ".join(c.id for c in picked)
    values = {
        "roles": list(audience.roles),
        "every": audience.every,
        "picks": [c.id for c in picked],
    }
    if not audience.roles:
        first = "every contact" if audience.every else "the first contact"
        reason = f"no roles: the event's contact when it names one, else {first} of {where}"
        return Check(
            name="audience",
            status="info",
            reason=reason + (f" ({chosen})" if chosen else ""),
            values=values,
        )
    if not picked:
        reason = f"no {' or '.join(audience.roles)} in {where}, so the audience picks nobody"
        return Check(name="audience", status="fail", reason=reason, values=values)
    present = {c.role for c in picked}
    missing = []
    for role in audience.roles:
        if role in present:
            break
        missing.append(role)
    lead = f"no {' or '.join(missing)}, so " if missing else ""
    many = "every " if audience.every else ""
    reason = f"roles {' then '.join(audience.roles)}: {lead}{many}the {picked[0].role} {chosen}"
    return Check(name="audience", status="pass", reason=reason, values=values)


class _View:
    """Turns the engine's decisions about one touch into explanations, one contact each."""

    def __init__(self, engine: Engine, touch: Touch, account: Account | None) -> None:
        self.engine = engine
        self.touch = touch
        self.account = account
        self.now = engine.clock.now()
        channel = engine.channels.get(touch.channel)
        self.kind: ChannelKind | None = channel.serves if channel is not None else None

    def recipient(
        self, contact: Contact, decisions: Sequence[Decision], *, picked: bool
    ) -> RecipientExplanation:
        rows = _outbox(self.engine, self.touch.name, contact.id)
        fired: OutboxEntry | None = None
        recorded: Mapping[str, Any] | None = None
        if decisions:
            # The one a tick would queue, else the newest: one occurrence's checks are shown,
            # the others are listed under them.
            chosen = next((d for d in decisions if d.outcome is Outcome.QUEUED), decisions[-1])
            checks = [Check.of(c) for c in chosen.checks]
            others = [_line(d) for d in decisions if d is not chosen]
            if others:
                checks.append(
                    Check(
                        name="others",
                        status="info",
                        reason=f"{len(others)} other occurrence(s)",
                        details=others,
                    )
                )
            next_due = (
                NextDue(at=chosen.until, reason="deferred")
                if chosen.outcome is Outcome.DEFERRED
                else None
            )
            if chosen.checks and chosen.checks[-1].name == "outbox":
                # Already queued: the row under its key is what became of it, and the send
                # policies' verdicts on it are in the history.
                fired = next((r for r in rows if r.idempotency_key == chosen.idempotency_key), None)
                self._history(contact, checks)
        else:
            chosen = None
            checks, next_due = self._waiting(contact)
            history = self._history(contact, checks)
            if history:
                latest = history[0]
                fired = next(
                    (r for r in rows if r.idempotency_key == latest["idempotency_key"]), None
                )
                # A send policy's verdict (trigger "dispatch") is about a row already queued:
                # the row's state says it (deferred rows are pending, with the reason).
                if latest["outcome"] != "queued" and latest.get("trigger") != "dispatch":
                    fired, recorded = None, latest
        checks = [self._segment_why(c, contact) for c in checks]
        if chosen is None and self.touch.segment is not None:
            checks.append(self._segment_now(contact))
        checks += self._channel(contact)
        state, verdict = _verdict(chosen, checks, next_due, fired=fired, recorded=recorded)
        return RecipientExplanation(
            contact_id=contact.id,
            name=contact.name,
            role=contact.role,
            picked=bool(decisions) or picked,
            state=state,
            verdict=verdict,
            checks=checks,
            rows=rows,
            next_due=next_due,
            key=chosen.idempotency_key if chosen is not None else None,
            decisions=[d.as_dict() for d in decisions],
        )

    def _history(self, contact: Contact, checks: list[Check]) -> list[dict[str, Any]]:
        """The decisions ticks and send policies recorded for the contact, newest first,
        added to ``checks`` as a ``history`` check when there are any."""
        history = recorded_decisions(self.engine.store, self.touch.name, contact.id, limit=RECENT)
        if history:
            lines = [_recorded_line(r) for r in history]
            checks.append(
                Check(
                    name="history",
                    status="info",
                    reason=f"the last recorded decision: {lines[0]}",
                    values={"decisions": history},
                    details=lines,
                )
            )
        return history

    def _waiting(self, contact: Contact) -> tuple[list[Check], NextDue | None]:
        waiting = self.engine.waiting(self.touch.name, contact)
        if waiting is None:
            reason = "it has no trigger: only a broadcast sends it (onetomany broadcast)"
            check = Check(name="trigger", status="fail", reason=reason)
            return [check], NextDue(at=None, reason="when someone broadcasts it")
        due = (
            NextDue(at=waiting.due_at, reason=waiting.due or "")
            if waiting.due or waiting.due_at
            else None
        )
        return [Check.of(c) for c in waiting.checks], due

    # -- segment: which parts failed ----------------------------------------------------------

    def _segment_why(self, check: Check, contact: Contact) -> Check:
        if check.name != "segment" or check.status != "fail" or self.touch.segment is None:
            return check
        shown = self._segment_now(contact)
        return attrs.evolve(check, details=shown.details, values={**check.values, **shown.values})

    def _segment_now(self, contact: Contact) -> Check:
        segment = self.touch.segment
        assert segment is not None
        segments = self.engine.segments
        expr = segments.expr(segment)
        profile = load_profiles(
            self.engine.store, [contact.id], event_names=_event_names(expr, segments)
        ).get(contact.id, Profile(contact=contact, account=self.account))
        result = _SegmentWhy(profile, self.now, segments)
        truth = result.truth(expr)
        values = {"segment": segment, "expression": unparse(expr), "result": truth}
        if truth is True:
            return Check(
                name="segment", status="pass", reason=f"in segment {segment!r}", values=values
            )
        lines = result.why_not(expr)
        word = "false" if truth is False else "unknown"
        because = f" because {lines[0].strip()}" if lines else ""
        reason = f"segment {segment!r} is {word}{because}"
        return Check(name="segment", status="fail", reason=reason, values=values, details=lines)

    # -- channel ------------------------------------------------------------------------------

    def _channel(self, contact: Contact) -> list[Check]:
        kind = self.kind
        if kind is None:
            reason = f"channel {self.touch.channel!r} is not configured"
            return [Check(name="channel", status="fail", reason=reason)]
        values = {
            "channel": self.touch.channel,
            "kind": str(kind),
            "consent": dict(contact.consent),
        }
        if contact.allows(kind):
            consent = Check(
                name="consent",
                status="pass",
                reason=f"consented to {kind} (no recorded refusal)",
                values=values,
            )
        else:
            consent = Check(
                name="consent",
                status="fail",
                reason=f"{contact.id} refused {kind} (consent {kind} = false)",
                values=values,
            )
        willing = attrs.evolve(contact, consent={**contact.consent, str(kind): True})
        try:
            address = recipient(willing, kind, self.account)
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


def _event_names(expr: Expr, segments: SegmentSet) -> set[str]:
    """The event names ``count()`` and ``last()`` read in ``expr`` and the segments it uses."""
    names: set[str] = set()
    seen: set[str] = set()
    pending = [expr]
    while pending:
        for node in walk(pending.pop()):
            if isinstance(node, Count | Last):
                names.add(node.event)
            elif isinstance(node, SegmentRef) and node.name in segments and node.name not in seen:
                seen.add(node.name)
                pending.append(segments.expr(node.name))
    return names


def _recorded_line(record: Mapping[str, Any]) -> str:
    """One recorded decision, in a line: when, the occurrence, and what became of it."""
    at = _when(datetime.fromisoformat(record["at"]))
    line = f"{at} {record['occurrence']}: {record['outcome']}"
    if record["outcome"] == "queued":
        return f"{line} as {record['idempotency_key']}"
    if record["outcome"] == "deferred" and record.get("until"):
        last = record["checks"][-1] if record.get("checks") else {}
        until = _when(datetime.fromisoformat(record["until"]))
        return f"{line} until {until} ({last.get('name', '?')}: {last.get('reason', '')})"
    return f"{line} ({record['reason']})" if record.get("reason") else line


def _line(decision: Decision) -> str:
    """One other occurrence, in a line."""
    head = f"{decision.occurrence}: {decision.outcome}"
    if decision.reason:
        head += f" ({decision.reason})"
    return head


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

_STATUS = {
    "sent": "sent at {updated}",
    "pending": "queued, due {due}",
    "claimed": "being delivered",
    "dead": "dead-lettered after {attempts} attempt(s): {error}",
    "skipped": "skipped by a send policy ({error})",
}


def _row_state(row: OutboxEntry) -> str:
    template = _STATUS.get(row.status, row.status)
    return template.format(
        updated=_when(row.updated_at),
        due=_when(row.available_at),
        attempts=row.attempts,
        error=row.last_error,
    )


def _verdict(
    chosen: Decision | None,
    checks: Sequence[Check],
    next_due: NextDue | None,
    *,
    fired: OutboxEntry | None,
    recorded: Mapping[str, Any] | None,
) -> tuple[str, str]:
    """``(state, one line)``: ``would fire``, ``fired`` or ``would not fire``.

    From the engine's decision now (``chosen``) when it made one; else from the last one a
    tick recorded: queued (its row is ``fired``) or not (``recorded``)."""
    channel = [
        c for c in checks if c.name in ("channel", "consent", "address") and c.status == "fail"
    ]
    if chosen is not None and chosen.outcome is Outcome.QUEUED:
        line = f"would fire at the next tick, under key {chosen.idempotency_key}"
        if channel:
            line += f", but delivery will fail: {channel[0].name}: {channel[0].reason}"
        return "would fire", line
    if fired is not None:
        return "fired", f"fired: row #{fired.id} {_row_state(fired)}"
    failing = next((c for c in checks if c.status == "fail"), None)
    if chosen is not None and chosen.reason:
        line = f"would not fire: {chosen.checks[-1].name}: {chosen.reason}"
    elif recorded is not None:
        at = _when(datetime.fromisoformat(recorded["at"]))
        line = (
            f"would not fire: {recorded['checks'][-1]['name']}: {recorded['reason']} "
            f"({recorded['occurrence']}, decided {at})"
        )
    elif failing is not None:
        line = f"would not fire: {failing.name}: {failing.reason}"
    else:
        line = "would not fire: its trigger has not happened for them"
    if next_due is not None:
        line += f"; next due {_due(next_due)}"
    return "would not fire", line


def _due(due: NextDue) -> str:
    return f"{_when(due.at)} ({due.reason})" if due.at is not None else due.reason


def _outbox(engine: Engine, touch: str, contact_id: str) -> list[OutboxEntry]:
    """The newest outbox rows of ``touch`` for the contact."""
    names = [f.name for f in attrs.fields(OutboxEntry)]
    return [
        OutboxEntry(**{name: row[name] for name in names})
        for row in touch_rows(engine.store, touch, contact_id, limit=ROWS)
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
            if row.provider:
                line += f", via {row.provider}"
            if row.status == "pending":
                line += f", due {_when(row.available_at)}"
            if row.last_error:
                line += f"; last error: {row.last_error}"
            lines.append(line)
        if r.next_due is not None:
            lines.append(f"  next due: {_due(r.next_due)}")
    return lines
