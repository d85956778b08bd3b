"""Which column of a file holds which field: a file's header matched against ``columns``.

A field is read from the header the ``columns`` option maps it to, else from a header with
the field's own name. Every other column is kept as a trait (a property, for events) under
its header, or under the name ``columns`` gives it. Header problems are configuration
problems: they are raised as :class:`~onetomany.errors.ConfigError` before any row is read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

import attrs

from onetomany.errors import ConfigError, ConfigErrors

#: The fields each file can have besides its traits, in the order of the model's attributes.
FIELDS: Final[Mapping[str, tuple[str, ...]]] = {
    "accounts": ("id", "name"),
    "contacts": ("id", "account_id", "name", "email", "phone", "role", "locale", "timezone"),
    "events": ("id", "name", "occurred_at", "account_id", "contact_id"),
}

_REQUIRED: Final[Mapping[str, tuple[str, ...]]] = {
    "accounts": ("id",),
    "contacts": ("id",),
    "events": ("name", "occurred_at"),
}

#: An event must name its subject; either of these columns can.
EVENT_SUBJECTS: Final = ("account_id", "contact_id")


@attrs.frozen(kw_only=True)
class Layout:
    """Where one file keeps its fields (``fields``) and its traits (``extras``), by header."""

    kind: str
    fields: Mapping[str, str]
    extras: Mapping[str, str]

    def header(self, name: str) -> str | None:
        """The header of field or trait ``name``, ``None`` when the file has no such column."""
        return self.fields.get(name) or self.extras.get(name)


def resolve_layout(
    kind: str, file: str, header: Sequence[str], columns: Mapping[str, str], key: str
) -> Layout:
    """Match ``header`` against the ``columns`` mapping of a ``kind`` file.

    ``key`` is the option path of that mapping (``crm.columns.contacts``), for errors. Every
    problem is collected and raised together.
    """
    names = _names(header, columns)
    fields = {name: head for name, head in names.items() if name in FIELDS[kind]}
    errors = [
        *_header_errors(file, header, columns, key),
        *_clashes(file, header, columns, key),
        *_missing_fields(kind, file, fields, key),
    ]
    if errors:
        raise errors[0] if len(errors) == 1 else ConfigErrors(errors)
    extras = {name: head for name, head in names.items() if name not in fields}
    return Layout(kind=kind, fields=fields, extras=extras)


def _names(header: Sequence[str], columns: Mapping[str, str]) -> dict[str, str]:
    """Our name for each column: the one ``columns`` gives it, else its header."""
    names = dict(columns)
    claimed = set(columns.values())
    for head in header:
        if head and head not in claimed:
            names.setdefault(head, head)
    return names


def _clashes(
    file: str, header: Sequence[str], columns: Mapping[str, str], key: str
) -> list[ConfigError]:
    # An unmapped column named like a mapped one would silently shadow it or be dropped;
    # neither is safe to guess, so the program must map it to a name of its own.
    claimed = set(columns.values())
    return [
        ConfigError(
            f"column {head!r} is named like the column {columns[head]!r} is mapped to; "
            "map it to another name",
            file=file,
            key=f"{key}.{head}",
        )
        for head in header
        if head in columns and head not in claimed
    ]


def _header_errors(
    file: str, header: Sequence[str], columns: Mapping[str, str], key: str
) -> list[ConfigError]:
    errors: list[ConfigError] = []
    seen: set[str] = set()
    for head in header:
        if head and head in seen:
            errors.append(ConfigError(f"the header has two columns named {head!r}", file=file))
        seen.add(head)
    present = ", ".join(repr(head) for head in header if head)
    used_by: dict[str, str] = {}
    for name, head in columns.items():
        if head not in seen:
            reason = f"expected a column {head!r} for {name!r}, but the header has {present}"
            errors.append(ConfigError(reason, file=file, key=f"{key}.{name}"))
        if head in used_by:
            reason = f"column {head!r} is mapped to both {used_by[head]!r} and {name!r}"
            errors.append(ConfigError(reason, file=file, key=f"{key}.{name}"))
        used_by.setdefault(head, name)
    return errors


def _missing_fields(kind: str, file: str, fields: Mapping[str, str], key: str) -> list[ConfigError]:
    errors = [
        ConfigError(
            f"the header has no {field!r} column; name one {field!r} or map it in columns",
            file=file,
            key=f"{key}.{field}",
        )
        for field in _REQUIRED[kind]
        if field not in fields
    ]
    if kind == "events" and not any(subject in fields for subject in EVENT_SUBJECTS):
        reason = "the header has neither an 'account_id' nor a 'contact_id' column"
        errors.append(ConfigError(reason, file=file, key=key))
    return errors
