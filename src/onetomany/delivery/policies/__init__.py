"""The send policies the dispatcher runs on each claimed row, one module per policy.

Each is a :class:`~onetomany.delivery.policy.Policy`: ``rule(pending, now)`` gives one
:class:`~onetomany.delivery.policy.Ruling` per row, a failed check with ``until`` deferring the
row and one without skipping it. Recipient respect:

* :class:`SuppressionPolicy` (``suppression``): nothing reaches a suppressed address;
* :class:`ConsentPolicy` (``consent``): the contact's consent per channel and topic.
"""

from onetomany.delivery.policies.consent import ConsentPolicy
from onetomany.delivery.policies.suppression import SuppressionPolicy

__all__ = ["ConsentPolicy", "SuppressionPolicy"]
