"""``Store.latest_events`` seeks each subject's latest event in its index; it must find what
reading every event and keeping the last finds: the latest at or before ``until``, the one
stored last among events at the same instant, for accounts and for contacts."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from onetomany.model import Event
from onetomany.store import Store

START = datetime(2026, 1, 1, tzinfo=UTC)

#: (name, account index, contact index, hours after START): few instants, so ties happen.
EVENTS = st.lists(
    st.tuples(
        st.sampled_from(["login", "login", "signed_up"]),
        st.integers(0, 2),
        st.integers(0, 3),
        st.integers(0, 5),
    ),
    max_size=25,
)


@settings(max_examples=40, deadline=None)
@given(events=EVENTS, until_hours=st.integers(0, 6), by=st.sampled_from(["account", "contact"]))
def test_the_latest_event_of_each_subject_is_the_last_one_read_in_order(
    events: list[tuple[str, int, int, int]], until_hours: int, by: str
) -> None:
    until = START + timedelta(hours=until_hours)
    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder) / "store.db")
        try:
            stored = [
                Event(
                    id=f"e{i}",
                    name=name,
                    account_id=f"a{account}",
                    contact_id=f"c{contact}",
                    occurred_at=START + timedelta(hours=hours),
                )
                for i, (name, account, contact, hours) in enumerate(events)
            ]
            for event in stored:  # one at a time: each is stored after the one before
                store.add_events([event], now=START)
            expected: dict[str, str] = {}
            order = sorted(enumerate(stored), key=lambda p: (p[1].occurred_at, p[0]))
            for _, event in order:
                subject = event.account_id if by == "account" else event.contact_id
                if event.name == "login" and event.occurred_at <= until and subject:
                    expected[subject] = event.id
            ids = [f"a{i}" for i in range(3)] if by == "account" else [f"c{i}" for i in range(4)]
            found = store.latest_events("login", by=by, ids=ids, until=until)
            assert {s: e.id for s, e in found.items()} == expected
        finally:
            store.close()


def test_latest_events_on_each_database(store: Store) -> None:
    at = [START + timedelta(hours=h) for h in (0, 2, 2, 1, 5)]
    names = ["login", "login", "login", "login", "signed_up"]
    accounts = ["a0", "a0", "a0", "a1", "a1"]
    for i, (name, account, when) in enumerate(zip(names, accounts, at, strict=True)):
        event = Event(id=f"e{i}", name=name, account_id=account, occurred_at=when)
        store.add_events([event], now=START)
    found = store.latest_events("login", by="account", ids=["a0", "a1", "a2"], until=at[-1])
    # e2 shares e1's instant and was stored after it; a2 has none; a1's sign-up is no login.
    assert {s: e.id for s, e in found.items()} == {"a0": "e2", "a1": "e3"}
    earlier = store.latest_events("login", by="account", ids=["a0"], until=at[0])
    assert {s: e.id for s, e in earlier.items()} == {"a0": "e0"}
