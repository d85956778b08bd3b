"""Frequency caps: the TOML form, the slot arithmetic, and no double spend under concurrency."""

from __future__ import annotations

import threading
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onetomany import Contact
from onetomany.delivery.policies import FrequencyCaps
from onetomany.delivery.policy import Pending
from onetomany.model import ChannelKind, Delivery
from onetomany.model.decisions import Verdict
from onetomany.rules.caps import Cap, Grant, Hold, Request, allocate, next_free_slot, read_caps
from onetomany.store import NewTouch, Outcome, Store, schema
from onetomany.store.queries.caps import reservations

T0 = datetime(2026, 9, 7, 12, 0, tzinfo=UTC)
WEEKLY = Cap(name="weekly", per="contact", max=2, window=timedelta(days=7), channel="email")


# -- the arithmetic ---------------------------------------------------------------------------


def test_the_next_free_slot_is_when_enough_counted_sends_age_out():
    times = [T0 - timedelta(days=6), T0 - timedelta(days=2), T0 - timedelta(days=1)]
    # Three in the window, two allowed: the two oldest must leave; the second leaves at -2+7.
    assert next_free_slot(times, WEEKLY, T0) == T0 + timedelta(days=5)
    assert next_free_slot(times[:1], WEEKLY, T0) is None
    assert next_free_slot([T0 - timedelta(days=8)] * 5, WEEKLY, T0) is None


def test_allocate_serves_requests_in_order_and_a_held_row_takes_nothing():
    caps = {"weekly": WEEKLY, "daily": Cap(name="daily", per="contact", max=1, window=timedelta(1))}
    requests = [
        Request(row_id=1, keys=(("weekly", "c1"), ("daily", "c1"))),
        Request(row_id=2, keys=(("weekly", "c1"), ("daily", "c1"))),
        Request(row_id=3, keys=(("weekly", "c1"),)),
        Request(row_id=4, keys=(("weekly", "c1"),)),
    ]
    answers = allocate(requests, caps, {}, {}, T0)
    assert isinstance(answers[0], Grant)
    assert isinstance(answers[1], Hold)
    assert answers[1].cap == "daily"
    assert answers[1].until == T0 + timedelta(days=1)
    assert isinstance(answers[2], Grant)  # row 2 waited without spending a weekly slot
    assert isinstance(answers[3], Hold)
    assert answers[3].until == T0 + timedelta(days=7)


def test_a_row_that_already_holds_its_slot_is_not_charged_again():
    counted = {("weekly", "c1"): [T0 - timedelta(hours=1), T0 - timedelta(hours=2)]}
    held = {7: frozenset({("weekly", "c1")})}
    [answer] = allocate(
        [Request(row_id=7, keys=(("weekly", "c1"),))], {"weekly": WEEKLY}, counted, held, T0
    )
    assert answer == Grant(row_id=7, new=())


# -- program.toml -----------------------------------------------------------------------------


def read(section):
    return read_caps(section, file="program.toml", channels=["email", "sms"], touches=["a", "b"])


def test_a_cap_reads_from_its_table():
    caps, errors = read(
        {
            "weekly": {"per": "account", "channel": "email", "max": 5, "days": 7},
            "texts": {"channel": "sms", "max": 1, "hours": 24, "touches": ["a"]},
            "slow": {"max": 1, "days": 3, "drop_after_days": 2},
        }
    )
    assert errors == []
    assert caps["weekly"] == Cap(
        name="weekly", per="account", max=5, window=timedelta(days=7), channel="email"
    )
    assert caps["texts"].touches == frozenset({"a"})
    assert caps["texts"].window == timedelta(hours=24)
    assert caps["slow"].drop_after == timedelta(days=2)
    assert caps["slow"].per == "contact"


@pytest.mark.parametrize(
    ("body", "key", "reason"),
    [
        ({"max": 0, "days": 7}, "caps.x.max", "never met"),
        ({"max": 2}, "caps.x", "days = N or hours = N"),
        ({"max": 2, "days": 7, "hours": 1}, "caps.x", "one of them"),
        ({"max": 2, "days": 0}, "caps.x.days", "> 0"),
        ({"max": 2, "days": 7, "per": "team"}, "caps.x.per", "contact"),
        ({"max": 2, "days": 7, "channel": "fax"}, "caps.x.channel", "unknown channel"),
        ({"max": 2, "days": 7, "touches": ["zzz"]}, "caps.x.touches", "unknown touch"),
        ({"max": 2, "days": 7, "drop_after_days": -1}, "caps.x.drop_after_days", "> 0"),
        ({"max": 2, "days": 7, "often": True}, "caps.x.often", "unknown key"),
        ("two a week", "caps.x", "expected a table"),
    ],
)
def test_bad_caps_are_refused_with_file_and_key(body, key, reason):
    caps, errors = read({"x": body})
    assert caps == {}
    assert [(e.file, e.key) for e in errors][:1] == [("program.toml", key)]
    assert reason in errors[0].reason


def test_a_cap_the_programs_own_cadence_exceeds_is_refused(tmp_path):
    from onetomany.errors import ConfigErrors
    from onetomany.program import load_program

    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "recap.mjml").write_text(
        "<mjml><mj-body><mj-section><mj-column><mj-text>hi</mj-text></mj-column>"
        "</mj-section></mj-body></mjml>"
    )
    (tmp_path / "program.toml").write_text(
        """
[program]
name = "p"
[channels.email]
plugin = "outbox"
folder = "out"
[touches.recap]
trigger = { rrule = "FREQ=DAILY;BYHOUR=17;COUNT=5", anchor = "signed_up" }
channel = "email"
template = "recap"
[caps.weekly]
channel = "email"
max = 2
days = 7
"""
    )
    with pytest.raises(ConfigErrors) as caught:
        load_program(tmp_path)
    [error] = caught.value.errors
    assert error.key == "caps.weekly"
    assert "'recap' alone is sent 5 times in 7 days" in error.reason


# -- the policy on a real store ---------------------------------------------------------------

PEOPLE = [Contact(id=f"c{n}", account_id=f"a{n % 2}", email=f"c{n}@example.test") for n in range(4)]


def queue(store: Store, rows: list[tuple[str, str, str]], now: datetime) -> None:
    """Queue ``(key, touch, channel)`` rows for contact c0 (or the contact in the key)."""
    store.enqueue(
        [
            NewTouch(
                idempotency_key=key,
                program="p",
                touch=touch,
                channel=channel,
                template=touch,
                contact_id=key.split(":")[0],
                account_id=None,
                available_at=now,
            )
            for key, touch, channel in rows
        ],
        now=now,
    )


def pending_of(rows, contacts=None) -> list[Pending]:
    people = {c.id: c for c in (contacts or PEOPLE)}
    return [
        Pending(
            row=row,
            touch=None,
            kind=ChannelKind(row.channel),
            contact=people.get(row.contact_id),
            account=None,
        )
        for row in rows
    ]


def record(store: Store, row, status: str, now: datetime, retry_at=None) -> None:
    delivery = Delivery(
        outbox_id=row.id,
        idempotency_key=row.idempotency_key,
        channel=row.channel,
        attempt=row.attempts + 1,
        status=status,
        at=now,
        touch=row.touch,
        contact_id=row.contact_id,
    )
    store.record_many([Outcome(delivery=delivery, claim_token=row.claim_token, retry_at=retry_at)])


def test_the_policy_lets_the_higher_priority_touch_take_the_last_slot(store):
    store.save_profiles(contacts=PEOPLE, now=T0)
    queue(store, [("c0:news", "news", "email"), ("c0:invoice", "invoice", "email")], T0)
    rows = store.claim(worker="w", now=T0, lease=timedelta(minutes=1), limit=10)
    cap = Cap(name="one", per="contact", max=1, window=timedelta(days=1))
    policy = FrequencyCaps(store, {"one": cap}, priorities={"invoice": 10})
    rulings = dict(zip([r.touch for r in rows], policy.rule(pending_of(rows), T0), strict=True))
    assert rulings["invoice"].check.verdict is Verdict.PASS
    assert rulings["news"].check.verdict is Verdict.FAIL
    assert rulings["news"].until == T0 + timedelta(days=1)
    assert "cap one: 1 of 1 used" in rulings["news"].check.reason
    assert [(c, s) for c, s, _, _ in reservations(store)] == [("one", "c0")]


def test_a_capped_touch_past_its_deadline_is_dropped_and_a_dead_row_frees_its_slot(store):
    store.save_profiles(contacts=PEOPLE, now=T0)
    queue(store, [("c0:a", "a", "email"), ("c0:b", "b", "email")], T0)
    cap = Cap(name="one", per="contact", max=1, window=timedelta(days=3), drop_after=timedelta(1))
    policy = FrequencyCaps(store, {"one": cap})
    rows = store.claim(worker="w", now=T0, lease=timedelta(minutes=1), limit=10)
    first, second = policy.rule(pending_of(rows), T0)
    assert first.check.verdict is Verdict.PASS
    assert second.check.verdict is Verdict.FAIL
    assert second.until is None
    assert "dropped" in second.check.reason
    # The first row dead-letters: its slot no longer counts.
    record(store, rows[0], "dead", T0)
    record(store, rows[1], "retrying", T0, retry_at=T0)
    [again] = store.claim(worker="w", now=T0, lease=timedelta(minutes=1), limit=10)
    [ruling] = policy.rule(pending_of([again]), T0)
    assert ruling.check.verdict is Verdict.PASS


def test_an_account_cap_counts_every_contact_of_the_account_and_csm_tasks_only_when_named(store):
    store.save_profiles(contacts=PEOPLE, now=T0)
    # c0 and c2 are both in account a0.
    queue(store, [("c0:a", "a", "email"), ("c2:a", "a", "email"), ("c0:task", "t", "csm")], T0)
    rows = store.claim(worker="w", now=T0, lease=timedelta(minutes=1), limit=10)
    cap = Cap(name="acct", per="account", max=1, window=timedelta(days=7))
    rulings = FrequencyCaps(store, {"acct": cap}).rule(pending_of(rows), T0)
    verdicts = {
        r.idempotency_key: ruling.check.verdict for r, ruling in zip(rows, rulings, strict=True)
    }
    assert verdicts == {"c0:a": Verdict.PASS, "c2:a": Verdict.FAIL, "c0:task": Verdict.INFO}


# -- no cap is ever exceeded, whatever the workers do -----------------------------------------

TOUCHES = {"news": "email", "tips": "email", "invoice": "sms"}


@st.composite
def programs(draw: st.DrawFn) -> dict[str, Cap]:
    caps = {}
    for n in range(draw(st.integers(1, 3))):
        caps[f"cap{n}"] = Cap(
            name=f"cap{n}",
            per=draw(st.sampled_from(["contact", "account"])),
            max=draw(st.integers(1, 3)),
            window=timedelta(hours=draw(st.integers(1, 30))),
            channel=draw(st.sampled_from([None, "email", "sms"])),
        )
    return caps


histories = st.lists(
    st.tuples(
        st.integers(0, 3),  # contact
        st.sampled_from(sorted(TOUCHES)),
        st.integers(-24, 24),  # hours after the start the row is due
    ),
    min_size=1,
    max_size=30,
)


def _clear(store: Store) -> None:
    with store.write() as conn:
        for table in (schema.cap_reservations, schema.deliveries, schema.events, schema.outbox):
            conn.execute(sa.delete(table))


def _run_workers(store, policy, now, workers, batch):
    barrier = threading.Barrier(workers)
    failures = []

    def work(n: int) -> None:
        try:
            barrier.wait(timeout=30)
            while True:
                rows = store.claim(worker=f"w{n}", now=now, lease=timedelta(minutes=5), limit=batch)
                if not rows:
                    return
                for row, ruling in zip(rows, policy.rule(pending_of(rows), now), strict=True):
                    if ruling.check.verdict is Verdict.FAIL:
                        record(store, row, "retrying", now, retry_at=ruling.until)
                    else:
                        record(store, row, "sent", now)
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures


def _assert_within_caps(store: Store, caps: dict[str, Cap]) -> int:
    rows = {r.id: r for r in store.outbox_rows()}
    people = {c.id: c for c in PEOPLE}
    sends = [(rows[d.outbox_id], d.at) for d in store.deliveries() if d.status == "sent"]
    for cap in caps.values():
        times = defaultdict(list)
        for row, at in sends:
            if not cap.covers(row.touch, row.channel):
                continue
            scope = row.contact_id if cap.per == "contact" else people[row.contact_id].account_id
            times[scope].append(at)
        for scope, sent in times.items():
            sent.sort()
            for i, at in enumerate(sent):
                inside = [t for t in sent[: i + 1] if t > at - cap.window]
                assert len(inside) <= cap.max, (cap, scope, sent)
    return len(sends)


def check_caps_hold(store, caps, history, workers, batch):
    _clear(store)
    store.save_profiles(contacts=PEOPLE, now=T0)
    store.enqueue(
        [
            NewTouch(
                idempotency_key=f"c{contact}:{touch}:{n}",
                program="p",
                touch=touch,
                channel=TOUCHES[touch],
                template=touch,
                contact_id=f"c{contact}",
                account_id=None,
                available_at=T0 + timedelta(hours=due),
            )
            for n, (contact, touch, due) in enumerate(history)
        ],
        now=T0 - timedelta(days=2),
    )
    policy = FrequencyCaps(store, caps, priorities={"invoice": 5})
    now = T0 - timedelta(hours=24)
    while now <= T0 + timedelta(hours=72):
        _run_workers(store, policy, now, workers, batch)
        now += timedelta(hours=3)
    _assert_within_caps(store, caps)


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    caps=programs(),
    history=histories,
    workers=st.integers(2, 4),
    batch=st.integers(1, 4),
)
def test_caps_are_never_exceeded_by_concurrent_workers(store, caps, history, workers, batch):
    check_caps_hold(store, caps, history, workers, batch)
