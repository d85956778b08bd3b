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

from onetomany.program import Touch
from onetomany.rules.segments import SegmentSet
from onetomany.rules.segments.ast import SegmentRef
from onetomany.rules.segments.inputs import written_inputs
from onetomany.store.round_cursors import cursor_value, digest, last_round

__all__ = ["cursor_name", "cursor_value", "digest", "last_round", "shape"]


def shape(segments: SegmentSet, touch: Touch, *read: object) -> str | None:
    """What a round's cursor is valid for (``read``, the touch's audience, re-entry rule and
    segment); None when the touch must read everything each round (see the module's text)."""
    if touch.reentry.kind in ("stage", "period"):
        return None
    roots = [SegmentRef(touch.segment)] if touch.segment else []
    definitions = written_inputs(roots, segments)
    if definitions is None:
        return None
    return digest(*read, touch.audience, touch.reentry, touch.segment, sorted(definitions))


def cursor_name(kind: str, program: str, touch: Touch) -> str:
    return f"{kind}:{program}:{touch.name}"
