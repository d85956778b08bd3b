"""The model layer: values, the clock and the plain-data rules (no I/O, no other layer).

The value classes live in :mod:`onetomany.model.values` and are importable from here.
"""

from onetomany.model.values import (
    UNSET,
    Account,
    ChannelKind,
    Contact,
    Delivery,
    DeliveryResult,
    Event,
    Message,
    OutboxStatus,
    Unset,
)

__all__ = [
    "UNSET",
    "Account",
    "ChannelKind",
    "Contact",
    "Delivery",
    "DeliveryResult",
    "Event",
    "Message",
    "OutboxStatus",
    "Unset",
]
