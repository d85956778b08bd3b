"""Trigger kinds, one module each: what makes a touch due, decided each tick.

Every kind implements :class:`~onetomany.triggers.base.TriggerKind`: its trigger class (data
and ``program.toml`` form, pure, in :mod:`onetomany.rules.triggers`) and ``candidates``, which
reads the store and proposes one :class:`~onetomany.model.decisions.Decision` per recipient
and occurrence. :meth:`onetomany.Engine.tick` loops over :data:`KINDS`, in this order: the
event-driven kinds for each batch of the event log, then the time-driven ones.

Adding a kind: its trigger class in :mod:`onetomany.rules.triggers` (listed in
``TRIGGER_TYPES``, which reads ``program.toml``), its module here, and one line below.
"""

from __future__ import annotations

from onetomany.rules.triggers import Trigger
from onetomany.triggers import absence, cadence, engagement, event, segment, stage
from onetomany.triggers.base import Candidates, TickContext, TriggerKind

__all__ = ["KINDS", "Candidates", "TickContext", "TriggerKind", "kind_of"]

#: Every trigger kind the engine runs, in the order a tick asks them.
KINDS: tuple[TriggerKind, ...] = (
    event.KIND,
    segment.KIND,
    stage.KIND,
    absence.KIND,
    cadence.KIND,
    engagement.KIND,
)


def kind_of(trigger: Trigger) -> TriggerKind:
    """The kind that runs ``trigger``."""
    for kind in KINDS:
        if type(trigger) is kind.trigger:
            return kind
    raise LookupError(f"no trigger kind runs {type(trigger).__name__}")
