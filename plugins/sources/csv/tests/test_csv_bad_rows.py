"""Bad rows: every one is reported, by file, line and column, and nothing is returned."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from onetomany.errors import SourceDataError
from onetomany_csv import CsvSource

ACCOUNTS_HEADER = "id,name,seats"
CONTACTS_HEADER = "id,account_id,email,phone,timezone,consent_sms"
EVENTS_HEADER = "id,name,occurred_at,account_id,contact_id"

# (case id, file kind, lines of the file, extra options, expected (line, column, reason part))
BAD_ROWS: list[tuple[str, str, list[str], dict[str, Any], tuple[int, str | None, str]]] = [
    (
        "account without id",
        "accounts",
        [ACCOUNTS_HEADER, "a1,Acme,1", ",Nameless,2"],
        {},
        (3, "id", "required"),
    ),
    (
        "contact without id",
        "contacts",
        [CONTACTS_HEADER, ",a1,ada@example.com,,,"],
        {},
        (2, "id", "required"),
    ),
    (
        "event without name",
        "events",
        [EVENTS_HEADER, "e1,,2024-05-01T09:00:00Z,a1,"],
        {},
        (2, "name", "required"),
    ),
    (
        "event without time",
        "events",
        [EVENTS_HEADER, "e1,login,,a1,"],
        {},
        (2, "occurred_at", "required"),
    ),
    (
        "event without subject",
        "events",
        [EVENTS_HEADER, "e1,login,2024-05-01T09:00:00Z,,"],
        {},
        (2, "account_id", "neither an account nor a contact"),
    ),
    (
        "NUL in an account name",
        "accounts",
        [ACCOUNTS_HEADER, "a1,Ac\x00me,1"],
        {},
        (2, "name", "NUL"),
    ),
    (
        "NUL in a contact's trait-free field",
        "contacts",
        [CONTACTS_HEADER, "c1,a\x001,ada@example.com,,,"],
        {},
        (2, "account_id", "NUL"),
    ),
    (
        "NUL in an event property",
        "events",
        ["id,name,occurred_at,account_id,plan", "e1,login,2024-05-01T09:00:00Z,a1,p\x00ro"],
        {},
        (2, "plan", "NUL"),
    ),
    (
        "int trait not a number",
        "accounts",
        [ACCOUNTS_HEADER, "a1,Acme,lots"],
        {"types": {"seats": "int"}},
        (2, "seats", "whole number"),
    ),
    (
        "int trait with decimals",
        "accounts",
        [ACCOUNTS_HEADER, "a1,Acme,2.5"],
        {"types": {"seats": "int"}},
        (2, "seats", "whole number"),
    ),
    (
        "float trait not a number",
        "accounts",
        [ACCOUNTS_HEADER, "a1,Acme,nan"],
        {"types": {"seats": "float"}},
        (2, "seats", "number"),
    ),
    (
        "float trait overflowing to infinity",
        "accounts",
        [ACCOUNTS_HEADER, "a1,Acme,1e999"],
        {"types": {"seats": "float"}},
        (2, "seats", "number"),
    ),
    (
        "bool trait not a boolean",
        "accounts",
        [ACCOUNTS_HEADER, "a1,Acme,maybe"],
        {"types": {"seats": "bool"}},
        (2, "seats", "yes/no"),
    ),
    (
        "date trait unparseable",
        "accounts",
        [ACCOUNTS_HEADER, "a1,Acme,31/01/2025"],
        {"types": {"seats": "date"}},
        (2, "seats", "ISO 8601 date"),
    ),
    (
        "datetime trait naive",
        "accounts",
        [ACCOUNTS_HEADER, "a1,Acme,2025-01-31T10:00:00"],
        {"types": {"seats": "datetime"}},
        (2, "seats", "no timezone"),
    ),
    (
        "invalid email",
        "contacts",
        [CONTACTS_HEADER, "c1,a1,not-an-email,,,"],
        {},
        (2, "email", "@"),
    ),
    (
        "invalid email under a mapped header",
        "contacts",
        ["id,E-mail", "c1,ada@"],
        {"columns": {"contacts": {"email": "E-mail"}}},
        (2, "E-mail", ""),
    ),
    (
        "invalid phone",
        "contacts",
        [CONTACTS_HEADER, "c1,a1,,12345,,"],
        {},
        (2, "phone", "E.164"),
    ),
    (
        "invalid timezone",
        "contacts",
        [CONTACTS_HEADER, "c1,a1,,,Mars/Olympus,"],
        {},
        (2, "timezone", "IANA"),
    ),
    (
        "consent not a boolean",
        "contacts",
        [CONTACTS_HEADER, "c1,a1,,,,perhaps"],
        {},
        (2, "consent_sms", "yes/no"),
    ),
    (
        "naive event time",
        "events",
        [EVENTS_HEADER, "e1,login,2024-05-01T09:00:00,a1,"],
        {},
        (2, "occurred_at", "no timezone"),
    ),
    (
        "unparseable event time",
        "events",
        [EVENTS_HEADER, "e1,login,yesterday,a1,"],
        {},
        (2, "occurred_at", "ISO 8601"),
    ),
    (
        "event time out of range in UTC",
        "events",
        [EVENTS_HEADER, "e1,login,0001-01-01T00:00:00+05:00,a1,"],
        {},
        (2, "occurred_at", "out of range"),
    ),
    (
        "event time in a daylight-saving gap",
        "events",
        [EVENTS_HEADER, "e1,login,2024-03-31T01:30:00,a1,"],
        {"timezone": "Europe/Lisbon"},
        (2, "occurred_at", "does not exist"),
    ),
    (
        "event time under a mapped header",
        "events",
        ["name,When,account_id", "login,soon,a1"],
        {"columns": {"events": {"occurred_at": "When"}}},
        (2, "When", "ISO 8601"),
    ),
    (
        "too few cells",
        "accounts",
        [ACCOUNTS_HEADER, "a1,Acme"],
        {},
        (2, None, "2 cells but the header has 3"),
    ),
    (
        "too many cells",
        "accounts",
        [ACCOUNTS_HEADER, "a1,Acme,3,extra"],
        {},
        (2, None, "4 cells but the header has 3"),
    ),
    (
        "value under a column without header",
        "accounts",
        ["id,name,", "a1,Acme,stray"],
        {},
        (2, None, "no header"),
    ),
    (
        "duplicate account id",
        "accounts",
        [ACCOUNTS_HEADER, "a1,Acme,1", "a2,Globex,2", "a1,Initech,3"],
        {},
        (4, "id", "also on line 2"),
    ),
    (
        "duplicate contact id",
        "contacts",
        [CONTACTS_HEADER, "c1,a1,,,,", "c1,a2,,,,"],
        {},
        (3, "id", "also on line 2"),
    ),
    (
        "duplicate event id",
        "events",
        [EVENTS_HEADER, "e1,login,2024-05-01T09:00:00Z,a1,", "e1,logout,2024-05-02T09:00:00Z,a1,"],
        {},
        (3, "id", "also on line 2"),
    ),
    (
        "duplicate event without id",
        "events",
        ["name,occurred_at,account_id", *["login,2024-05-01T09:00:00Z,a1"] * 2],
        {},
        (3, None, "repeats line 2"),
    ),
    (
        "line numbers count the lines of multi-line cells",
        "accounts",
        [ACCOUNTS_HEADER, 'a1,"Acme', 'Corp",1', "", ",Nameless,2"],
        {},
        (5, "id", "required"),
    ),
]


@pytest.mark.parametrize(
    ("kind", "lines", "options", "expected"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD_ROWS],
)
def test_bad_row_is_reported_by_file_line_and_column(
    write_csv: Callable[..., Path],
    make_source: Callable[..., CsvSource],
    kind: str,
    lines: Sequence[str],
    options: dict[str, Any],
    expected: tuple[int, str | None, str],
) -> None:
    path = write_csv(f"{kind}.csv", lines)
    source = make_source(**{kind: f"{kind}.csv"}, **options)

    with pytest.raises(SourceDataError) as caught:
        source.sync()

    line, column, reason = expected
    (row,) = caught.value.rows
    assert (row.file, row.line, row.column) == (str(path), line, column)
    assert reason in row.reason
    assert caught.value.source == "crm"


def test_every_bad_row_of_every_file_is_reported_at_once(
    write_csv: Callable[..., Path], make_source: Callable[..., CsvSource]
) -> None:
    accounts = write_csv(
        "accounts.csv", [ACCOUNTS_HEADER, ",Nameless,x", "a1,Acme,1", "a2,Globex,2,extra"]
    )
    contacts = write_csv("contacts.csv", [CONTACTS_HEADER, "c1,a1,bad-email,12345,,", "c2,a1,,,,"])
    events = write_csv("events.csv", [EVENTS_HEADER, "e1,login,yesterday,,", "e2,,,a1,"])
    source = make_source(
        accounts="accounts.csv",
        contacts="contacts.csv",
        events="events.csv",
        types={"seats": "int"},
    )

    with pytest.raises(SourceDataError) as caught:
        source.sync()

    assert [(row.file, row.line, row.column) for row in caught.value.rows] == [
        (str(accounts), 2, "id"),
        (str(accounts), 2, "seats"),
        (str(accounts), 4, None),
        (str(contacts), 2, "email"),
        (str(contacts), 2, "phone"),
        (str(events), 2, "occurred_at"),
        (str(events), 2, "account_id"),
        (str(events), 3, "name"),
        (str(events), 3, "occurred_at"),
    ]
    assert "9 bad row(s), nothing imported" in str(caught.value)


def test_an_old_bad_event_fails_an_incremental_sync_too(
    write_csv: Callable[..., Path], make_source: Callable[..., CsvSource]
) -> None:
    write_csv(
        "events.csv",
        [EVENTS_HEADER, "e1,login,2020-01-01T00:00:00,a1,", "e2,login,2024-05-01T00:00:00Z,a1,"],
    )

    with pytest.raises(SourceDataError) as caught:
        make_source(events="events.csv").sync(cursor="2023-01-01T00:00:00+00:00")

    assert [(row.line, row.column) for row in caught.value.rows] == [(2, "occurred_at")]


def test_a_row_csv_cannot_parse_ends_the_file_with_a_problem(
    tmp_path: Path, make_source: Callable[..., CsvSource]
) -> None:
    # csv refuses a cell beyond its field size limit (128 KiB) and cannot read on after it.
    huge = "x" * 200_000
    (tmp_path / "accounts.csv").write_text(f"id,name\na1,Acme\na2,{huge}\na3,Initech\n")

    with pytest.raises(SourceDataError) as caught:
        make_source(accounts="accounts.csv").sync()

    (row,) = caught.value.rows
    assert (row.line, row.column) == (3, None)
    assert "cannot parse" in row.reason
