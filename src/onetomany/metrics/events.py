"""The events the measuring views read, named in one place.

The engine and the dispatcher write some of them (``message_sent``, ``message_opened`` through
:meth:`~onetomany.Engine.track_engagement`, ``tier_changed``, the stage events); provider
webhooks and the web surface write the rest. Each event about a message carries the message's
outbox key in ``properties["idempotency_key"]``: that is how a funnel ties it to its touch.
docs/measuring.md lists them with what they carry.
"""

from __future__ import annotations

from onetomany.rules.triggers import ENGAGEMENT_EVENTS
from onetomany.store.queries.metrics import FunnelNames

#: A provider accepted the message for the recipient's mailbox or phone (webhook).
DELIVERED = "message_delivered"
#: The message was opened (tracking pixel or provider webhook). ``properties["machine"]``
#: true marks an open made by a privacy proxy (Apple Mail Privacy Protection prefetches
#: images): it is counted apart, since only people's opens say anything.
OPENED = ENGAGEMENT_EVENTS["opened"]
#: A tracked link in the message was followed.
CLICKED = ENGAGEMENT_EVENTS["clicked"]
#: The receiving system refused the message (hard or soft bounce, from the provider).
BOUNCED = "message_bounced"
#: The recipient marked the message as spam (a provider's feedback loop).
COMPLAINED = "message_complained"
#: The recipient unsubscribed through the message's link or List-Unsubscribe.
UNSUBSCRIBED = "unsubscribed"
#: An NPS answer: ``properties["score"]`` (0-10) and ``properties["comment"]`` (optional),
#: with the survey message's key when it came through one.
NPS_ANSWERED = "nps_answered"
#: The ``properties`` key that flags a machine open.
MACHINE_FLAG = "machine"
#: The checks of a send policy: a decision skipped by one of them counts as suppressed.
POLICY_CHECKS = ("consent", "suppression", "unsubscribed", "cap", "quiet_hours", "policy")

#: What each funnel stage counts.
FUNNEL = FunnelNames(
    events={
        "delivered": (DELIVERED,),
        "opened": (OPENED,),
        "clicked": (CLICKED,),
        "bounced": (BOUNCED,),
        "complained": (COMPLAINED,),
        "unsubscribed": (UNSUBSCRIBED,),
    },
    answers=(NPS_ANSWERED,),
    machine_flag=MACHINE_FLAG,
    policy_checks=POLICY_CHECKS,
)
