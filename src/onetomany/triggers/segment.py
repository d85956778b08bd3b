"""``trigger = { segment = "low_adoption", on = "enter" }``: once per crossing.

Segment tracking (:mod:`onetomany.tracking.segments`) records each entry and exit of a watched
segment as a ``segment_entered`` / ``segment_left`` event; this kind reacts to those.
"""

from datetime import datetime

from onetomany.model import Contact
from onetomany.model.decisions import Check
from onetomany.rules.triggers import SegmentTrigger
from onetomany.store.queries.segment_members import member_since
from onetomany.triggers.base import TickContext, when
from onetomany.triggers.events import EventDrivenKind


def membership(
    context: TickContext, trigger: SegmentTrigger, contact: Contact, now: datetime
) -> list[Check]:
    """Whether segment tracking has recorded the contact in the segment, and since when."""
    since = member_since(context.store, trigger.segment, contact.id)
    if since is None:
        why = f"not recorded as a member of segment {trigger.segment!r}"
    else:
        why = f"recorded in segment {trigger.segment!r} since {when(since)}"
    inputs = {"segment": trigger.segment, "since": since.isoformat() if since else None}
    return [Check.info("membership", why, **inputs)]


KIND = EventDrivenKind(name="segment", trigger=SegmentTrigger, state=membership)
