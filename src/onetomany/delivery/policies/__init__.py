"""The send policies the dispatcher runs on each claimed row, one module per policy.

Each is a :class:`~onetomany.delivery.policy.Policy`: ``rule(pending, now)`` gives one
:class:`~onetomany.delivery.policy.Ruling` per row, a failed check with ``until`` deferring the
row and one without skipping it. In the order the engine runs them:

* :class:`SuppressionPolicy` (``suppression``): nothing reaches a suppressed address;
* :class:`ConsentPolicy` (``consent``): the contact's consent per channel and topic;
* :class:`WhatsAppWindow` (``whatsapp-window``): free-form WhatsApp text only within 24 hours
  of the contact's last inbound message;
* :class:`QuietHours` (``quiet-hours``): send windows on the recipient's wall clock;
* :class:`ReservedDays` (``reserved-days``): days a segment receives only its reserved touches;
* :class:`FrequencyCaps` (``caps``): at most N touches per rolling window; runs last, since it
  takes a slot for each row it lets through.
"""

from __future__ import annotations

from onetomany.delivery.policies.caps import FrequencyCaps
from onetomany.delivery.policies.consent import ConsentPolicy
from onetomany.delivery.policies.quiet_hours import QuietHours
from onetomany.delivery.policies.reserved_days import ReservedDays
from onetomany.delivery.policies.suppression import SuppressionPolicy
from onetomany.delivery.policies.whatsapp_window import WhatsAppWindow
from onetomany.delivery.policy import Policy
from onetomany.program import Program
from onetomany.rules.segments import SegmentSet
from onetomany.store import Store
from onetomany.templating import TemplateSet

__all__ = [
    "ConsentPolicy",
    "FrequencyCaps",
    "QuietHours",
    "ReservedDays",
    "SuppressionPolicy",
    "WhatsAppWindow",
    "time_policies",
]


def time_policies(
    program: Program, store: Store, templates: TemplateSet, segments: SegmentSet
) -> list[Policy]:
    """The program's time and frequency policies, in the order they run after suppression and
    consent: the WhatsApp window, quiet hours, reserved days, then frequency caps (last: a
    cap spends a slot on every row it lets through, so only rows that will go may reach it)."""
    policies: list[Policy] = [
        WhatsAppWindow(store, templates),
        QuietHours(program.windows),
    ]
    if program.reserved:
        policies.append(ReservedDays(store, program.reserved, segments, program.windows.timezone))
    if program.caps:
        priorities = {t.name: t.priority for t in program.touches if t.priority}
        policies.append(FrequencyCaps(store, program.caps, priorities))
    return policies
