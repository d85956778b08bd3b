"""Configuration problems: bad options and headers are ConfigErrors naming key and file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from onetomany.errors import ConfigError, ConfigErrors, InputError
from onetomany_csv import CsvSource


def test_missing_file_names_the_option_and_the_path(
    make_source: Callable[..., CsvSource], tmp_path: Path
) -> None:
    source = make_source(accounts="nowhere/accounts.csv")

    with pytest.raises(ConfigError) as caught:
        source.sync()

    assert caught.value.key == "crm.accounts"
    assert str(tmp_path / "nowhere" / "accounts.csv") in caught.value.reason


def test_every_missing_file_is_reported(make_source: Callable[..., CsvSource]) -> None:
    source = make_source(accounts="a.csv", events="e.csv")

    with pytest.raises(ConfigErrors) as caught:
        source.sync()

    assert [error.key for error in caught.value.errors] == ["crm.accounts", "crm.events"]


def test_an_empty_file_has_no_header(tmp_path: Path, make_source: Callable[..., CsvSource]) -> None:
    (tmp_path / "accounts.csv").write_text("")

    with pytest.raises(ConfigError, match="empty") as caught:
        make_source(accounts="accounts.csv").sync()

    assert caught.value.key == "crm.accounts"


def test_undecodable_file_suggests_the_encoding_option(
    tmp_path: Path, make_source: Callable[..., CsvSource]
) -> None:
    (tmp_path / "accounts.csv").write_bytes("id,name\na1,Société\n".encode("latin-1"))

    with pytest.raises(ConfigError, match="encoding option"):
        make_source(accounts="accounts.csv").sync()


@pytest.mark.parametrize(
    ("options", "key", "reason"),
    [
        pytest.param({}, "crm.accounts", "at least one of", id="no file"),
        pytest.param({"acounts": "a.csv"}, "crm.acounts", "unknown option", id="misspelt option"),
        pytest.param({"accounts": 3}, "crm.accounts", "expected str", id="path not a string"),
        pytest.param(
            {"events": "e.csv", "columns": {"event": {}}},
            "crm.columns.event",
            "expected one of",
            id="columns for an unknown file",
        ),
        pytest.param(
            {"events": "e.csv", "columns": {"events": {"name": 1}}},
            "crm.columns.events.name",
            "expected a header",
            id="header not a string",
        ),
        pytest.param(
            {"events": "e.csv", "types": {"seats": "integer"}},
            "crm.types.seats",
            "expected one of",
            id="unknown type",
        ),
        pytest.param(
            {"events": "e.csv", "timezone": "Mars/Olympus"},
            "crm.timezone",
            "unknown IANA zone",
            id="unknown timezone",
        ),
        pytest.param(
            {"events": "e.csv", "delimiter": "::"}, "crm.delimiter", "one character", id="delimiter"
        ),
        pytest.param(
            {"events": "e.csv", "encoding": "klingon"},
            "crm.encoding",
            "unknown encoding",
            id="encoding",
        ),
    ],
)
def test_bad_options_fail_when_the_source_is_created(
    make_source: Callable[..., CsvSource], options: dict[str, Any], key: str, reason: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        make_source(**options)

    assert caught.value.key == key
    assert reason in caught.value.reason


@pytest.mark.parametrize(
    ("kind", "header", "columns", "key", "reason"),
    [
        pytest.param(
            "accounts",
            "Account ID,Company",
            {"id": "Account ID", "name": "Name"},
            "crm.columns.accounts.name",
            "expected a column 'Name' for 'name'",
            id="mapped column not in the file",
        ),
        pytest.param(
            "contacts",
            "email,name",
            {},
            "crm.columns.contacts.id",
            "no 'id' column",
            id="required column missing",
        ),
        pytest.param(
            "events",
            "name,occurred_at",
            {},
            "crm.columns.events",
            "neither an 'account_id' nor a 'contact_id' column",
            id="event subject column missing",
        ),
        pytest.param(
            "accounts",
            "id,Company,Company",
            {},
            None,
            "two columns named 'Company'",
            id="duplicate header",
        ),
        pytest.param(
            "accounts",
            "id,A,B",
            {"x": "A", "y": "A"},
            "crm.columns.accounts.y",
            "mapped to both 'x' and 'y'",
            id="one column mapped twice",
        ),
        pytest.param(
            "contacts",
            "id,email,Work Email",
            {"email": "Work Email"},
            "crm.columns.contacts.email",
            "named like the column 'Work Email' is mapped to",
            id="unmapped column shadowed by a mapping",
        ),
    ],
)
def test_header_problems_name_the_file_and_the_expected_header(
    write_csv: Callable[..., Path],
    make_source: Callable[..., CsvSource],
    kind: str,
    header: str,
    columns: dict[str, str],
    key: str | None,
    reason: str,
) -> None:
    path = write_csv(f"{kind}.csv", [header])
    source = make_source(**{kind: f"{kind}.csv"}, columns={kind: columns})

    with pytest.raises(ConfigError) as caught:
        source.sync()

    assert (caught.value.file, caught.value.key) == (str(path), key)
    assert reason in caught.value.reason


def test_all_header_problems_are_reported_together(
    write_csv: Callable[..., Path], make_source: Callable[..., CsvSource]
) -> None:
    write_csv("accounts.csv", ["Company"])
    write_csv("events.csv", ["What,occurred_at,account_id"])
    source = make_source(
        accounts="accounts.csv",
        events="events.csv",
        columns={"events": {"name": "Name"}},
    )

    with pytest.raises(ConfigErrors) as caught:
        source.sync()

    assert [error.key for error in caught.value.errors] == [
        "crm.columns.accounts.id",
        "crm.columns.events.name",
    ]


def test_types_naming_no_trait_column_is_an_error(
    write_csv: Callable[..., Path], make_source: Callable[..., CsvSource]
) -> None:
    write_csv("accounts.csv", ["id,seats"])

    with pytest.raises(ConfigError) as caught:
        make_source(accounts="accounts.csv", types={"seat": "int"}).sync()

    assert caught.value.key == "crm.types.seat"


@pytest.mark.parametrize("cursor", ["yesterday", "2024-05-01T00:00:00"])
def test_a_cursor_that_is_not_an_aware_timestamp_is_refused(
    write_csv: Callable[..., Path], make_source: Callable[..., CsvSource], cursor: str
) -> None:
    write_csv("events.csv", ["name,occurred_at,account_id"])

    with pytest.raises(InputError, match="cursor"):
        make_source(events="events.csv").sync(cursor=cursor)
