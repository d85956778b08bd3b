"""The program's structure as a Mermaid flowchart: journeys, touches and what triggers them.

Each journey is a chain of stages; each touch is a box (its channel in brackets) with an
arrow from what fires it: an event, a stage move, another touch's unopened message (an
escalation ladder), or a box naming its trigger (segment, absence, cadence). A touch without
a trigger is sent by hand.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from onetomany.rules.triggers import EngagementTrigger, EventTrigger, StageTrigger

if TYPE_CHECKING:
    from onetomany.program import Program


def _id(*parts: str) -> str:
    return "_".join(re.sub(r"[^A-Za-z0-9_]", "_", p) for p in parts)


def _label(text: str) -> str:
    return '"' + text.replace('"', "'") + '"'


def mermaid(program: Program) -> str:
    """The Mermaid source (``flowchart LR``) of ``program``."""
    lines = ["flowchart LR"]
    for journey in program.journeys.values():
        lines.append(f"  subgraph {_id('journey', journey.name)}[{_label(journey.name)}]")
        names = [_id("stage", journey.name, s.name) for s in journey.stages]
        for node, stage in zip(names, journey.stages, strict=True):
            ideal = f" ({stage.ideal_days} d)" if stage.ideal_days else ""
            lines.append(f"    {node}([{_label(stage.name + ideal)}])")
        if len(names) > 1:
            lines.append("    " + " --> ".join(names))
        lines.append("  end")
    events: set[str] = set()
    for touch in program.touches:
        node = _id("touch", touch.name)
        lines.append(f"  {node}[{_label(f'{touch.name} [{touch.channel}]')}]")
        trigger = touch.trigger
        if isinstance(trigger, EngagementTrigger):
            what = _label(f"{trigger.outcome.replace('_', ' ')} {trigger.days} d")
            lines.append(f"  {_id('touch', trigger.touch)} -. {what} .-> {node}")
        elif isinstance(trigger, StageTrigger):
            moved = _id("stage", trigger.journey, trigger.stage)
            lines.append(f"  {moved} -- {trigger.on} --> {node}")
        elif isinstance(trigger, EventTrigger):
            source = _id("event", trigger.event)
            if trigger.event not in events:
                events.add(trigger.event)
                lines.append(f"  {source}(({_label(trigger.event)}))")
            lines.append(f"  {source} --> {node}")
        elif trigger is not None:
            source = _id("trigger", touch.name)
            lines.append(f"  {source}{{{{{_label(trigger.describe())}}}}} --> {node}")
        else:
            lines.append(f"  {_id('manual', touch.name)}[/{_label('broadcast')}/] --> {node}")
    return "\n".join(lines) + "\n"
