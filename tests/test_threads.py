"""One Engine shared by a web server's request threads.

A host builds one Engine and calls ``identify``, ``track``, ``track_engagement``, ``inbox``
and ``mark_read`` from its request threads. These tests do that with real threads on each
database and check that nothing fails, every event is stored once, and concurrent partial
identifies of the same profile lose no field.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from onetomany import Account, Contact
from onetomany.store import NewTouch

THREADS = 8
CALLS = 50


@pytest.fixture
def shared_engine(make_engine, recorder):
    engine = make_engine(recorder)
    engine.store.enqueue(
        [
            NewTouch(
                idempotency_key="welcome:c1",
                program="p",
                touch="welcome",
                channel="email",
                template="welcome",
                contact_id="c1",
                account_id="a1",
                available_at=engine.clock.now(),
            )
        ],
        now=engine.clock.now(),
    )
    for n in range(3):
        engine.store.inbox_add(
            contact_id="c1",
            idempotency_key=f"inapp-{n}",
            touch="tip",
            title=f"Tip {n}",
            body="...",
            url=None,
            now=engine.clock.now(),
        )
    yield engine
    engine.close()


def test_one_engine_serves_many_threads(shared_engine):
    engine = shared_engine
    start = threading.Barrier(THREADS)

    def requests(worker: int) -> int:
        start.wait()  # every thread at once, as a burst of requests would
        for n in range(CALLS):
            engine.track("page_viewed", contact_id="c1", id=f"view-{worker}-{n}")
            engine.track("signed_up", account_id="a1", id="signup-a1")  # a retried request
            engine.identify(
                Contact(id="c1", traits={f"seen_{worker}_{n}": n}),
                Account(id="a1", traits={f"usage_{worker}_{n}": n}),
            )
            engine.track_engagement("welcome:c1", "opened", id=f"open-{worker}-{n}")
            engine.inbox("c1")
            engine.mark_read("c1", [1])
        return worker

    with ThreadPoolExecutor(THREADS) as pool:
        assert sorted(pool.map(requests, range(THREADS))) == list(range(THREADS))

    events = [e for _, e in engine.store.events_after(0, limit=10_000)]
    ids = [e.id for e in events]
    assert len(ids) == len(set(ids))
    assert sum(e.name == "page_viewed" for e in events) == THREADS * CALLS
    assert sum(e.name == "signed_up" for e in events) == 1
    assert sum(e.name == "message_opened" for e in events) == THREADS * CALLS
    contact = engine.store.get_contact("c1")
    assert contact is not None
    assert len(contact.traits) == THREADS * CALLS
    assert (contact.email, contact.role) == ("nancy@northwind.test", "admin")
    account = engine.store.get_account("a1")
    assert account is not None
    assert len(account.traits) == THREADS * CALLS + 1  # and the plan it had
    assert engine.unread_count("c1") == 2


def test_threads_creating_the_same_new_contact_lose_no_trait(shared_engine):
    engine = shared_engine
    start = threading.Barrier(THREADS)

    def requests(worker: int) -> None:
        start.wait()
        for n in range(40):
            engine.identify(Contact(id=f"new-{n}", traits={f"from_{worker}": worker}))

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(requests, range(THREADS)))

    for n in range(40):
        contact = engine.store.get_contact(f"new-{n}")
        assert contact is not None
        assert contact.traits == {f"from_{w}": w for w in range(THREADS)}
        assert contact.locale == "en"
