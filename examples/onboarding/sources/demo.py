"""The example program with its billing from Stripe and its usage from SQL.

``make demo-sources`` runs this. It plays the same 90 days as ``make demo``, but instead of
reading billing and product events from the CSV exports it:

1. writes the product's usage into a SQLite database (``usage.db``: an ``accounts`` table
   with each account's active users, an ``events`` table with logins, reports, invitations...),
   as the product's own database would hold them;
2. starts a local fake of Stripe on loopback (the one the Stripe source's tests use: every
   request is checked against Stripe's OpenAPI document) holding a customer per account, a
   subscription per plan (price x seats = the account's MRR) and the open invoices;
3. writes ``program.toml`` beside them: the example's program, with the CSV source kept for
   the CRM (accounts, owners and contacts), a ``stripe`` source for billing and a ``sql``
   source for usage, and the overdue-invoice segment reading the Stripe source's
   ``overdue_since``;
4. validates and simulates it, and writes the report, with the onetomany CLI.

Everything lands in ``--var`` (``examples/onboarding/var/sources`` by default). The fake Stripe
is a test double; nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import csv
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1]
ROOT = EXAMPLE.parents[1]
STRIPE_TESTS = ROOT / "plugins" / "sources" / "stripe" / "tests"
ONETOMANY = Path(sys.executable).with_name("onetomany")

#: The CRM's CSV source, as program.toml declares it, and what replaces it here.
CRM = """[sources.crm]
plugin = "csv"
accounts = "data/accounts.csv"
contacts = "data/contacts.csv"
events = "data/events.csv"
types = { mrr = "float", seats = "int", active_users = "int" }
"""
SOURCES = """[sources.crm]
plugin = "csv"
accounts = "{example}/data/accounts.csv"
contacts = "{example}/data/contacts.csv"
types = {{ mrr = "float", seats = "int", active_users = "int" }}

# Billing: plan, seats, MRR and overdue invoices from Stripe (here a local fake).
[sources.billing]
plugin = "stripe"
api_key = "{key}"
base_url = "{stripe}"
metadata_key = "account_id"

# Usage: active users and product events from the product's own database.
[sources.usage]
plugin = "sql"
url = "sqlite:///{usage}"

[sources.usage.accounts]
query = "SELECT id, active_users FROM accounts"

[sources.usage.events]
query = "SELECT * FROM events"
cursor = "seq"
"""
INVOICE_SEGMENT = (
    "invoice_overdue = \"account.invoice_status == 'open' and "
    'days_since(account.invoice_due_date) > 40"'
)
STRIPE_INVOICE_SEGMENT = 'invoice_overdue = "days_since(account.overdue_since) > 40"'


def _rows(name: str) -> list[dict[str, str]]:
    with (EXAMPLE / "data" / name).open(newline="") as file:
        return list(csv.DictReader(file))


def write_usage(path: Path) -> int:
    """The product's database: active users per account, and every product event."""
    path.unlink(missing_ok=True)
    events = _rows("events.csv")
    columns = [c for c in events[0] if c != "id"]
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE accounts (id TEXT PRIMARY KEY, active_users INTEGER)")
        db.executemany(
            "INSERT INTO accounts VALUES (?, ?)",
            [(a["id"], int(a["active_users"])) for a in _rows("accounts.csv")],
        )
        db.execute(
            "CREATE TABLE events (seq INTEGER PRIMARY KEY, id TEXT, "
            + ", ".join(f"{c} TEXT" for c in columns)
            + ")"
        )
        db.executemany(
            f"INSERT INTO events (id, {', '.join(columns)}) VALUES "
            f"({', '.join('?' * (len(columns) + 1))})",
            [(e["id"], *(e[c] or None for c in columns)) for e in events],
        )
    return len(events)


def fill_stripe(stripe: object) -> None:
    """A customer per account, its subscription and, when open, its invoice."""
    for account in _rows("accounts.csv"):
        customer = f"cus_{account['id'].replace('-', '')}"
        stripe.customer(customer, email=None, account_id=account["id"])  # type: ignore[attr-defined]
        seats, mrr = int(account["seats"]), float(account["mrr"])
        stripe.subscription(  # type: ignore[attr-defined]
            customer, amount=round(mrr * 100 / seats), quantity=seats, plan=account["plan"]
        )
        if account["invoice_status"] == "open":
            due = datetime.fromisoformat(account["invoice_due_date"]).replace(tzinfo=UTC)
            stripe.invoice(customer, due_date=int(due.timestamp()))  # type: ignore[attr-defined]


def program_text(*, stripe_url: str, key: str, usage: Path) -> str:
    text = (EXAMPLE / "program.toml").read_text()
    for old, new in (
        (CRM, SOURCES.format(example=EXAMPLE, key=key, stripe=stripe_url, usage=usage)),
        (INVOICE_SEGMENT, STRIPE_INVOICE_SEGMENT),
        ('templates = "templates"', f'templates = "{EXAMPLE / "templates"}"'),
        ('store = "var/onetomany.db"', 'store = "onetomany.db"'),
        ('folder = "var/outbox"', 'folder = "outbox"'),
        ('invoice_status = "str" }', 'invoice_status = "str", overdue_since = "date" }'),
    ):
        if old not in text:
            raise SystemExit(f"examples/onboarding/program.toml no longer holds {old!r}")
        text = text.replace(old, new)
    return text


def run(*args: str | Path) -> None:
    print("$ onetomany " + " ".join(str(a) for a in args), flush=True)
    # The arguments are this script's own paths and dates, never outside input.
    subprocess.run([str(ONETOMANY), *map(str, args)], check=True)  # noqa: S603


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--var", type=Path, default=EXAMPLE / "var" / "sources")
    parser.add_argument("--step", default="1", help="hours per simulated step")
    var = parser.parse_args().var.resolve()
    step = parser.parse_args().step
    var.mkdir(parents=True, exist_ok=True)

    sys.path.insert(0, str(STRIPE_TESTS))
    from fake_stripe import KEY, FakeStripe
    from pytest_httpserver import HTTPServer

    usage = var / "usage.db"
    print(f"== wrote {write_usage(usage)} product events into {usage}")
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    try:
        stripe = FakeStripe(server)
        fill_stripe(stripe)
        print(f"== a fake Stripe on {stripe.url}: {len(stripe.objects['customers'])} customers")
        program = var / "program.toml"
        program.write_text(program_text(stripe_url=stripe.url, key=KEY, usage=usage))
        os.chdir(var)
        run("validate", program)
        run(
            "simulate",
            program,
            "--from",
            "2026-09-01",
            "--to",
            "2026-11-30",
            "--step",
            step,
            "--store",
            var / "simulation.db",
            "--out",
            var / "touches.csv",
        )
        run("report", program, "--store", var / "simulation.db", "--out", var / "report.html")
        if stripe.invalid:
            raise SystemExit(f"requests Stripe's OpenAPI document refuses: {stripe.invalid}")
    finally:
        server.clear()
        if server.is_running():
            server.stop()


if __name__ == "__main__":
    main()
