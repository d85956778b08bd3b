"""What a time-driven kind remembers between rounds: a cursor per touch, and when it holds.

A steady round of an absence, cadence or engagement touch asks only about what changed since
its last round. The cursor (``<kind>:<program>:<touch>`` in ``cursors``) records when that
round ran, how far it had read the event log, and a digest of everything the touch's outcome
was read from (the trigger, audience, re-entry rule and segment definitions): a touch whose
definition changed reads everything again. It is stored in the transaction that queues the
round's rows (:attr:`~onetomany.triggers.base.Candidates.cursors`), so a crash in between
repeats the round rather than skipping it.

Skipping the subjects that did not change is right only while nothing else that moves with
time decides the touch: a segment that counts events or reads tiers, journeys or health, and
the ``stage`` and ``period`` re-entry rules, make :func:`shape` return None, and the touch
reads everything every round, as before.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from onetomany.program import Touch
from onetomany.rules.segments import SegmentSet
from onetomany.rules.segments.ast import (
    And,
    Arith,
    Between,
    Compare,
    Exists,
    Expr,
    Field,
    In,
    Literal,
    Neg,
    Not,
    Or,
    SegmentRef,
    walk,
)
from onetomany.store import EventPosition

#: Nodes whose value changes only when a profile is saved: a segment made of them alone
#: lets a round skip the subjects whose profiles did not change.
_ON_PROFILES = (And, Arith, Between, Compare, Exists, Field, In, Literal, Neg, Not, Or, SegmentRef)


def shape(segments: SegmentSet, touch: Touch, *read: object) -> str | None:
    """What a round's cursor is valid for (``read``, the touch's audience, re-entry rule and
    segment); None when the touch must read everything each round (see the module's text)."""
    if touch.reentry.kind in ("stage", "period"):
        return None
    definitions: list[str] = []
    pending = [touch.segment] if touch.segment else []
    seen = set(pending)
    while pending:
        name = pending.pop()
        expr: Expr = segments.expr(name)
        definitions.append(f"{name}={expr!r}")
        for node in walk(expr):
            if not isinstance(node, _ON_PROFILES):
                return None
            if isinstance(node, SegmentRef) and node.name not in seen:
                seen.add(node.name)
                pending.append(node.name)
    return digest(*read, touch.audience, touch.reentry, touch.segment, sorted(definitions))


def digest(*read: object) -> str:
    """A short digest of what a round read its answer from."""
    return hashlib.sha256(repr(read).encode()).hexdigest()[:16]


def cursor_name(kind: str, program: str, touch: Touch) -> str:
    return f"{kind}:{program}:{touch.name}"


def cursor_value(shape: str, now: datetime, log: EventPosition, **more: Any) -> str:
    """A round's cursor: its shape, when it ran, how far it had read the log, and ``more``."""
    return json.dumps({"shape": shape, "at": now.isoformat(), "log": str(log), **more})


def last_round(stored: str | None, shape: str, now: datetime) -> Mapping[str, Any] | None:
    """The last round's cursor as stored, with ``at`` as a datetime and ``log`` as a position;
    None (read everything) without a usable one: the first round, a changed touch, or a clock
    that went back."""
    if stored is None:
        return None
    last = json.loads(stored)
    then = datetime.fromisoformat(last["at"])
    if last.get("shape") != shape or then > now:
        return None
    return {**last, "at": then, "log": EventPosition.parse(last["log"])}
