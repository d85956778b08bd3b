"""The Celery example (examples/celery) against a real Redis (Debian's redis-server) and a real
Celery worker process: tick and dispatch run as tasks through the broker, each channel's
dispatch on its own queue, and the messages arrive in the outbox folder and the inbox."""

from __future__ import annotations

import gc
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import ModuleType

import pytest
import redis

from onetomany import Account, Contact
from onetomany.celery import beat_schedule, queue_for, register
from onetomany.engine import Engine
from onetomany.program import load_program

from .smtp_sink import free_port

EXAMPLE = Path(__file__).parent.parent / "examples" / "celery"
REDIS = shutil.which("redis-server")
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[str]:
    """A throwaway redis-server on a loopback port; its URL."""
    if REDIS is None:
        pytest.skip(
            "redis-server is not installed (Debian package redis-server; .ci/run installs it)"
        )
    port = free_port()
    server = subprocess.Popen(
        [
            REDIS,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        server.terminate()
        server.wait(timeout=20)


@pytest.fixture
def example(tmp_path: Path, broker: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """A copy of the example (its store and outbox in the copy), its Celery app imported here
    as a client of the same broker."""
    folder = tmp_path / "celery-example"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("var", "__pycache__"))
    # The workers run on the wall clock: email's window open at any hour the suite runs.
    with (folder / "program.toml").open("a") as program:
        program.write('\n[windows]\nemail = "always"\n')
    monkeypatch.setenv("CELERY_BROKER_URL", broker)
    spec = importlib.util.spec_from_file_location("celeryapp_under_test", folder / "celeryapp.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    # Results still referenced from cycles unsubscribe from the backend when collected: do it
    # while Redis is still up.
    gc.collect()
    module.app.close()


def _worker(folder: Path, broker: str, queues: list[str], name: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CELERY_BROKER_URL": broker, "PYTHONPATH": str(folder)}
    return subprocess.Popen(
        [
            str(BIN / "celery"),
            "-A",
            "celeryapp",
            "worker",
            "--pool",
            "solo",
            "-Q",
            ",".join(queues),
            "-n",
            f"{name}@test",
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            "WARNING",
        ],
        cwd=folder,
        env=env,
    )


def _stop(worker: subprocess.Popen[bytes]) -> None:
    worker.send_signal(signal.SIGTERM)  # a warm shutdown: the task in hand finishes
    try:
        worker.wait(timeout=30)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


def test_a_real_worker_ticks_and_dispatches_through_redis_a_queue_per_channel(
    example: ModuleType, broker: str
):
    folder = Path(example.__file__).parent
    with Engine(load_program(folder)) as engine:
        engine.identify(
            Account(id="a1", name="Northwind"),
            Contact(id="c1", account_id="a1", name="Nancy Davolio", email="nancy@northwind.test"),
        )
        engine.track("signed_up", account_id="a1", contact_id="c1")

    tasks = example.tasks
    # This worker serves the main queue and email: in-app dispatches wait for their own worker.
    main = _worker(folder, broker, ["onetomany", "onetomany.email"], "main")
    try:
        assert tasks.tick.delay().get(timeout=120) == 2
        # A tick that runs again (a redelivered message, a second beat) queues nothing twice.
        assert tasks.tick.delay().get(timeout=60) == 0
        email = tasks.dispatch_channel("email").get(timeout=60)
        assert (email["claimed"], email["sent"]) == (1, 1)
        [eml] = (folder / "var" / "outbox").glob("*.eml")
        assert b"nancy@northwind.test" in eml.read_bytes()

        waiting = tasks.dispatch_channel("inapp")
        time.sleep(2)
        assert not waiting.ready()  # no worker serves onetomany.inapp yet
        queued = redis.Redis.from_url(broker)
        assert queued.llen("onetomany.inapp") == 1
        queued.close()
        inapp = _worker(folder, broker, ["onetomany.inapp"], "inapp")
        try:
            assert waiting.get(timeout=120)["sent"] == 1
        finally:
            _stop(inapp)
    finally:
        _stop(main)
    with Engine(load_program(folder)) as engine:
        [tip] = engine.inbox("c1")
        assert tip.touch == "welcome_tip"
        assert {r.status for r in engine.store.outbox_rows()} == {"sent"}


def test_routes_and_the_beat_schedule_put_each_channel_on_its_own_queue(example: ModuleType):
    tasks = example.tasks
    assert tasks.channels == ("email", "inapp")
    assert tasks.queues() == ["onetomany", "onetomany.email", "onetomany.inapp"]
    route = tasks.route
    assert route("onetomany.dispatch", (), {"channels": ["email"]}) == {"queue": "onetomany.email"}
    assert route("onetomany.dispatch", (), {}) == {"queue": "onetomany"}
    assert route("onetomany.tick", (), {}) == {"queue": "onetomany"}
    assert route("someone.else", (), {}) is None
    schedule = example.app.conf.beat_schedule
    assert set(schedule) == {
        "onetomany-tick",
        "onetomany-dispatch-email",
        "onetomany-dispatch-inapp",
    }
    email = schedule["onetomany-dispatch-email"]
    assert email["task"] == "onetomany.dispatch"
    assert email["kwargs"] == {"channels": ["email"]}
    assert email["options"]["queue"] == queue_for("email")
    assert email["schedule"] == timedelta(seconds=15)
    with pytest.raises(ValueError, match="unknown channel 'sms'"):
        tasks.dispatch_channel("sms")
    with pytest.raises(ValueError, match="positive"):
        beat_schedule(tasks, tick=timedelta(0))


def test_a_bad_program_fails_when_the_tasks_are_registered(tmp_path: Path):
    from celery import Celery

    from onetomany.errors import ConfigError

    with pytest.raises(ConfigError, match=r"no program\.toml"):
        register(Celery("x"), tmp_path)
