"""The source contract: a system of record that yields accounts, contacts and events.

A source plugin subclasses :class:`Source` and implements :meth:`Source.sync`. A sync with no
cursor is a full sync; with the cursor a previous sync returned, it yields only what changed
since.

``sync`` returns either one :class:`SyncResult` (a simple source: the store takes all of it or
none, in one transaction) or an iterable of them, one per page, which the engine stores one
page at a time (each page in its own transaction with its cursor), so memory stays flat in the
number of records and an interrupted sync resumes after the last page stored.

A page may carry records the source read but could not use (:class:`Skipped`, each naming the
record and why). The engine stores the rest of the page and reports the skips, but never moves
the stored cursor past a page with a skip: the next incremental sync reads that record again,
so a fixed record is picked up and a broken one keeps being reported.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator, Sequence

import attrs

from onetomany.model import Account, Contact, Event
from onetomany.plugins.settings import PluginSettings


@attrs.frozen(kw_only=True)
class Skipped:
    """A record a source read but could not turn into a profile or an event.

    ``record`` names it the way its system does (``stripe customer cus_123``, ``contacts
    row id=42``), ``reason`` says what is wrong with it.
    """

    record: str
    reason: str

    def __str__(self) -> str:
        return f"{self.record}: {self.reason}"


@attrs.frozen(kw_only=True)
class SyncResult:
    """What one sync (or one page of it) read, and the cursor to resume after it.

    ``cursor`` is where the next incremental sync starts when this page is the last one
    stored; ``None`` leaves the stored cursor as it is. ``expected`` is how many records the
    whole sync will read, when the source knows (a progress bar shows it).
    """

    accounts: Sequence[Account] = ()
    contacts: Sequence[Contact] = ()
    events: Sequence[Event] = ()
    cursor: str | None = None
    skipped: Sequence[Skipped] = ()
    expected: int | None = None

    @property
    def records(self) -> int:
        """Accounts, contacts and events in this page (skipped records not counted)."""
        return len(self.accounts) + len(self.contacts) + len(self.events)


#: One page of a streamed sync is a :class:`SyncResult`.
SyncPage = SyncResult


class Source(abc.ABC):
    """Reads accounts, contacts and events from one system of record."""

    def __init__(self, settings: PluginSettings) -> None:
        self.settings = settings

    @abc.abstractmethod
    def sync(self, *, cursor: str | None = None) -> SyncResult | Iterable[SyncPage]:
        """Read everything (``cursor=None``) or what changed since ``cursor``: one result, or
        its pages in order (a generator is read lazily, one page at a time)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.settings!r}>"


def pages(result: SyncResult | Iterable[SyncPage]) -> Iterator[SyncPage]:
    """The pages of what :meth:`Source.sync` returned: one result is one page."""
    if isinstance(result, SyncResult):
        yield result
    else:
        yield from result


def read_all(source: Source, *, cursor: str | None = None) -> SyncResult:
    """Every page of one sync gathered in memory: for callers that need the whole picture
    (validating a program, a simulation), never for storing a large source."""
    accounts: list[Account] = []
    contacts: list[Contact] = []
    events: list[Event] = []
    skipped: list[Skipped] = []
    last = cursor
    for page in pages(source.sync(cursor=cursor)):
        accounts += page.accounts
        contacts += page.contacts
        events += page.events
        skipped += page.skipped
        last = page.cursor if page.cursor is not None else last
    return SyncResult(
        accounts=accounts, contacts=contacts, events=events, cursor=last, skipped=skipped
    )
