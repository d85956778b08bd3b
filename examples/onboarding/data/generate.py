"""Writes the example's CSV files: twelve accounts, their people, and six months of events.

The files are committed; run this again only to change the story (it is deterministic):

    python examples/onboarding/data/generate.py

The story, told to exercise every trigger of the program (see ../README.md):

* four accounts signed up before September (they are due a Quarterly Success Review and an
  NPS survey inside the simulated 90 days), eight sign up during it;
* most admins open their welcome email within a day; two never do (the escalation ladder);
  Northwind's admin opens every day recap but neither the welcome nor its resend, so her CSM
  gets the call task too (her timeline, `onetomany timeline examples/onboarding ct-001`, shows
  the welcome, its resend, the call and the recaps with their opens);
* Tailspin Toys stops logging in (the 30-day inactivity nudge) and has an invoice open since
  mid-September (the 40-days-overdue SMS);
* Fabrikam Foods never connects an integration (its setup stage runs overdue);
* teams create reports and invite teammates at their own pace, which moves them through the
  onboarding journey's stages.
"""

from __future__ import annotations

import csv
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

HERE = Path(__file__).parent
PROGRAM = "acme-onboarding"
SIMULATION_END = datetime(2026, 11, 30, tzinfo=UTC)

ANA = "ana.souza@acme-analytics.test"
BUDI = "budi.santoso@acme-analytics.test"

# One line per row keeps the tables readable as tables.
# fmt: off
# ruff: noqa: E501
# id, name, plan, mrr, seats, active_users, owner, invoice_due_date, invoice_status, signed up
ACCOUNTS = [
    ("acc-001", "Northwind Traders", "pro", 1200, 25, 9, ANA, "2026-10-15", "paid", "2026-09-02"),
    ("acc-002", "Tailspin Toys", "starter", 99, 5, 4, ANA, "2026-09-15", "open", "2026-06-10"),
    ("acc-003", "Contoso Pharma", "enterprise", 8400, 120, 31, ANA, "2026-10-01", "paid", "2026-09-03"),
    ("acc-004", "Fabrikam Foods", "starter", 49, 3, 1, BUDI, "2026-10-05", "paid", "2026-09-08"),
    ("acc-005", "Wide World Importers", "pro", 2300, 40, 12, BUDI, "2026-10-20", "paid", "2026-07-21"),
    ("acc-006", "Adventure Works", "enterprise", 6100, 80, 70, BUDI, "2026-11-01", "paid", "2026-08-04"),
    ("acc-007", "Litware", "pro", 950, 15, 11, ANA, "2026-10-10", "paid", "2026-09-15"),
    ("acc-008", "Proseware", "starter", 79, 4, 1, BUDI, "2026-11-10", "paid", "2026-09-22"),
    ("acc-009", "Lucerne Publishing", "pro", 1500, 30, 8, ANA, "2026-11-05", "paid", "2026-10-01"),
    ("acc-010", "Coho Winery", "starter", 120, 6, 5, BUDI, "2026-10-01", "paid", "2026-08-25"),
    ("acc-011", "Trey Research", "enterprise", 5200, 60, 25, ANA, "2026-11-15", "paid", "2026-10-12"),
    ("acc-012", "Alpine Ski House", "pro", 3100, 50, 14, BUDI, "2026-11-20", "paid", "2026-10-20"),
]

# id, account, name, phone, role, locale, timezone, SMS consent
CONTACTS = [
    ("ct-001", "acc-001", "Nancy Davolio", "+14155550101", "admin", "en", "America/Los_Angeles", "yes"),
    ("ct-002", "acc-001", "Andrew Fuller", "", "sponsor", "en", "America/Los_Angeles", "no"),
    ("ct-003", "acc-002", "Janet Leverling", "+14155550123", "admin", "en", "America/New_York", "yes"),
    ("ct-004", "acc-003", "Margaret Peacock", "+5511912345678", "admin", "pt-BR", "America/Sao_Paulo", "yes"),
    ("ct-005", "acc-003", "Steven Buchanan", "", "admin", "pt-BR", "America/Sao_Paulo", "no"),
    ("ct-006", "acc-003", "Laura Callahan", "", "analyst", "pt-BR", "America/Sao_Paulo", "no"),
    ("ct-007", "acc-004", "Robert King", "", "sponsor", "en", "Europe/Berlin", "no"),
    ("ct-008", "acc-005", "Dewi Lestari", "+6281234567890", "admin", "id", "Asia/Jakarta", "yes"),
    ("ct-009", "acc-005", "Agus Pratama", "", "sponsor", "id", "Asia/Jakarta", "no"),
    ("ct-010", "acc-006", "Beatriz Lima", "+5521998765432", "admin", "pt-BR", "America/Sao_Paulo", "yes"),
    ("ct-011", "acc-006", "Carlos Mendes", "", "sponsor", "pt-BR", "America/Sao_Paulo", "no"),
    ("ct-012", "acc-006", "Rafael Costa", "", "analyst", "pt-BR", "America/Sao_Paulo", "no"),
    ("ct-013", "acc-007", "Anne Dodsworth", "", "admin", "en", "Europe/Berlin", "no"),
    ("ct-014", "acc-008", "Putri Wulandari", "+6281311112222", "admin", "id", "Asia/Jakarta", "yes"),
    ("ct-015", "acc-009", "Michael Suyama", "", "admin", "en", "America/Chicago", "no"),
    ("ct-016", "acc-009", "Helen Bennett", "", "leader", "en", "America/Chicago", "no"),
    ("ct-017", "acc-010", "Sven Ottlieb", "+4915112345678", "admin", "en", "Europe/Berlin", "yes"),
    ("ct-018", "acc-011", "Yoshi Tannamuri", "", "admin", "en", "America/Los_Angeles", "no"),
    ("ct-019", "acc-011", "Liu Wong", "", "sponsor", "en", "America/Los_Angeles", "no"),
    ("ct-020", "acc-011", "Hari Kumar", "", "analyst", "en", "America/Los_Angeles", "no"),
    ("ct-021", "acc-012", "Siti Rahayu", "", "admin", "id", "Asia/Jakarta", "no"),
    ("ct-022", "acc-012", "Bayu Nugroho", "", "leader", "id", "Asia/Jakarta", "no"),
]
# fmt: on

#: Admins who never open their welcome email (nor the resend): the ladder reaches the CSM.
NEVER_OPEN = {"ct-013", "ct-021"}
#: Admins who open each day recap two hours after it arrives, but neither the welcome nor its
#: resend (the ladder reaches the CSM).
OPENS_ONLY_THE_RECAPS = {"ct-001"}
#: When the day recap goes, in the recipient's own timezone (program.toml's day_recap).
RECAP_HOUR, RECAPS = 17, 5
#: Accounts whose team stops logging in, and the day they do.
GOES_QUIET = {"acc-002": datetime(2026, 9, 20, tzinfo=UTC)}
#: Accounts that never connect an integration: their setup stage runs overdue.
NEVER_SETS_UP = {"acc-004"}


def main() -> None:
    rng = random.Random(2026)
    events: list[dict[str, str]] = []
    admins = {c[1]: c[0] for c in reversed(CONTACTS) if c[4] == "admin"}
    people: dict[str, list[str]] = {}
    for contact in CONTACTS:
        people.setdefault(contact[1], []).append(contact[0])
    for account_id, *_, signed in ACCOUNTS:
        start = datetime.fromisoformat(signed).replace(hour=13, tzinfo=UTC)
        start += timedelta(minutes=rng.randrange(0, 300))
        events.append(_event("signed_up", start, account_id, None))
        recipient = admins.get(account_id) or people[account_id][0]
        if recipient not in NEVER_OPEN:
            # Drawn for every admin who opens anything, so the other accounts' story stays put.
            opened = start + timedelta(hours=rng.randrange(1, 30))
            if recipient in OPENS_ONLY_THE_RECAPS:
                events += _recap_opens(account_id, recipient, start)
            else:
                key = f"{PROGRAM}:welcome:{recipient}:{_id('signed_up', start, account_id, None)}"
                events.append(_event("message_opened", opened, account_id, recipient, key=key))
        events += _usage(rng, account_id, people[account_id], start)
    events.sort(key=lambda e: (e["occurred_at"], e["id"]))
    _write("accounts.csv", [_account(a) for a in ACCOUNTS])
    _write("contacts.csv", [_contact(c) for c in CONTACTS])
    _write("events.csv", events)


def _recap_opens(account_id: str, recipient: str, start: datetime) -> list[dict[str, str]]:
    """An open of each day recap, keyed as the engine keys a cadence's message: by its UTC
    instant, 17:00 on the recipient's clock on each of the five days from the signup."""
    found = []
    zone = ZoneInfo(next(c[6] for c in CONTACTS if c[0] == recipient))
    local = start.astimezone(zone)
    first = local.replace(hour=RECAP_HOUR, minute=0, second=0, microsecond=0)
    if first < local:
        first += timedelta(days=1)
    for day in range(RECAPS):
        sent = (first + timedelta(days=day)).astimezone(UTC)
        key = f"{PROGRAM}:day_recap:{recipient}:at-{sent:%Y-%m-%dT%H:%M:%SZ}"
        found.append(
            _event("message_opened", sent + timedelta(hours=2), account_id, recipient, key=key)
        )
    return found


def _usage(
    rng: random.Random, account_id: str, team: list[str], start: datetime
) -> list[dict[str, str]]:
    """Logins, setup milestones, reports and invitations: a team finding its feet."""
    found = []
    quiet = GOES_QUIET.get(account_id, SIMULATION_END)
    day = start
    while day < min(quiet, SIMULATION_END):
        day += timedelta(days=rng.choice([1, 1, 2, 3]), hours=rng.randrange(-3, 4))
        if day < min(quiet, SIMULATION_END):
            found.append(_event("login", day, account_id, rng.choice(team)))
    if account_id not in NEVER_SETS_UP:
        connected = start + timedelta(days=rng.randrange(1, 6), hours=2)
        found.append(_event("integration_connected", connected, account_id, team[0]))
        for n in range(rng.randrange(1, 5)):
            at = connected + timedelta(days=rng.randrange(1, 20), hours=n)
            found.append(
                _event(
                    "first_report_created" if n == 0 else "report_created",
                    at,
                    account_id,
                    team[-1],
                    report_id=f"rep-{account_id[-3:]}-{n + 1}",
                    title=["Weekly revenue", "Churn by cohort", "Top products", "Funnel"][n],
                )
            )
        for n in range(rng.randrange(0, 5)):
            at = connected + timedelta(days=rng.randrange(3, 40), hours=n)
            found.append(_event("teammate_invited", at, account_id, team[0]))
    return [e for e in found if datetime.fromisoformat(e["occurred_at"]) < SIMULATION_END]


def _id(name: str, at: datetime, account_id: str, contact_id: str | None) -> str:
    return f"ev-{account_id[-3:]}-{name}-{at:%Y%m%d%H%M}" + (f"-{contact_id}" if contact_id else "")


def _event(
    name: str, at: datetime, account_id: str, contact_id: str | None, **properties: str
) -> dict[str, str]:
    return {
        "id": _id(name, at, account_id, contact_id),
        "name": name,
        "occurred_at": at.isoformat(),
        "account_id": account_id,
        "contact_id": contact_id or "",
        "report_id": properties.get("report_id", ""),
        "title": properties.get("title", ""),
        "idempotency_key": properties.get("key", ""),
    }


def _account(row: tuple[object, ...]) -> dict[str, object]:
    keys = ["id", "name", "plan", "mrr", "seats", "active_users", "owner"]
    keys += ["invoice_due_date", "invoice_status", "signed_up_on"]
    return dict(zip(keys, row, strict=True))


def _contact(row: tuple[str, ...]) -> dict[str, str]:
    account_id, name = row[1], row[2]
    domain = next(a[1] for a in ACCOUNTS if a[0] == account_id).split()[0].lower()
    email = f"{name.split()[0].lower()}@{domain}.test"
    keys = ["id", "account_id", "name", "phone", "role", "locale", "timezone", "consent_sms"]
    return dict(zip(keys, row, strict=True)) | {"email": email}


def _write(name: str, rows: list[dict[str, object]] | list[dict[str, str]]) -> None:
    with (HERE / name).open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()
