"""The policy layer between claiming a row and composing it (issue 12's contract).

A failed check without ``until`` skips the row for good; with ``until`` it defers the row,
which comes back then; neither is an attempt. A policy that raises holds the batch back to its
lease. Each test runs on SQLite and PostgreSQL (``store``) with the recording channel.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import pytest

from onetomany.delivery.dispatcher import DEFAULT_LEASE
from onetomany.delivery.policy import Pending, Ruling
from onetomany.engine import Engine
from onetomany.model import OutboxStatus
from onetomany.model.decisions import Check
from onetomany.store import NewTouch, OutboxRow
from onetomany.store.queries.decisions import recorded_decisions
from onetomany.testing import RecordingChannel, make_plugins

from .conftest import PEOPLE, make_program

Rule = Callable[[Pending, datetime], Ruling]


class Scripted:
    """A policy whose verdict per row comes from a function; it remembers what it saw."""

    def __init__(self, name: str, rule: Rule) -> None:
        self.name = name
        self._rule = rule
        self.seen: list[str] = []

    def rule(self, pending: Sequence[Pending], now: datetime) -> list[Ruling]:
        self.seen.extend(p.row.contact_id or "" for p in pending)
        return [self._rule(p, now) for p in pending]


def passes(_p: Pending, _now: datetime) -> Ruling:
    return Ruling(check=Check.passed("scripted"))


@pytest.fixture
def build(tmp_path, frozen_clock, store):
    engines: list[Engine] = []

    def make(*policies: object) -> tuple[Engine, RecordingChannel]:
        channel = RecordingChannel()
        engine = Engine(
            make_program(tmp_path),
            store=store,
            clock=frozen_clock,
            plugins=make_plugins(),
            channels={"email": channel},
            policies=policies,  # type: ignore[arg-type]
        )
        engine.identify(*PEOPLE)
        engines.append(engine)
        return engine, channel

    yield make
    for engine in engines:
        engine.dispatcher.close()


def queue(engine: Engine, *contact_ids: str) -> None:
    engine.store.enqueue(
        [
            NewTouch(
                idempotency_key=f"k-{cid}",
                program="acme",
                touch="welcome",
                channel="email",
                template="welcome",
                contact_id=cid,
                account_id="a1",
                available_at=engine.clock.now(),
            )
            for cid in contact_ids
        ],
        now=engine.clock.now(),
    )


def rows(engine: Engine) -> dict[str, OutboxRow]:
    return {row.contact_id or "": row for row in engine.store.outbox_rows()}


def test_a_skipped_row_is_final_and_never_an_attempt(build, frozen_clock):
    def skip_c1(p: Pending, _now: datetime) -> Ruling:
        if p.row.contact_id == "c1":
            return Ruling(check=Check.failed("gate", "c1 asked us to stop"))
        return Ruling(check=Check.passed("gate"))

    engine, channel = build(Scripted("gate", skip_c1))
    queue(engine, "c1", "c2")
    report = engine.dispatch()
    assert report.skipped == {"gate": 1} and report.sent == 1
    assert [m.contact_id for m in channel.sent] == ["c2"]
    row = rows(engine)["c1"]
    assert row.status == OutboxStatus.SKIPPED
    assert row.last_error == "gate: c1 asked us to stop"
    assert row.attempts == 0
    assert engine.store.deliveries(outbox_id=row.id) == []
    # Never retried: not after the lease, not a day later.
    for _ in range(3):
        frozen_clock.advance(timedelta(hours=8))
        assert engine.dispatch().claimed == 0
    assert [m.contact_id for m in channel.sent] == ["c2"]
    # The ruling is a decision explain can show.
    [decision] = recorded_decisions(engine.store, "welcome", "c1", limit=5)
    assert decision["outcome"] == "skipped"
    assert decision["checks"][-1]["name"] == "gate"


def test_a_deferred_row_comes_back_at_until_without_an_attempt(build, frozen_clock):
    opens = frozen_clock.now() + timedelta(hours=3)

    def defer(p: Pending, now: datetime) -> Ruling:
        if now < opens:
            return Ruling(check=Check.failed("window", "closed"), until=opens)
        return Ruling(check=Check.passed("window", "open"))

    engine, channel = build(Scripted("window", defer))
    queue(engine, "c1")
    report = engine.dispatch()
    assert report.deferred == {"window": 1} and report.sent == 0
    row = rows(engine)["c1"]
    assert row.status == OutboxStatus.PENDING
    assert row.available_at == opens
    assert row.attempts == 0
    assert engine.store.deliveries() == []
    assert engine.store.next_due() == opens
    frozen_clock.advance(timedelta(hours=2, minutes=59))
    assert engine.dispatch().claimed == 0  # not claimable before until
    frozen_clock.advance(timedelta(minutes=1))
    report = engine.dispatch()
    assert report.sent == 1 and report.deferred == {}
    sent = rows(engine)["c1"]
    assert sent.status == OutboxStatus.SENT and sent.attempts == 1
    assert [m.contact_id for m in channel.sent] == ["c1"]


def test_policies_run_in_order_and_a_later_one_sees_only_what_passed(build):
    def skip_c1(p: Pending, _now: datetime) -> Ruling:
        if p.row.contact_id == "c1":
            return Ruling(check=Check.failed("first", "no"))
        return Ruling(check=Check.passed("first"))

    first, second = Scripted("first", skip_c1), Scripted("second", passes)
    engine, _channel = build(first, second)
    queue(engine, "c1", "c2", "c3")
    report = engine.dispatch()
    assert sorted(first.seen) == ["c1", "c2", "c3"]
    assert sorted(second.seen) == ["c2", "c3"]
    assert report.sent == 2 and report.skipped == {"first": 1}


def test_the_policy_sees_the_touch_kind_contact_and_account(build):
    seen: list[Pending] = []

    def look(p: Pending, _now: datetime) -> Ruling:
        seen.append(p)
        return Ruling(check=Check.info("look"))

    engine, _channel = build(Scripted("look", look))
    queue(engine, "c1")
    assert engine.dispatch().sent == 1  # an info check lets the row through
    [p] = seen
    assert p.touch is not None and p.touch.name == "welcome"
    assert str(p.kind) == "email"
    assert p.contact is not None and p.contact.email == "nancy@northwind.test"
    assert p.account is not None and p.account.name == "Northwind"


@pytest.mark.parametrize(
    "broken",
    [
        lambda pending, now: 1 / 0,
        lambda pending, now: [],  # fewer rulings than rows
        lambda pending, now: [Check.passed("x") for _ in pending],  # not Rulings
    ],
    ids=["raises", "short", "not-rulings"],
)
def test_a_broken_policy_holds_the_batch_to_its_lease_and_the_pass_goes_on(
    build, frozen_clock, broken, caplog
):
    class Broken:
        name = "broken"

        def __init__(self) -> None:
            self.calls = 0

        def rule(self, pending, now):  # type: ignore[no-untyped-def]
            self.calls += 1
            if self.calls > 1:
                return [Ruling(check=Check.passed("broken")) for _ in pending]
            return broken(pending, now)

    engine, _channel = build(Broken())
    queue(engine, "c1", "c2")
    report = engine.dispatch()
    assert report.held == 2 and report.sent == 0 and report.stopped is None
    assert "broken" in caplog.text
    assert {r.status for r in engine.store.outbox_rows()} == {OutboxStatus.CLAIMED}
    assert all(r.attempts == 0 for r in engine.store.outbox_rows())
    frozen_clock.advance(DEFAULT_LEASE + timedelta(seconds=1))
    assert engine.dispatch().sent == 2


def test_reports_add_up_per_policy_name():
    from onetomany.delivery.dispatcher import DispatchReport

    total = DispatchReport(skipped={"a": 1}, deferred={"b": 2})
    total += DispatchReport(skipped={"a": 2, "c": 1}, held=3)
    assert total.skipped == {"a": 3, "c": 1} and total.deferred == {"b": 2}
    assert total.held == 3
