"""``trigger = { event = "signed_up", where = { plan = "pro" } }``: once per matching event."""

from onetomany.rules.triggers import EventTrigger
from onetomany.triggers.events import EventDrivenKind

KIND = EventDrivenKind(name="event", trigger=EventTrigger)
