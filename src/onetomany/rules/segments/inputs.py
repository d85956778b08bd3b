"""Whether a segment's answer can change while nothing is written: the test a steady round
applies before it asks only about what changed since its last one.

Most of the language reads profiles: an answer made of those alone changes only when a
profile is saved. ``count()`` over all time and ``last()`` (inside ``exists()``/``missing()``)
change only when an event is stored, or when the clock reaches an event stored with a later
date. Everything else moves with time on its own: ``days_since()``, ``count()`` over the last
N days, ``tier()``, ``health()``, ``stage()``, ``days_in_stage()``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from onetomany.rules.segments.ast import (
    And,
    Arith,
    Between,
    Compare,
    Count,
    Exists,
    Expr,
    Field,
    In,
    Last,
    Literal,
    Neg,
    Not,
    Or,
    SegmentRef,
    walk,
)
from onetomany.rules.segments.named import SegmentSet

#: Nodes whose value changes only when a profile is saved.
ON_PROFILES = (And, Arith, Between, Compare, Exists, Field, In, Literal, Neg, Not, Or, SegmentRef)


def written_inputs(
    roots: Iterable[Expr], segments: SegmentSet | None, *, events: bool = False
) -> list[str] | None:
    """The definitions (``name=expr``) of the named segments ``roots`` reach, when their
    answer changes only with what is written (profiles; with ``events``, also events); None
    when it can change with time alone, or names a segment ``segments`` does not have."""
    definitions: dict[str, str] = {}
    for node in _reached(roots, segments):
        if isinstance(node, SegmentRef):
            if segments is None or node.name not in segments:
                return None
            definitions[node.name] = f"{node.name}={segments.expr(node.name)!r}"
        elif not _written(node, events):
            return None
    return list(definitions.values())


def events_read(roots: Iterable[Expr], segments: SegmentSet | None) -> set[str]:
    """The names of the events ``roots`` count or date, through the named segments they
    reach."""
    return {n.event for n in _reached(roots, segments) if isinstance(n, Count | Last)}


def _reached(roots: Iterable[Expr], segments: SegmentSet | None) -> Iterator[Expr]:
    """Every node of ``roots`` and of the named segments they reach, each segment once."""
    pending = list(roots)
    seen: set[str] = set()
    while pending:
        for node in walk(pending.pop()):
            yield node
            if not isinstance(node, SegmentRef) or segments is None or node.name in seen:
                continue
            if node.name in segments:
                seen.add(node.name)
                pending.append(segments.expr(node.name))


def _written(node: Expr, events: bool) -> bool:
    if isinstance(node, ON_PROFILES):
        return True
    if not events:
        return False
    return isinstance(node, Last) or (isinstance(node, Count) and node.days is None)
