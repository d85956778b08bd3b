"""Leases on shared work, and several workers ticking one program."""

import threading
from datetime import timedelta

from onetomany import Account, Contact
from onetomany.engine import Engine
from onetomany.program import Audience, EventTrigger, Touch
from onetomany.store.queries.leases import release_lease, take_lease
from onetomany.testing import FrozenClock, RecordingChannel, make_plugins

from .conftest import make_program

MINUTE = timedelta(minutes=1)


def test_one_holder_at_a_time_until_it_lets_go(store):
    assert take_lease(store, "tick:acme", "a", ttl=MINUTE)
    assert not take_lease(store, "tick:acme", "b", ttl=MINUTE)
    assert take_lease(store, "tick:acme", "a", ttl=MINUTE)  # renewed by its holder
    assert take_lease(store, "other", "b", ttl=MINUTE)  # names are independent
    release_lease(store, "tick:acme", "b")  # not b's to give up
    assert not take_lease(store, "tick:acme", "b", ttl=MINUTE)
    release_lease(store, "tick:acme", "a")
    assert take_lease(store, "tick:acme", "b", ttl=MINUTE)


def test_a_lease_that_ran_out_is_taken_over(store):
    assert take_lease(store, "tick:acme", "dead", ttl=timedelta(seconds=-1))
    assert take_lease(store, "tick:acme", "alive", ttl=MINUTE)


def test_concurrent_takers_get_it_once(store):
    barrier = threading.Barrier(6)
    won: list[str] = []

    def take(holder: str) -> None:
        barrier.wait()
        if take_lease(store, "tick:acme", holder, ttl=MINUTE):
            won.append(holder)

    threads = [threading.Thread(target=take, args=(f"w{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(won) == 1


def test_a_tick_skips_the_round_while_another_worker_holds_it(tmp_path, store):
    program = make_program(
        tmp_path,
        Touch(
            name="hello",
            trigger=EventTrigger(event="signed_up"),
            channel="email",
            template="welcome",
            audience=Audience(),
        ),
    )
    engine = Engine(
        program,
        store=store,
        clock=FrozenClock(),
        plugins=make_plugins(),
        channels={"email": RecordingChannel()},
    )
    engine.identify(Account(id="a"), Contact(id="c", account_id="a", email="c@a.test"))
    engine.track("signed_up", account_id="a", contact_id="c", id="e1")
    assert take_lease(store, "tick:acme", "another worker", ttl=MINUTE)
    assert engine.tick() == 0
    release_lease(store, "tick:acme", "another worker")
    assert engine.tick() == 1
    assert take_lease(store, "tick:acme", "another worker", ttl=MINUTE)  # released after it
