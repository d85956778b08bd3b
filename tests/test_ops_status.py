"""What an operator watches (``onetomany status``, the Prometheus exporter), asserted against a
store with known rows, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import textwrap
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from onetomany.cli.commands import app
from onetomany.engine import Engine
from onetomany.errors import PermanentDeliveryError, TransientDeliveryError
from onetomany.ops.prometheus import StoreCollector, metrics_app, registry_for, serve
from onetomany.ops.status import read_status
from onetomany.program import load_program
from onetomany.store.queries.source_syncs import sync_failed, sync_succeeded
from onetomany.testing import RecordingChannel

from .smtp_sink import free_port


@pytest.fixture
def known(make_engine, frozen_clock):
    """Three rows on ``email``: one sent, one dead, one waiting for its retry; and a source
    whose last sync failed two hours after its last success."""
    channel = RecordingChannel(
        failures=[PermanentDeliveryError("mailbox gone"), TransientDeliveryError("busy"), None]
    )
    engine = make_engine(channel)
    for account in ("a1", "a2", "a1"):  # the audience picks one contact per account
        engine.track("signed_up", account_id=account)
    assert engine.tick() == 3
    report = engine.dispatch()
    assert (report.sent, report.dead, report.retrying) == (1, 1, 1)
    now = frozen_clock.now()
    sync_succeeded(engine.store, "crm", at=now - timedelta(hours=3), stored=5, skipped=0)
    sync_failed(
        engine.store, "crm", at=now - timedelta(hours=1), error="timeout", stored=0, skipped=0
    )
    yield engine
    engine.close()


def test_status_counts_the_rows_attempts_tick_and_sources(known: Engine, frozen_clock):
    status = read_status(known.program, known.store, now=frozen_clock.now())
    [email] = status.channels
    assert email.rows == {"dead": 1, "pending": 1, "sent": 1}
    assert (email.queued, email.dead, status.queued, status.dead) == (1, 1, 1, 1)
    assert email.attempts == {"dead": 1, "retrying": 1, "sent": 1}
    assert email.error_rate == pytest.approx(2 / 3)
    # The retry is not due yet, so nothing waits.
    assert email.oldest_due_seconds == 0
    assert status.last_tick is not None
    assert status.last_tick["queued"] == 3
    assert status.last_tick["seconds"] >= 0
    [crm] = status.sources
    assert crm.staleness_seconds == 3 * 3600
    assert crm.failing is True


def test_the_oldest_due_row_ages_and_old_attempts_leave_the_window(known: Engine, frozen_clock):
    [retry] = known.store.outbox_rows(status="pending")
    frozen_clock.set(retry.available_at + timedelta(minutes=10))
    # Attempts older than the window no longer count (they were made 10+ minutes ago).
    status = read_status(
        known.program, known.store, now=frozen_clock.now(), window=timedelta(minutes=5)
    )
    [email] = status.channels
    assert email.oldest_due_seconds == 600
    assert status.oldest_due_seconds == 600
    assert email.attempts == {}
    assert email.error_rate == 0


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name, frozenset(sample.labels.items())] = sample.value
    return found


def test_prometheus_gauges_read_the_store_on_each_scrape(known: Engine, frozen_clock):
    collector = StoreCollector(known.program, known.store, now=frozen_clock.now)
    registry = registry_for(collector)
    samples = _samples(generate_latest(registry).decode())
    email = frozenset({("program", "acme"), ("channel", "email")})
    assert samples["onetomany_queue_depth", email] == 1
    assert samples["onetomany_dead_letters", email] == 1
    assert samples["onetomany_error_rate", email] == pytest.approx(2 / 3)
    assert samples["onetomany_attempts", email | {("status", "sent")}] == 1
    assert samples["onetomany_outbox_rows", email | {("status", "dead")}] == 1
    crm = frozenset({("program", "acme"), ("source", "crm")})
    assert samples["onetomany_source_failing", crm] == 1
    assert samples["onetomany_source_staleness_seconds", crm] == 3 * 3600
    assert ("onetomany_last_tick_seconds", frozenset({("program", "acme")})) in samples

    # A later scrape sees what changed since: the retry is sent.
    [retry] = known.store.outbox_rows(status="pending")
    frozen_clock.set(retry.available_at)
    assert known.dispatch().sent == 1
    samples = _samples(generate_latest(registry).decode())
    assert samples["onetomany_queue_depth", email] == 0
    assert samples["onetomany_outbox_rows", email | {("status", "sent")}] == 2


def test_the_exporter_serves_metrics_over_http(known: Engine, frozen_clock):
    collector = StoreCollector(known.program, known.store, now=frozen_clock.now)
    port = free_port()
    server = serve(collector, port)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            body = answer.read().decode()
    finally:
        server.shutdown()
        server.server_close()
    assert 'onetomany_dead_letters{channel="email",program="acme"} 1.0' in body


PROGRAM = """\
[program]
name = "ops"
sender = "Ops <ops@example.test>"
store = "var/store.db"

[channels.email]
plugin = "outbox"
folder = "var/outbox"

[touches.welcome]
trigger = { event = "signed_up" }
channel = "email"
template = "welcome"
"""

WELCOME = """\
+++
subject = "Welcome"
+++
<mjml><mj-body><mj-section><mj-column><mj-text>Hi</mj-text></mj-column></mj-section></mj-body></mjml>
"""


def write_program(folder: Path, extra: str = "") -> Path:
    (folder / "templates").mkdir(parents=True)
    (folder / "templates" / "welcome.mjml").write_text(WELCOME)
    (folder / "program.toml").write_text(PROGRAM + textwrap.dedent(extra))
    return folder


def test_the_status_command_prints_the_same_facts_as_json(tmp_path: Path):
    from onetomany import Account, Contact

    folder = write_program(tmp_path / "prog")
    with Engine(load_program(folder)) as engine:
        engine.identify(
            Account(id="a1", name="Northwind"),
            Contact(id="c1", account_id="a1", email="c1@northwind.test"),
        )
        engine.track("signed_up", contact_id="c1", account_id="a1")
        assert engine.tick() == 1
    result = CliRunner().invoke(app, ["status", str(folder), "--json"])
    assert result.exit_code == 0, result.output
    facts = json.loads(result.output)
    assert facts["queued"] == 1
    assert facts["channels"]["email"]["rows"] == {"pending": 1}
    assert facts["last_tick"]["queued"] == 1
    table = CliRunner().invoke(app, ["status", str(folder)])
    assert table.exit_code == 0, table.output
    assert "ops: 1 queued, 0 dead letter(s)" in table.output


def test_tick_dispatch_and_prune_commands_run_the_single_steps(tmp_path: Path):
    from onetomany import Account, Contact

    # The commands run on the wall clock: email's window is open at any hour of the run.
    extra = '[retention]\nevents = "30d"\n[windows]\nemail = "always"\n'
    folder = write_program(tmp_path / "prog", extra)
    with Engine(load_program(folder)) as engine:
        engine.identify(
            Account(id="a1", name="Northwind"),
            Contact(id="c1", account_id="a1", email="c1@northwind.test"),
        )
        engine.track("signed_up", contact_id="c1", account_id="a1")
    runner = CliRunner()
    ticked = runner.invoke(app, ["tick", str(folder), "--no-sync"])
    assert ticked.exit_code == 0, ticked.output
    assert "queued 1 touch(es)" in ticked.output
    wrong = runner.invoke(app, ["dispatch", str(folder), "--channel", "sms"])
    assert wrong.exit_code == 1
    assert "unknown channel 'sms'" in str(wrong.exception)
    sent = runner.invoke(app, ["dispatch", str(folder), "--channel", "email"])
    assert sent.exit_code == 0, sent.output
    assert "claimed 1: delivered 1" in sent.output
    assert len(list((folder / "var" / "outbox").glob("*.eml"))) == 1
    pruned = runner.invoke(app, ["prune", str(folder), "--dry-run", "--json"])
    assert pruned.exit_code == 0, pruned.output
    assert json.loads(pruned.output) == {
        "archives": [],
        "cap_reservations": 0,
        "decisions": 0,
        "deliveries": 0,
        "dry_run": True,
        "events": 0,
    }


def test_the_wsgi_app_a_host_mounts_serves_the_same_gauges(known: Engine, frozen_clock):
    from wsgiref.util import setup_testing_defaults

    wsgi = metrics_app(StoreCollector(known.program, known.store, now=frozen_clock.now))
    environ: dict[str, object] = {"PATH_INFO": "/metrics"}
    setup_testing_defaults(environ)
    answers: list[str] = []
    body = b"".join(wsgi(environ, lambda status, headers: answers.append(status)))
    assert answers == ["200 OK"]
    samples = _samples(body.decode())
    email = frozenset({("program", "acme"), ("channel", "email")})
    assert samples["onetomany_queue_depth", email] == 1
