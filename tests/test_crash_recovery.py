"""A dispatcher killed with SIGKILL mid-batch loses nothing: a restart delivers every row."""

from __future__ import annotations

import email
import email.policy
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from onetomany import Account, Contact
from onetomany.engine import Engine
from onetomany.program import load_program

from .smtp_sink import SmtpSink

ROWS = 120
BATCH = 10

WORKER = """
import sys
from datetime import timedelta
from onetomany.engine import Engine
from onetomany.program import load_program

engine = Engine(load_program(sys.argv[1]), lease=timedelta(seconds=1), batch_size={batch})
print("dispatched", engine.dispatch(), flush=True)
"""


@pytest.fixture
def slow_sink():
    sink = SmtpSink(delay=0.01)
    with sink:
        yield sink


def _program(tmp_path, port):
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "hello.mjml").write_text(
        '+++\nsubject = "Hello {{ contact.name }}"\n+++\n'
        "<mjml><mj-body><mj-section><mj-column><mj-text>Hi {{ contact.name }}</mj-text>"
        "</mj-column></mj-section></mj-body></mjml>\n"
    )
    (tmp_path / "program.toml").write_text(
        textwrap.dedent(
            f"""
            [program]
            name = "crash"
            sender = "cs@acme.test"
            store = "store.db"

            [channels.email]
            plugin = "smtp"
            host = "127.0.0.1"
            port = {port}

            [touches.hello]
            trigger = {{ event = "go" }}
            channel = "email"
            template = "hello"
            audience = {{ every = true }}
            """
        )
    )
    return load_program(tmp_path)


def _worker(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(batch=BATCH))
    return subprocess.Popen(
        [sys.executable, str(script), str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sigkill_mid_batch_then_restart_delivers_every_row(tmp_path, slow_sink):
    program = _program(tmp_path, slow_sink.port)
    with Engine(program) as engine:
        engine.identify(Account(id="a1", name="Acme"))
        engine.identify(
            *(
                Contact(id=f"c{i:03}", account_id="a1", name=f"P{i}", email=f"p{i}@acme.test")
                for i in range(ROWS)
            )
        )
        engine.track("go", account_id="a1", id="go-1")
        assert engine.tick() == ROWS

    first = _worker(tmp_path)
    deadline = time.monotonic() + 30
    while len(slow_sink.messages) < ROWS // 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    assert first.returncode == -signal.SIGKILL
    received_before = len(slow_sink.messages)
    assert 0 < received_before < ROWS, "the kill must land mid-run"

    time.sleep(1.2)  # let the dead worker's lease run out
    second = _worker(tmp_path)
    _, err = second.communicate(timeout=60)
    assert second.returncode == 0, err

    recipients = [
        email.message_from_bytes(raw, policy=email.policy.default)["To"].addresses[0].addr_spec
        for raw in slow_sink.messages
    ]
    assert set(recipients) == {f"p{i}@acme.test" for i in range(ROWS)}
    # At most the rows in flight when the worker died can arrive twice.
    assert len(recipients) - ROWS <= BATCH

    with Engine(load_program(tmp_path)) as engine:
        rows = engine.store.outbox_rows()
        assert len(rows) == ROWS
        assert {row.status for row in rows} == {"sent"}
