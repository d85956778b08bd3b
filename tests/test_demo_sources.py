"""``make demo-sources``: the example program with its billing from the fake Stripe and its
usage from a SQLite database plays the same 90 days as the CSV demo."""

from __future__ import annotations

import csv
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

from onetomany.store import Store

from .test_cli import PLAYBOOK

DEMO = Path(__file__).resolve().parents[1] / "examples" / "onboarding" / "sources" / "demo.py"


def test_billing_from_stripe_and_usage_from_sql_play_the_same_playbook(tmp_path):
    var = tmp_path / "var"
    result = subprocess.run(
        [sys.executable, str(DEMO), "--var", str(var), "--step", "3"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "89 planned touch(es): 89 sent, 0 dead-lettered, 0 still pending" in result.stdout

    with (var / "touches.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert Counter(row["touch"] for row in rows) == PLAYBOOK
    by_touch = {row["touch"]: row for row in rows}
    # The overdue invoice now comes from Stripe: due 15 September, more than 40 days on 26 Oct.
    assert by_touch["invoice_overdue"]["time"].startswith("2026-10-26")
    # The absence of logins now comes from the product database's events.
    assert by_touch["inactivity_nudge"]["account"] == "acc-002"

    store = Store(var / "simulation.db")
    try:
        tailspin = store.get_account("acc-002")
        assert tailspin is not None
        assert tailspin.traits["stripe_customer_id"] == "cus_acc002"
        assert tailspin.traits["overdue_since"] == "2026-09-15"
        assert tailspin.traits["mrr"] == 99.0
    finally:
        store.close()
    with sqlite3.connect(var / "usage.db") as db:
        assert db.execute("SELECT count(*) FROM events").fetchone()[0] > 100
