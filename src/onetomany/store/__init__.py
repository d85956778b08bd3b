"""Persistence: profiles, events, the outbox, deliveries and the in-app inbox."""

from onetomany.store.store import (
    DEFAULT_URL,
    EventPosition,
    InboxItem,
    NewTouch,
    OutboxRow,
    Outcome,
    Store,
    normalize_url,
)

__all__ = [
    "DEFAULT_URL",
    "EventPosition",
    "InboxItem",
    "NewTouch",
    "OutboxRow",
    "Outcome",
    "Store",
    "normalize_url",
]
