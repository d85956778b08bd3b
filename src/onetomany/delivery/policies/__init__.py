"""The send policies the dispatcher runs on each claimed row, one module per policy.

Each is a :class:`~onetomany.delivery.policy.Policy`: ``rule(pending, now)`` gives one
:class:`~onetomany.delivery.policy.Ruling` per row, a failed check with ``until`` deferring the
row and one without skipping it. This package holds the time and frequency policies:

* :class:`QuietHours` (``quiet-hours``): send windows on the recipient's wall clock;
* :class:`ReservedDays` (``reserved-days``): days a segment receives only its reserved touches;
* :class:`WhatsAppWindow` (``whatsapp-window``): free-form WhatsApp text only within 24 hours
  of the contact's last inbound message;
* :class:`FrequencyCaps` (``caps``): at most N touches per rolling window; runs last, since it
  takes a slot for each row it lets through.
"""

from onetomany.delivery.policies.caps import FrequencyCaps
from onetomany.delivery.policies.quiet_hours import QuietHours
from onetomany.delivery.policies.reserved_days import ReservedDays
from onetomany.delivery.policies.whatsapp_window import WhatsAppWindow

__all__ = ["FrequencyCaps", "QuietHours", "ReservedDays", "WhatsAppWindow"]
