"""Syncs that succeed: what a CSV source returns for good files."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from onetomany import Account, Contact, Event
from onetomany.plugins.manager import Plugins
from onetomany.store import Store
from onetomany_csv import CsvSource

ACCOUNTS = [
    "id,name,plan,seats,mrr,active,renews_on,signed_at",
    "a1,Acme,pro,25,199.5,yes,2025-01-31,2024-01-02T03:04:05+01:00",
    "a2,Globex,free,,,no,,",
]
CONTACTS = [
    "id,account_id,name,email,phone,role,locale,timezone,consent_sms,consent_email,title",
    "c1,a1,Ada Lovelace,ada@Example.COM,+5511912345678,admin,pt-BR,America/Sao_Paulo,no,YES,CTO",
    "c2,a2,Bob,,,,,,,,",
]
EVENTS = [
    "id,name,occurred_at,account_id,contact_id,plan",
    "e1,login,2024-05-01T09:00:00Z,a1,c1,pro",
    "e2,export,2024-05-02T10:30:00+02:00,a1,,pro",
    "e3,login,2024-05-03T00:00:00Z,,c2,",
]


@pytest.fixture
def crm(write_csv: Callable[..., Path], make_source: Callable[..., CsvSource]) -> CsvSource:
    write_csv("accounts.csv", ACCOUNTS)
    write_csv("contacts.csv", CONTACTS)
    write_csv("events.csv", EVENTS)
    return make_source(
        accounts="accounts.csv",
        contacts="contacts.csv",
        events="events.csv",
        types={
            "seats": "int",
            "mrr": "float",
            "active": "bool",
            "renews_on": "date",
            "signed_at": "datetime",
        },
    )


def test_full_sync_reads_accounts_with_typed_traits(crm: CsvSource) -> None:
    result = crm.sync()

    assert result.accounts == [
        Account(
            id="a1",
            name="Acme",
            traits={
                "plan": "pro",
                "seats": 25,
                "mrr": 199.5,
                "active": True,
                # Dates stay JSON-safe, normalised: the store keeps traits as JSON.
                "renews_on": "2025-01-31",
                "signed_at": "2024-01-02T02:04:05+00:00",
            },
        ),
        Account(
            id="a2",
            name="Globex",
            traits={
                "plan": "free",
                "seats": None,
                "mrr": None,
                "active": False,
                "renews_on": None,
                "signed_at": None,
            },
        ),
    ]


def test_full_sync_reads_contacts_with_consent_and_traits(crm: CsvSource) -> None:
    ada, bob = crm.sync().contacts

    assert ada == Contact(
        id="c1",
        account_id="a1",
        name="Ada Lovelace",
        email="ada@example.com",
        phone="+5511912345678",
        role="admin",
        locale="pt-BR",
        timezone="America/Sao_Paulo",
        consent={"sms": False, "email": True},
        traits={"title": "CTO"},
    )
    assert not ada.allows("sms")
    # Empty cells fall back to the model's defaults; an unanswered consent is no answer.
    assert bob == Contact(id="c2", account_id="a2", name="Bob", traits={"title": None})
    assert bob.consent == {}


def test_full_sync_reads_every_event_in_utc(crm: CsvSource) -> None:
    result = crm.sync()

    assert result.events == [
        Event(
            id="e1",
            name="login",
            occurred_at=datetime(2024, 5, 1, 9, tzinfo=UTC),
            account_id="a1",
            contact_id="c1",
            properties={"plan": "pro"},
        ),
        Event(
            id="e2",
            name="export",
            occurred_at=datetime(2024, 5, 2, 8, 30, tzinfo=UTC),
            account_id="a1",
            properties={"plan": "pro"},
        ),
        Event(
            id="e3",
            name="login",
            occurred_at=datetime(2024, 5, 3, tzinfo=UTC),
            contact_id="c2",
            properties={"plan": None},
        ),
    ]
    assert result.cursor == "2024-05-03T00:00:00+00:00"


def test_untyped_traits_stay_strings_even_when_they_look_like_numbers(
    write_csv: Callable[..., Path], make_source: Callable[..., CsvSource]
) -> None:
    write_csv("accounts.csv", ["id,seats,beta", "a1,25,true"])

    (account,) = make_source(accounts="accounts.csv").sync().accounts

    assert account.traits == {"seats": "25", "beta": "true"}


def test_types_apply_to_event_properties(
    write_csv: Callable[..., Path], make_source: Callable[..., CsvSource]
) -> None:
    write_csv(
        "events.csv", ["name,occurred_at,account_id,rows", "export,2024-05-01T09:00Z,a1,1200"]
    )

    (event,) = make_source(events="events.csv", types={"rows": "int"}).sync().events

    assert event.properties == {"rows": 1200}


def test_columns_map_fields_and_rename_traits(
    write_csv: Callable[..., Path], make_source: Callable[..., CsvSource]
) -> None:
    write_csv("accounts.csv", ["Account ID,Company,Plan Tier", "a1,Acme,pro"])
    write_csv("contacts.csv", ["Contact,E-mail,SMS opt-in", "c1,ada@example.com,0"])
    write_csv("events.csv", ["What,When,Who", "login,2024-05-01T09:00:00Z,c1"])
    source = make_source(
        accounts="accounts.csv",
        contacts="contacts.csv",
        events="events.csv",
        columns={
            "accounts": {"id": "Account ID", "name": "Company", "plan": "Plan Tier"},
            "contacts": {"id": "Contact", "email": "E-mail", "consent_sms": "SMS opt-in"},
            "events": {"name": "What", "occurred_at": "When", "contact_id": "Who"},
        },
    )

    result = source.sync()

    assert result.accounts == [Account(id="a1", name="Acme", traits={"plan": "pro"})]
    assert result.contacts == [Contact(id="c1", email="ada@example.com", consent={"sms": False})]
    (event,) = result.events
    assert (event.name, event.occurred_at, event.contact_id) == (
        "login",
        datetime(2024, 5, 1, 9, tzinfo=UTC),
        "c1",
    )


@pytest.mark.parametrize(
    ("answer", "consents"),
    [
        ("yes", True),
        ("Yes", True),
        ("true", True),
        ("TRUE", True),
        ("1", True),
        ("no", False),
        ("false", False),
        ("0", False),
    ],
)
def test_consent_answers(
    write_csv: Callable[..., Path],
    make_source: Callable[..., CsvSource],
    answer: str,
    consents: bool,
) -> None:
    write_csv("contacts.csv", ["id,consent_whatsapp", f"c1,{answer}"])

    (contact,) = make_source(contacts="contacts.csv").sync().contacts

    assert contact.consent == {"whatsapp": consents}
    assert contact.allows("whatsapp") is consents


def test_incremental_sync_returns_only_newer_events(
    crm: CsvSource, write_csv: Callable[..., Path]
) -> None:
    first = crm.sync()
    write_csv("events.csv", [*EVENTS, "e4,logout,2024-05-04T00:00:00Z,a1,c1,pro"])

    second = crm.sync(cursor=first.cursor)

    assert [event.id for event in second.events] == ["e4"]
    assert second.cursor == "2024-05-04T00:00:00+00:00"
    # Accounts and contacts are always read in full.
    assert second.accounts == first.accounts
    assert second.contacts == first.contacts


def test_incremental_sync_is_strictly_after_the_cursor(crm: CsvSource) -> None:
    result = crm.sync(cursor="2024-05-02T08:30:00+00:00")

    assert [event.id for event in result.events] == ["e3"]


def test_incremental_sync_without_news_keeps_the_cursor(crm: CsvSource) -> None:
    cursor = "2030-01-01T00:00:00+09:00"

    result = crm.sync(cursor=cursor)

    assert result.events == []
    assert result.cursor == cursor


def test_sync_without_events_file_returns_no_cursor(
    write_csv: Callable[..., Path], make_source: Callable[..., CsvSource]
) -> None:
    write_csv("accounts.csv", ACCOUNTS)

    result = make_source(accounts="accounts.csv").sync()

    assert (result.events, result.cursor) == ([], None)


def test_events_without_id_get_stable_ids(
    write_csv: Callable[..., Path], make_source: Callable[..., CsvSource], tmp_path: Path
) -> None:
    lines = [
        "name,occurred_at,account_id,plan",
        "login,2024-05-01T09:00:00Z,a1,pro",
        "login,2024-05-01T09:00:00Z,a2,pro",
    ]
    write_csv("events.csv", lines)
    first = make_source(events="events.csv").sync()
    # Rows inserted above, a folder move and a new empty column keep the ids of old rows.
    moved = tmp_path / "moved"
    moved.mkdir()
    (moved / "events.csv").write_text(
        "name,occurred_at,account_id,plan,note\n"
        "signup,2024-04-01T00:00:00Z,a3,free,\n"
        "login,2024-05-01T09:00:00Z,a1,pro,\n"
        "login,2024-05-01T09:00:00Z,a2,pro,\n"
    )
    second = make_source(events=str(moved / "events.csv")).sync()

    ids = [event.id for event in first.events]
    assert len(set(ids)) == 2
    assert [event.id for event in second.events][1:] == ids
    assert make_source(events="events.csv").sync().events == first.events


def test_derived_ids_depend_on_the_file_name(
    write_csv: Callable[..., Path], make_source: Callable[..., CsvSource]
) -> None:
    lines = ["name,occurred_at,account_id", "login,2024-05-01T09:00:00Z,a1"]
    write_csv("web.csv", lines)
    write_csv("mobile.csv", lines)

    (web,) = make_source(events="web.csv").sync().events
    (mobile,) = make_source(events="mobile.csv").sync().events

    assert web.id != mobile.id


def test_naive_timestamps_are_read_in_the_timezone_option(
    write_csv: Callable[..., Path], make_source: Callable[..., CsvSource]
) -> None:
    write_csv(
        "events.csv",
        [
            "name,occurred_at,account_id",
            "login,2024-07-01T09:00:00,a1",
            "login,2024-01-01 09:00,a1",
            "login,2024-07-01T09:00:00+00:00,a1",
        ],
    )

    events = make_source(events="events.csv", timezone="Europe/Lisbon").sync().events

    assert [event.occurred_at for event in events] == [
        datetime(2024, 7, 1, 8, tzinfo=UTC),  # summer time, UTC+1
        datetime(2024, 1, 1, 9, tzinfo=UTC),
        datetime(2024, 7, 1, 9, tzinfo=UTC),  # an explicit offset wins
    ]


def test_bom_prefixed_file(tmp_path: Path, make_source: Callable[..., CsvSource]) -> None:
    (tmp_path / "accounts.csv").write_bytes("\ufeffid,name\r\na1,Acmé\r\n".encode())

    assert make_source(accounts="accounts.csv").sync().accounts == [Account(id="a1", name="Acmé")]


def test_bom_is_dropped_even_with_a_plain_utf8_encoding(
    tmp_path: Path, make_source: Callable[..., CsvSource]
) -> None:
    (tmp_path / "accounts.csv").write_bytes("\ufeffid,name\na1,Acme\n".encode())

    result = make_source(accounts="accounts.csv", encoding="utf-8").sync()

    assert result.accounts == [Account(id="a1", name="Acme")]


def test_delimiter_and_encoding_options(
    write_csv: Callable[..., Path], make_source: Callable[..., CsvSource]
) -> None:
    write_csv("accounts.csv", ["id;name;city", "a1;Société Générale;Paris"], encoding="latin-1")

    source = make_source(accounts="accounts.csv", delimiter=";", encoding="latin-1")

    assert source.sync().accounts == [
        Account(id="a1", name="Société Générale", traits={"city": "Paris"})
    ]


def test_quoted_cells_blank_rows_and_whitespace(
    write_csv: Callable[..., Path], make_source: Callable[..., CsvSource]
) -> None:
    write_csv(
        "accounts.csv",
        [
            " id , name ,notes",
            'a1,"Acme, Inc.","two',
            'lines"',
            "",
            ",,",
            "  a2  ,  Globex  ,",
        ],
    )

    accounts = make_source(accounts="accounts.csv").sync().accounts

    assert accounts == [
        Account(id="a1", name="Acme, Inc.", traits={"notes": "two\nlines"}),
        Account(id="a2", name="Globex", traits={"notes": None}),
    ]


def test_header_only_files_sync_to_nothing(
    write_csv: Callable[..., Path], make_source: Callable[..., CsvSource]
) -> None:
    write_csv("events.csv", ["name,occurred_at,contact_id"])

    result = make_source(events="events.csv").sync()

    assert (result.events, result.cursor) == ([], None)


def test_the_plugin_registers_the_csv_source() -> None:
    plugins = Plugins(strict=True)

    registration = plugins.sources().get("csv")

    assert registration.value is CsvSource
    assert registration.owner.distribution == "onetomany-csv"


def test_typed_dates_are_normalised_iso_strings(
    write_csv: Callable[..., Path], make_source: Callable[..., CsvSource]
) -> None:
    write_csv("accounts.csv", ["id,renews_on,signed_at", "a1,20250131,2025-01-31 10:00"])
    source = make_source(
        accounts="accounts.csv",
        timezone="America/Sao_Paulo",
        types={"renews_on": "date", "signed_at": "datetime"},
    )

    (account,) = source.sync().accounts

    assert account.traits == {"renews_on": "2025-01-31", "signed_at": "2025-01-31T13:00:00+00:00"}


def test_a_sync_round_trips_through_the_store(crm: CsvSource, temp_store: Store) -> None:
    result = crm.sync()
    now = datetime(2026, 1, 5, 9, tzinfo=UTC)

    added = temp_store.save_profiles(
        accounts=result.accounts, contacts=result.contacts, events=result.events, now=now
    )
    again = temp_store.save_profiles(events=crm.sync().events, now=now)

    assert (added, again) == (3, 0)
    assert temp_store.get_account("a1") == result.accounts[0]
    assert temp_store.get_contact("c1") == result.contacts[0]


def test_a_file_without_a_column_leaves_that_field_as_stored(
    crm: CsvSource,
    temp_store: Store,
    write_csv: Callable[..., Path],
    make_source: Callable[..., CsvSource],
) -> None:
    now = datetime(2026, 1, 5, 9, tzinfo=UTC)
    result = crm.sync()
    temp_store.save_profiles(accounts=result.accounts, contacts=result.contacts, now=now)
    write_csv("seats.csv", ["id,seats", "a1,30"])
    write_csv("roles.csv", ["id,role,name,title", "c1,sponsor,,", "c3,leader,Cy,VP"])
    update = make_source(accounts="seats.csv", contacts="roles.csv", types={"seats": "int"})
    synced = update.sync()

    temp_store.save_profiles(accounts=synced.accounts, contacts=synced.contacts, now=now)

    account = temp_store.get_account("a1")
    assert account is not None
    assert (account.name, account.traits["seats"], account.traits["plan"]) == ("Acme", 30, "pro")
    ada = temp_store.get_contact("c1")
    assert ada is not None
    assert (ada.name, ada.email, ada.locale, ada.timezone, ada.role) == (
        "Ada Lovelace", "ada@example.com", "pt-BR", "America/Sao_Paulo", "sponsor",
    )  # fmt: skip
    assert ada.consent == {"sms": False, "email": True}
    assert "title" not in ada.traits  # an empty trait cell removes the trait
    new = temp_store.get_contact("c3")
    assert new is not None
    assert (new.name, new.locale, new.timezone, new.traits) == ("Cy", "en", "UTC", {"title": "VP"})
