"""onetomany: one-to-many customer success, embedded in your Python backend.

What a host needs is importable from here. ``Engine``, ``Program``, ``load_program`` and
``InboxItem`` are loaded on first use: they bring in SQLAlchemy, Jinja and MJML, which
``import onetomany`` alone (for the model or to write a plugin) does not need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from onetomany.delivery.channels import Channel
from onetomany.errors import (
    ConfigError,
    ConfigErrors,
    DeliveryDeferred,
    DeliveryError,
    InputError,
    InvalidAccountError,
    InvalidContactError,
    InvalidEventError,
    MissingVariableError,
    OnetomanyError,
    PermanentDeliveryError,
    PluginError,
    PluginImportError,
    RegistrationError,
    SourceDataError,
    StoreError,
    TemplateError,
    TemplateSecurityError,
    TransientDeliveryError,
    UnknownOutcomeError,
)
from onetomany.model import (
    UNSET,
    Account,
    ChannelKind,
    Contact,
    Delivery,
    DeliveryResult,
    Event,
    Message,
)
from onetomany.model.clock import Clock, FrozenClock, SystemClock
from onetomany.model.decisions import Decision
from onetomany.plugins.hookspecs import hookimpl
from onetomany.plugins.settings import PluginSettings
from onetomany.plugins.sources import Skipped, Source, SyncPage, SyncResult

if TYPE_CHECKING:
    from onetomany.engine import Engine
    from onetomany.program import Program, load_program
    from onetomany.store import InboxItem

__version__ = "0.1.0"

#: Names loaded on first access, by the module that defines them.
_LAZY = {
    "Engine": "onetomany.engine",
    "InboxItem": "onetomany.store",
    "Program": "onetomany.program",
    "load_program": "onetomany.program",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'onetomany' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "UNSET",
    "Account",
    "Channel",
    "ChannelKind",
    "Clock",
    "ConfigError",
    "ConfigErrors",
    "Contact",
    "Decision",
    "Delivery",
    "DeliveryDeferred",
    "DeliveryError",
    "DeliveryResult",
    "Engine",
    "Event",
    "FrozenClock",
    "InboxItem",
    "InputError",
    "InvalidAccountError",
    "InvalidContactError",
    "InvalidEventError",
    "Message",
    "MissingVariableError",
    "OnetomanyError",
    "PermanentDeliveryError",
    "PluginError",
    "PluginImportError",
    "PluginSettings",
    "Program",
    "RegistrationError",
    "Skipped",
    "Source",
    "SourceDataError",
    "StoreError",
    "SyncPage",
    "SyncResult",
    "SystemClock",
    "TemplateError",
    "TemplateSecurityError",
    "TransientDeliveryError",
    "UnknownOutcomeError",
    "__version__",
    "hookimpl",
    "load_program",
]
