"""Building accounts, contacts and events from records, noting every bad cell on the way.

A builder never stops at the first problem of a row: each bad cell becomes its own
:class:`~onetomany.errors.SourceRow`, so one run of a sync shows everything to fix.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import PurePath
from typing import Any, Final, TypeVar
from zoneinfo import ZoneInfo

import attrs

from onetomany.errors import InvalidContactError, InvalidEventError, SourceRow
from onetomany.model import Account, Contact, Event
from onetomany.model.plaindata import text_problem
from onetomany_csv.layout import EVENT_SUBJECTS, Layout
from onetomany_csv.table import Record
from onetomany_csv.values import CellError, converter, parse_bool, parse_timestamp

T = TypeVar("T")

#: Columns named ``consent_<kind>`` in a contacts file hold the contact's consent to ``kind``.
CONSENT_PREFIX: Final = "consent_"

# What a contact field falls back to once Contact has refused its value, so that building
# it again can reveal the next bad field of the same row.
_CONTACT_FALLBACKS: Final[Mapping[str, Any]] = {"email": None, "phone": None, "timezone": "UTC"}


@attrs.frozen(kw_only=True)
class Context:
    """What every builder needs besides the record: the file, its layout and the options."""

    file: str
    layout: Layout
    types: Mapping[str, str]
    zone: ZoneInfo | None


class Row:
    """One record being read: its cells by our names, and the problems found so far."""

    def __init__(self, context: Context, record: Record) -> None:
        self.context = context
        self.line = record.line
        self._cells = record.cells
        self.problems: list[SourceRow] = []

    def text(self, name: str) -> str | None:
        """The trimmed cell of field or trait ``name``; ``None`` when empty or absent."""
        header = self.context.layout.header(name)
        cell = (self._cells.get(header) or None) if header else None
        if cell is not None and (problem := text_problem(cell)):
            self.note(name, f"the cell {problem}")
            return None
        return cell

    def required(self, name: str) -> str | None:
        text = self.text(name)
        if text is None:
            self.note(name, "a value is required, but the cell is empty")
        return text

    def parsed(self, name: str, parse: Callable[[str], T]) -> T | None:
        """The cell of ``name`` run through ``parse``; ``None`` when empty or bad."""
        text = self.text(name)
        if text is None:
            return None
        try:
            return parse(text)
        except CellError as exc:
            self.note(name, str(exc))
            return None

    def note(self, name: str | None, reason: str) -> None:
        """Record a problem with the column of ``name`` (``None``: the row as a whole)."""
        column = (self.context.layout.header(name) or name) if name else None
        self.problems.append(SourceRow(self.context.file, self.line, column, reason))

    def traits(self, names: Iterable[str]) -> dict[str, Any]:
        """The trait columns among ``names``, typed as the ``types`` option says.

        A CSV cell cannot tell an empty string from a missing value, so an empty trait cell
        is ``None`` whatever its type.
        """
        traits: dict[str, Any] = {}
        for name in names:
            type_name = self.context.types.get(name, "str")
            traits[name] = self.parsed(name, converter(type_name, self.context.zone))
        return traits


def build_account(row: Row) -> Account | None:
    account_id = row.required("id")
    traits = row.traits(row.context.layout.extras)
    if account_id is None or row.problems:
        return None
    # Only what the file says: an absent or empty name leaves the stored one as it is.
    name = row.text("name")
    if name is None:
        return Account(id=account_id, traits=traits)
    return Account(id=account_id, name=name, traits=traits)


#: Contact fields a present column always sets: an empty cell clears the stored value.
_CLEARED_BY_EMPTY: Final = ("account_id", "email", "phone", "role")
#: Contact fields only a non-empty cell sets: an empty one keeps the stored value.
_KEPT_IF_EMPTY: Final = ("name", "locale", "timezone")


def build_contact(row: Row) -> Contact | None:
    """The contact of ``row``, giving only the fields its file has columns for.

    A file without a ``locale`` column (say) leaves each stored contact's locale as it is; a
    new contact gets the default. Traits and consent merge into the stored ones; an empty
    trait cell removes the trait, an empty consent cell says nothing.
    """
    contact_id = row.required("id")
    layout = row.context.layout
    extras = layout.extras
    consent_columns = {name for name in extras if _consent_kind(name)}
    consent = {
        _consent_kind(name): answer
        for name in consent_columns
        if (answer := row.parsed(name, parse_bool)) is not None
    }
    traits = row.traits(name for name in extras if name not in consent_columns)
    # A stand-in id, already reported as missing, so the row's other fields still get checked.
    fields: dict[str, Any] = {"id": contact_id or "(no id)", "consent": consent, "traits": traits}
    fields |= {name: row.text(name) for name in _CLEARED_BY_EMPTY if layout.header(name)}
    fields |= {name: text for name in _KEPT_IF_EMPTY if (text := row.text(name)) is not None}
    contact = _checked_contact(row, fields)
    return None if contact_id is None or row.problems else contact


def _consent_kind(name: str) -> str:
    """The channel kind a ``consent_<kind>`` column is about; ``""`` for other columns."""
    return name.removeprefix(CONSENT_PREFIX) if name.startswith(CONSENT_PREFIX) else ""


def _checked_contact(row: Row, fields: dict[str, Any]) -> Contact | None:
    # Contact stops at its first invalid field; falling back and building again finds the
    # others, so a row with a bad email and a bad phone reports both.
    while True:
        try:
            return Contact(**fields)
        except InvalidContactError as exc:
            row.note(exc.field, exc.reason)
            if (
                exc.field not in _CONTACT_FALLBACKS
                or fields[exc.field] == _CONTACT_FALLBACKS[exc.field]
            ):
                return None
            fields[exc.field] = _CONTACT_FALLBACKS[exc.field]


def build_event(row: Row) -> Event | None:
    name = row.required("name")
    occurred_at = (
        row.parsed("occurred_at", lambda text: parse_timestamp(text, row.context.zone))
        if row.required("occurred_at")
        else None
    )
    account_id, contact_id = row.text("account_id"), row.text("contact_id")
    if account_id is None and contact_id is None:
        subject = next(s for s in EVENT_SUBJECTS if row.context.layout.header(s))
        row.note(subject, "the event names neither an account nor a contact")
    properties = row.traits(row.context.layout.extras)
    if name is None or occurred_at is None or row.problems:
        return None
    event_id = row.text("id") or derived_event_id(row, name, occurred_at, account_id, contact_id)
    try:
        return Event(
            id=event_id,
            name=name,
            occurred_at=occurred_at,
            account_id=account_id,
            contact_id=contact_id,
            properties=properties,
        )
    except InvalidEventError as exc:
        row.note(None, str(exc))
        return None


def derived_event_id(
    row: Row, name: str, occurred_at: datetime, account_id: str | None, contact_id: str | None
) -> str:
    """A stable id for an event row that has none: a hash of its file name and content.

    Only the file's name is hashed, not its folder, so moving the data keeps the ids. The
    content is the row's values, not its line, so rows above it may be added or removed;
    properties are hashed as written and empty ones left out, so adding a column or a
    ``types`` entry does not change the ids of rows already synced.
    """
    content = {
        "name": name,
        "occurred_at": occurred_at.isoformat(),
        "account_id": account_id,
        "contact_id": contact_id,
        "properties": {
            prop: text for prop in row.context.layout.extras if (text := row.text(prop)) is not None
        },
    }
    payload = json.dumps(
        [PurePath(row.context.file).name, content], sort_keys=True, ensure_ascii=False
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:32]
