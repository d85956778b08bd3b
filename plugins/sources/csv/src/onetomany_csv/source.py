"""The CSV source: accounts, contacts and events read from CSV files, all or nothing.

A sync reads every configured file in full and checks every row before it returns anything:
header problems raise :class:`~onetomany.errors.ConfigError`, bad rows one
:class:`~onetomany.errors.SourceDataError` listing all of them. Incremental syncs filter
events by time only after the whole file has been checked, so a bad old row is still found.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Protocol, TypeVar

from onetomany.errors import ConfigError, ConfigErrors, InputError, SourceDataError, SourceRow
from onetomany.plugins.settings import PluginSettings
from onetomany.plugins.sources import Source, SyncResult
from onetomany_csv.layout import Layout, resolve_layout
from onetomany_csv.options import CsvOptions, option_error, read_options
from onetomany_csv.records import Context, Row, build_account, build_contact, build_event
from onetomany_csv.table import Table, TableError, read_table


class _Identified(Protocol):
    @property
    def id(self) -> str: ...


T = TypeVar("T", bound=_Identified)


class CsvSource(Source):
    """Reads accounts, contacts and events from up to three CSV files.

    Options are checked when the source is created; the files are read on every sync.
    """

    def __init__(self, settings: PluginSettings) -> None:
        super().__init__(settings)
        self.options: CsvOptions = read_options(settings)

    def sync(self, *, cursor: str | None = None) -> SyncResult:
        """Everything in the files; with ``cursor``, only events after it.

        The returned cursor is the time of the newest event returned, or ``cursor`` itself
        when there is none, so it never moves backwards.
        """
        since = self._since(cursor)
        tables = self._open_tables()
        problems: list[SourceRow] = []
        accounts = self._build(tables, "accounts", build_account, problems)
        contacts = self._build(tables, "contacts", build_contact, problems)
        events = self._build(tables, "events", build_event, problems)
        if problems:
            raise SourceDataError(self.settings.name, problems)
        if since is not None:
            events = [event for event in events if event.occurred_at > since]
        newest = max((event.occurred_at for event in events), default=None)
        return SyncResult(
            accounts=accounts,
            contacts=contacts,
            events=events,
            cursor=newest.isoformat() if newest is not None else cursor,
        )

    def _since(self, cursor: str | None) -> datetime | None:
        if cursor is None:
            return None
        try:
            since = datetime.fromisoformat(cursor)
        except ValueError:
            since = None
        if since is None or since.utcoffset() is None:
            raise InputError(
                f"source {self.settings.name!r}: cursor {cursor!r} is not an ISO 8601 "
                "timestamp with a timezone; pass back the cursor a sync returned"
            )
        return since

    def _open_tables(self) -> dict[str, tuple[Table, Layout]]:
        """Every configured file with its layout; all header problems raised together."""
        tables: dict[str, tuple[Table, Layout]] = {}
        errors: list[ConfigError] = []
        for kind in self.options.files:
            try:
                tables[kind] = self._open_table(kind)
            except ConfigErrors as exc:
                errors.extend(exc.errors)
            except ConfigError as exc:
                errors.append(exc)
        if not errors:
            errors = self._unused_types(layout for _, layout in tables.values())
        if errors:
            raise errors[0] if len(errors) == 1 else ConfigErrors(errors)
        return tables

    def _open_table(self, kind: str) -> tuple[Table, Layout]:
        options = self.options
        try:
            table = read_table(
                options.files[kind], delimiter=options.delimiter, encoding=options.encoding
            )
        except TableError as exc:
            raise option_error(self.settings, kind, str(exc)) from exc
        key = f"{self.settings.name}.columns.{kind}"
        layout = resolve_layout(kind, table.file, table.header, options.columns.get(kind, {}), key)
        return table, layout

    def _unused_types(self, layouts: Iterable[Layout]) -> list[ConfigError]:
        # A misspelt trait in `types` would otherwise leave that trait a string, unnoticed.
        traits = {name for layout in layouts for name in layout.extras}
        return [
            option_error(self.settings, f"types.{name}", "no file has a trait column of that name")
            for name in self.options.types
            if name not in traits
        ]

    def _build(
        self,
        tables: dict[str, tuple[Table, Layout]],
        kind: str,
        build: Callable[[Row], T | None],
        problems: list[SourceRow],
    ) -> list[T]:
        """Build every record of one file, adding its problems to ``problems`` by line."""
        if kind not in tables:
            return []
        table, layout = tables[kind]
        context = Context(
            file=table.file, layout=layout, types=self.options.types, zone=self.options.zone
        )
        built: list[T] = []
        found: list[SourceRow] = list(table.problems)
        first_line: dict[str, int] = {}
        for record in table.records:
            row = Row(context, record)
            item = build(row)
            if item is not None:
                _check_unique(row, item.id, first_line)
                if not row.problems:
                    built.append(item)
            found += row.problems
        problems += sorted(found, key=lambda problem: problem.line)
        return built


def _check_unique(row: Row, item_id: str, first_line: dict[str, int]) -> None:
    first = first_line.setdefault(item_id, row.line)
    if first == row.line:
        return
    if row.text("id") is None:
        row.note(
            None,
            f"repeats line {first}: an event without an id is known by its content; "
            "add an id column to tell such events apart",
        )
    else:
        row.note("id", f"duplicate id {item_id!r}, also on line {first}")
