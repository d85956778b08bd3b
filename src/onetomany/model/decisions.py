"""Decisions: what the engine decided about one touch for one recipient, as a value.

A trigger kind proposes a :class:`Decision` per recipient and occurrence (a *candidate*); the
rules that follow (the touch's segment, its re-entry rule, later the send policies) each add
a :class:`Check` and may settle it: **queued** (handed to the outbox under its idempotency
key), **skipped** (with the reason), **deferred** (until a given time) or **holdout** (the
recipient is in the touch's control group and is measured, not sent). Views such as
``explain``, ``simulate`` and reports display these values; they never work a rule out again.

Decisions hold plain data only (ids, names, text, numbers, ISO 8601 times), so a decision
can be recorded or shown as JSON as it is. ``payload`` is what the outbox row will carry to its
template; it is not part of the decision's record (it is left out of ``as_dict``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import attrs

__all__ = ["Check", "Decision", "Outcome", "Verdict"]


class Verdict(enum.StrEnum):
    """What one check says: it lets the touch through, stops it, or only informs."""

    PASS = "pass"  # noqa: S105 (a verdict, not a password)
    FAIL = "fail"
    INFO = "info"


class Outcome(enum.StrEnum):
    """Where a decision stands. A trigger kind proposes ``candidate``; the rules settle it."""

    CANDIDATE = "candidate"
    QUEUED = "queued"
    SKIPPED = "skipped"
    DEFERRED = "deferred"
    #: Kept out of the touch: the recipient is in its control group (a holdout).
    HOLDOUT = "holdout"


def _verdict(value: str) -> Verdict:
    # Checks are built per claimed row by the send policies, almost always from a member.
    return value if type(value) is Verdict else Verdict(value)


@attrs.frozen(kw_only=True)
class Check:
    """One rule applied to one candidate: its name, what it read, and its verdict.

    ``name`` is the rule (``trigger``, ``segment``, ``re-entry``, ...); ``inputs`` the plain
    values it decided on (``{"rule": "period", "days": 30, "last_queued": "2026-..."}``);
    ``reason`` one line for people.
    """

    name: str
    verdict: Verdict = attrs.field(converter=_verdict)
    reason: str = ""
    inputs: Mapping[str, Any] = attrs.field(factory=dict)

    @classmethod
    def passed(cls, name: str, reason: str = "", **inputs: Any) -> Check:
        return cls(name=name, verdict=Verdict.PASS, reason=reason, inputs=inputs)

    @classmethod
    def failed(cls, name: str, reason: str = "", **inputs: Any) -> Check:
        return cls(name=name, verdict=Verdict.FAIL, reason=reason, inputs=inputs)

    @classmethod
    def info(cls, name: str, reason: str = "", **inputs: Any) -> Check:
        return cls(name=name, verdict=Verdict.INFO, reason=reason, inputs=inputs)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "verdict": str(self.verdict),
            "reason": self.reason,
            "inputs": dict(self.inputs),
        }


def _aware(_instance: object, _attribute: object, value: datetime) -> None:
    if value.tzinfo is None:
        raise ValueError(f"a decision's times are timezone-aware, got {value!r}")


@attrs.frozen(kw_only=True)
class Decision:
    """What one tick decided about ``touch`` for one recipient and one occurrence.

    ``trigger`` names the trigger kind that proposed it (``event``, ``absence``, ...);
    ``occurrence`` is what happened (``absence-<event id>``, ``at-<instant>``, an event id),
    and ``idempotency_key`` the outbox key it is queued under (a re-entry rule may change it:
    ``once``, ``stage-<entry id>``). ``checks`` are the rules applied so far, in order.
    """

    program: str
    touch: str
    trigger: str
    contact_id: str
    account_id: str | None
    occurrence: str
    idempotency_key: str
    #: When it was decided (the tick's clock).
    at: datetime = attrs.field(validator=_aware)
    #: The stored event that fired it, when one did.
    event_id: str | None = None
    checks: tuple[Check, ...] = attrs.field(default=(), converter=tuple[Check, ...])
    outcome: Outcome = Outcome.CANDIDATE
    #: Why it was skipped (the failing check's reason); None unless skipped.
    reason: str | None = None
    #: When a deferred decision is due again; None unless deferred.
    until: datetime | None = attrs.field(default=None, validator=attrs.validators.optional(_aware))
    #: What the outbox row carries to its template (not part of the record).
    payload: Mapping[str, Any] = attrs.field(factory=dict, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        if (self.outcome is Outcome.SKIPPED) != (self.reason is not None):
            raise ValueError("a skipped decision has a reason, and only it does")
        if (self.outcome is Outcome.DEFERRED) != (self.until is not None):
            raise ValueError("a deferred decision has an until, and only it does")

    @property
    def settled(self) -> bool:
        """Whether a rule has settled it (queued, skipped or deferred)."""
        return self.outcome is not Outcome.CANDIDATE

    def check(self, check: Check) -> Decision:
        """This decision with one more check, still a candidate."""
        return attrs.evolve(self, checks=(*self.checks, check))

    def queued(self, check: Check, *, key: str | None = None) -> Decision:
        """Queued after ``check``, under ``key`` (a re-entry rule's) or its own key."""
        return attrs.evolve(
            self,
            checks=(*self.checks, check),
            outcome=Outcome.QUEUED,
            idempotency_key=key or self.idempotency_key,
        )

    def skipped(self, check: Check) -> Decision:
        """Skipped because of ``check`` (its reason is the decision's)."""
        return attrs.evolve(
            self,
            checks=(*self.checks, check),
            outcome=Outcome.SKIPPED,
            reason=check.reason or check.name,
        )

    def held_out(self, check: Check) -> Decision:
        """Not sent because of ``check``: the recipient is in the touch's control group."""
        return attrs.evolve(self, checks=(*self.checks, check), outcome=Outcome.HOLDOUT)

    def deferred(self, check: Check, until: datetime) -> Decision:
        """Deferred until ``until`` because of ``check``."""
        return attrs.evolve(
            self, checks=(*self.checks, check), outcome=Outcome.DEFERRED, until=until
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: times as ISO 8601 text, without the payload."""
        return {
            "program": self.program,
            "touch": self.touch,
            "trigger": self.trigger,
            "contact_id": self.contact_id,
            "account_id": self.account_id,
            "occurrence": self.occurrence,
            "idempotency_key": self.idempotency_key,
            "at": self.at.isoformat(),
            "event_id": self.event_id,
            "checks": [c.as_dict() for c in self.checks],
            "outcome": str(self.outcome),
            "reason": self.reason,
            "until": self.until.isoformat() if self.until else None,
        }
