"""``trigger = { segment = "low_adoption", on = "enter" }``: once per crossing.

Segment tracking (:mod:`onetomany.tracking.segments`) records each entry and exit of a watched
segment as a ``segment_entered`` / ``segment_left`` event; this kind reacts to those.
"""

from onetomany.rules.triggers import SegmentTrigger
from onetomany.triggers.events import EventDrivenKind

KIND = EventDrivenKind(name="segment", trigger=SegmentTrigger)
