"""onetomany: one-to-many customer success, embedded in your Python backend."""

from onetomany.channels import Channel
from onetomany.clock import Clock, FrozenClock, SystemClock
from onetomany.hookspecs import hookimpl
from onetomany.model import (
    Account,
    ChannelKind,
    Contact,
    Delivery,
    DeliveryResult,
    Event,
    Message,
)
from onetomany.settings import PluginSettings
from onetomany.sources import Source, SyncResult

__version__ = "0.1.0"

__all__ = [
    "Account",
    "Channel",
    "ChannelKind",
    "Clock",
    "Contact",
    "Delivery",
    "DeliveryResult",
    "Event",
    "FrozenClock",
    "Message",
    "PluginSettings",
    "Source",
    "SyncResult",
    "SystemClock",
    "__version__",
    "hookimpl",
]
