"""The source contract: a system of record that yields accounts, contacts and events.

A source plugin subclasses :class:`Source` and implements :meth:`Source.sync`. A sync with no
cursor is a full sync; with the cursor a previous sync returned, it yields only what changed
since. A source validates everything it reads before it returns: bad rows raise
:class:`~onetomany.errors.SourceDataError` listing each one, so the store takes all of a sync
or none of it.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

import attrs

from onetomany.model import Account, Contact, Event
from onetomany.plugins.settings import PluginSettings


@attrs.frozen(kw_only=True)
class SyncResult:
    """What one sync read, and the cursor to pass to the next incremental sync."""

    accounts: Sequence[Account] = ()
    contacts: Sequence[Contact] = ()
    events: Sequence[Event] = ()
    cursor: str | None = None


class Source(abc.ABC):
    """Reads accounts, contacts and events from one system of record."""

    def __init__(self, settings: PluginSettings) -> None:
        self.settings = settings

    @abc.abstractmethod
    def sync(self, *, cursor: str | None = None) -> SyncResult:
        """Read everything (``cursor=None``) or what changed since ``cursor``."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.settings!r}>"
