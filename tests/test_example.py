"""What the bundled example (examples/onboarding) shows a newcomer, read off the messages it
renders: the same Composer, templates and channels' view as a live run."""

from __future__ import annotations

import csv
import re
import shutil
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from onetomany.cli.preview import DEFAULT_LOCALES, write_preview
from onetomany.cli.simulate import SimulationReport, Simulator
from onetomany.engine import Engine
from onetomany.model import Account, ChannelKind, Contact, Message
from onetomany.model.clock import FrozenClock
from onetomany.program import load_program
from onetomany.rules.triggers import ENGINE_EVENT_NAMES
from onetomany.store import Store, schema
from onetomany.testing import RecordingChannel

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "onboarding"
#: Every trait the example's templates read.
TRAITS = {
    "plan": "pro",
    "mrr": 1200.0,
    "seats": 25,
    "active_users": 9,
    "owner": "ana.souza@acme-analytics.test",
    "invoice_due_date": "2026-10-15",
    "invoice_status": "open",
}


@pytest.fixture(scope="module")
def simulation(tmp_path_factory) -> tuple[SimulationReport, str]:
    """Nearly four weeks of the example, dry run (the signups of accounts in en, pt-BR and
    id), and the store it leaves."""
    url = f"sqlite:///{tmp_path_factory.mktemp('example') / 'simulation.db'}"
    report = Simulator(
        load_program(EXAMPLE),
        datetime(2026, 9, 1, tzinfo=UTC),
        datetime(2026, 9, 26, tzinfo=UTC),
        dry_run=True,
        step=timedelta(hours=3),
        store_url=url,
    ).run()
    return report, url


@pytest.fixture
def simulated(simulation) -> tuple[Message, ...]:
    return simulation[0].messages


def _bullets(message: Message) -> list[str]:
    return [line[2:].strip() for line in message.text.splitlines() if line.startswith("- ")]


def test_the_day_recap_lists_the_customers_own_events_only(simulated):
    recaps = [m for m in simulated if m.touch == "day_recap"]
    assert len(recaps) >= 10
    bullets = [b for m in recaps for b in _bullets(m)]
    # The example's product events appear, in words (the template labels them).
    assert "connected a data source" in bullets
    for message in recaps:
        for name in ENGINE_EVENT_NAMES:
            assert name not in message.text, (message.idempotency_key, name)
            assert name not in message.html, (message.idempotency_key, name)


def test_every_event_the_engine_wrote_is_named_an_engine_event(simulation):
    _, url = simulation
    with (EXAMPLE / "data" / "events.csv").open() as file:
        product = {row["name"] for row in csv.DictReader(file)} - {"message_opened"}
    store = Store(url)
    try:
        with store.engine.connect() as conn:
            names = set(conn.scalars(sa.select(schema.events.c.name).distinct()))
    finally:
        store.close()
    assert {"message_sent", "stage_entered", "tier_changed"} <= names
    assert names - product <= ENGINE_EVENT_NAMES
    assert not product & ENGINE_EVENT_NAMES


def _lang(html: str) -> str:
    found = re.search(r'<html lang="([^"]*)"', html)
    assert found is not None, html[:200]
    return found.group(1)


def test_every_html_part_carries_its_recipients_locale(simulation):
    with (EXAMPLE / "data" / "contacts.csv").open() as file:
        locales = {row["id"]: row["locale"] for row in csv.DictReader(file)}
    emails = [m for m in simulation[0].messages if m.html]
    assert {locales[m.contact_id] for m in emails} == set(DEFAULT_LOCALES)
    for message in emails:
        assert _lang(message.html) == locales[message.contact_id], message.idempotency_key


@pytest.mark.parametrize("locale", DEFAULT_LOCALES)
def test_every_touch_of_the_example_renders_with_its_locales_lang(tmp_path, locale):
    program = load_program(EXAMPLE)
    account = Account(id="a1", name="Northwind", traits=TRAITS)
    for role in ("admin", "sponsor", "analyst"):
        contact = Contact(
            id=f"c-{role}", account_id="a1", name="Nancy Davolio", email="n@x.test", role=role
        )
        written = write_preview(
            program, None, contact=contact, account=account, locale=locale, out_dir=tmp_path
        )
        pages = [p for p in written if p.suffix == ".html"]
        assert len(pages) >= 10
        for path in pages:
            assert _lang(path.read_text(encoding="utf-8")) == locale, path.name


#: The touches that answer a moment of an account's past, not its present.
HISTORY_DRIVEN = {
    "welcome",
    "day_recap",
    "onboarding_done",
    "quarterly_review",
    "nps",
    "high_touch_intro",
    "first_report_tip",
}


@pytest.fixture
def adopted(tmp_path) -> Iterator[tuple[Engine, FrozenClock]]:
    """The example's program on a fresh store, on 22 October 2026: two days after Alpine Ski
    House (acc-012, in Jakarta) signed up, months after most accounts did."""
    folder = tmp_path / "onboarding"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("var"))
    clock = FrozenClock(datetime(2026, 10, 22, tzinfo=UTC))
    channels = {
        name: RecordingChannel(kind=kind)
        for name, kind in {
            "email": ChannelKind.EMAIL,
            "sms": ChannelKind.SMS,
            "csm": ChannelKind.CSM,
            "inapp": ChannelKind.INAPP,
        }.items()
    }
    with Engine(load_program(folder), clock=clock, channels=channels) as engine:
        yield engine, clock


def _queued(engine: Engine) -> Counter[str]:
    return Counter(row.touch for row in engine.store.outbox_rows())


def test_from_now_sends_nothing_for_the_history_and_everything_new(adopted):
    engine, clock = adopted
    assert not engine.has_handled_events()
    started = engine.start_from_now()
    assert started.applied
    [synced] = started.synced
    # The CSV's events up to now, and the tier and journey moves the data implies.
    assert started.skipped_events > synced.new_events > 300
    engine.step()
    assert not set(_queued(engine)) & HISTORY_DRIVEN, _queued(engine)
    # A recap day already past is history too: the next one is today's, 17:00 in Jakarta.
    assert engine.next_due("day_recap", "ct-021") == datetime(2026, 10, 22, 10, tzinfo=UTC)

    engine.identify(
        Account(id="acc-new", name="New Co", traits={"plan": "pro", "mrr": 99.0}),
        Contact(id="ct-new", account_id="acc-new", name="Nia", email="n@new.test", role="admin"),
    )
    engine.track("signed_up", account_id="acc-new", id="ev-new-signed_up")
    clock.set(datetime(2026, 10, 22, 10, tzinfo=UTC))
    engine.step()
    rows = {(r.touch, r.contact_id) for r in engine.store.outbox_rows()}
    assert ("welcome", "ct-new") in rows
    assert ("day_recap", "ct-021") in rows
    assert not {t for t, c in rows if c != "ct-new"} & (HISTORY_DRIVEN - {"day_recap"})


def test_from_now_on_a_store_already_run_skips_nothing(adopted):
    engine, _ = adopted
    engine.run_once()
    engine.track("signed_up", account_id="acc-001", id="ev-again")
    started = engine.start_from_now()
    assert not started.applied and started.skipped_events == 0
    assert engine.unhandled_events() >= 1  # the signup (and the round's deliveries)
    engine.step()
    assert ("welcome", "ct-001") in {(r.touch, r.contact_id) for r in engine.store.outbox_rows()}


def test_without_from_now_the_first_round_replays_the_history(adopted):
    engine, _ = adopted
    [synced] = engine.sync()
    assert engine.unhandled_events() == synced.new_events > 300
    engine.step()
    assert {"welcome", "nps", "onboarding_done", "day_recap"} <= set(_queued(engine))
    assert engine.has_handled_events()
