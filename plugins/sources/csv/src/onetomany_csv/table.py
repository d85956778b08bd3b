"""Reading one CSV file into a header and records that remember their line in the file.

Line numbers are physical lines, the header being line 1, so an error can be found in an
editor: a record whose quoted cell spans several lines is numbered by its first line.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TextIO

import attrs

from onetomany.errors import SourceRow

# Spreadsheets save with a BOM; with an encoding other than utf-8-sig it would stick to the
# first header and make it look unknown.
_BOM = "\ufeff"


class TableError(Exception):
    """The file cannot be read as a table at all (missing, undecodable, no header)."""


@attrs.frozen(kw_only=True)
class Record:
    """One data row: its first line in the file and its cells by header, trimmed."""

    line: int
    cells: Mapping[str, str]


@attrs.frozen(kw_only=True)
class Table:
    """A CSV file: its header, the rows that split into it, and the rows that did not."""

    file: str
    header: Sequence[str]
    records: Sequence[Record]
    problems: Sequence[SourceRow]


def read_table(path: Path, *, delimiter: str, encoding: str) -> Table:
    """Read ``path``; a row with more or fewer cells than the header becomes a problem."""
    if not path.is_file():
        raise TableError(f"no such file: {path}")
    file = str(path)
    try:
        with path.open(newline="", encoding=encoding) as stream:
            rows = list(_numbered_rows(stream, delimiter, file))
    except UnicodeDecodeError as exc:
        raise TableError(
            f"{path} is not valid {encoding} ({exc}); set the encoding option"
        ) from exc
    except OSError as exc:
        raise TableError(f"cannot read {path}: {exc}") from exc
    if not rows:
        raise TableError(f"{path} is empty; the first line must be a header")
    (_, first), *data = rows
    if isinstance(first, SourceRow):
        raise TableError(f"{path}: cannot read the header: {first.reason}")
    header = [cell.strip() for cell in first]
    header[0] = header[0].removeprefix(_BOM).strip()
    records: list[Record] = []
    problems: list[SourceRow] = []
    for line, cells in data:
        if isinstance(cells, SourceRow):
            problems.append(cells)
        elif misfits := _misfits(file, line, header, cells):
            problems.extend(misfits)
        else:
            records.append(Record(line=line, cells=_by_header(header, cells)))
    return Table(file=file, header=header, records=records, problems=problems)


def _numbered_rows(
    stream: TextIO, delimiter: str, file: str
) -> Iterator[tuple[int, list[str] | SourceRow]]:
    """Rows with their first line, skipping blank ones; a row csv cannot parse ends the file."""
    reader = csv.reader(stream, delimiter=delimiter)
    first_line = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            # The reader cannot resynchronise after a malformed row, so nothing after it
            # can be trusted: report where it broke and stop.
            yield first_line, SourceRow(file, first_line, None, f"cannot parse the row: {exc}")
            return
        # A row of empty cells is what spreadsheets leave below the data; it holds nothing.
        if any(cell.strip() for cell in cells):
            yield first_line, cells
        first_line = reader.line_num + 1


def _misfits(file: str, line: int, header: Sequence[str], cells: Sequence[str]) -> list[SourceRow]:
    """Why the row's cells cannot be lined up with the header, if they cannot."""
    if len(cells) != len(header):
        reason = f"has {len(cells)} cells but the header has {len(header)}"
        return [SourceRow(file, line, None, reason)]
    return [
        SourceRow(file, line, None, f"cell {position} has a value but its column has no header")
        for position, (name, cell) in enumerate(zip(header, cells, strict=True), start=1)
        if not name and cell.strip()
    ]


def _by_header(header: Sequence[str], cells: Sequence[str]) -> dict[str, str]:
    # Unnamed columns (a trailing delimiter in the header) carry nothing: _misfits made sure.
    return {name: cell.strip() for name, cell in zip(header, cells, strict=True) if name}
