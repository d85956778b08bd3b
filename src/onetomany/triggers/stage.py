"""``trigger = { stage = "onboarding.setup", on = "overdue" }``: once per stage move.

Journey tracking (:mod:`onetomany.tracking.journeys`) records each stage entry, completion and
overrun as a ``stage_entered`` / ``stage_completed`` / ``stage_overdue`` event; this kind
reacts to those.
"""

from datetime import datetime

from onetomany.model import Contact
from onetomany.model.decisions import Check
from onetomany.rules.triggers import StageTrigger
from onetomany.store.queries.journeys import journey_state
from onetomany.triggers.base import TickContext, when
from onetomany.triggers.events import EventDrivenKind


def stage_of(
    context: TickContext, trigger: StageTrigger, contact: Contact, now: datetime
) -> list[Check]:
    """Where the contact's account is in the trigger's journey."""
    if contact.account_id is None:
        return [Check.info("journey", "the contact has no account")]
    state = journey_state(context.store, trigger.journey, contact.account_id)
    if state is None:
        why = f"account {contact.account_id!r} has not entered journey {trigger.journey!r}"
        return [Check.info("journey", why)]
    why = (
        f"account {contact.account_id!r} is in stage {trigger.journey}.{state.stage} since "
        f"{when(state.entered_at)} (entry {state.entry_id})"
    )
    if state.completed_at is not None:
        why += f", completed {when(state.completed_at)}"
    if state.overdue_at is not None:
        why += f", overdue since {when(state.overdue_at)}"
    return [Check.info("journey", why, stage=state.stage, entry_id=state.entry_id)]


KIND = EventDrivenKind(name="stage", trigger=StageTrigger, state=stage_of)
