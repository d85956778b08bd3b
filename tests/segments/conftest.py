"""Shared fixtures for the segment tests: one well-known profile and its store.

Used through fixtures only: a module named conftest cannot be imported reliably when
several test folders each have one.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from onetomany import Account, Contact, Event
from onetomany.rules.segments import Profile
from onetomany.store import Store

#: Microseconds on purpose: day counts and windows must treat them the same in SQL.
NOW = datetime(2026, 1, 5, 9, 0, 0, 250000, tzinfo=UTC)

ACCOUNT = Account(
    id="acme",
    name="Acme",
    traits={
        "plan": "pro",
        "mrr": 600,
        "mrr_text": "600",
        "seats": 10,
        "zero": 0,
        "active_users": 3,
        "ratio": 0.25,
        "flag": True,
        "off": False,
        "nothing": None,
        "listy": [1, 2],
        "obj": {"x": 2, "deep": {"y": "z"}},
        "signed_up_at": "2025-11-01",
        "late_evening": "2026-01-04T23:30:00-05:00",
        "with_fraction": "2025-12-05T09:00:00.999999Z",
        "bad_date": "2025-02-30",
        "leap_day": "2024-02-29",
        "renews_on": "2026-02-01",
        "id": "trait-id",
    },
)
CONTACT = Contact(
    id="ana",
    account_id="acme",
    name="Ana Lima",
    email="ana@example.test",
    role="sponsor",
    traits={"score": 7.5, "nps": None},
)
EVENTS = (
    Event(name="login", occurred_at=NOW - timedelta(days=3), account_id="acme", contact_id="bo"),
    Event(name="login", occurred_at=NOW - timedelta(days=40), account_id="acme"),
    Event(name="login", occurred_at=NOW - timedelta(days=30), account_id="acme"),  # on the edge
    Event(name="login", occurred_at=NOW + timedelta(hours=1), account_id="acme"),  # future
    Event(name="report", occurred_at=NOW - timedelta(days=1), account_id="acme", contact_id="ana"),
    Event(name="report", occurred_at=NOW - timedelta(days=2), contact_id="ana"),
    Event(name="report", occurred_at=NOW - timedelta(days=2), account_id="other"),
)
PROFILE = Profile(contact=CONTACT, account=ACCOUNT, events=EVENTS)


@pytest.fixture
def now() -> datetime:
    return NOW


@pytest.fixture
def profile() -> Profile:
    """Ana, sponsor at Acme, with every kind of awkward trait and a few events."""
    return PROFILE


@pytest.fixture
def profile_store(tmp_path: Path) -> Iterator[Store]:
    """A SQLite store holding exactly :data:`PROFILE`."""
    store = Store(tmp_path / "segments.db")
    store.save_profiles(accounts=[ACCOUNT], contacts=[CONTACT], events=EVENTS, now=NOW)
    yield store
    store.close()
