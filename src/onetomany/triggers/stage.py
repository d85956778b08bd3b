"""``trigger = { stage = "onboarding.setup", on = "overdue" }``: once per stage move.

Journey tracking (:mod:`onetomany.tracking.journeys`) records each stage entry, completion and
overrun as a ``stage_entered`` / ``stage_completed`` / ``stage_overdue`` event; this kind
reacts to those.
"""

from onetomany.rules.triggers import StageTrigger
from onetomany.triggers.events import EventDrivenKind

KIND = EventDrivenKind(name="stage", trigger=StageTrigger)
