"""One worker of the load run: ``python -m tests.load.worker STORE_URL POSTMARK_URL FOLDER``.

Dispatches the load program's outbox through Postmark (the local fake) until SIGTERM, as a
host's ``onetomany run`` worker would; a store that is down (the database restarting) is
waited out. SIGKILL stops it anywhere, which is the point.
"""

from __future__ import annotations

import logging
import signal
import sys
import time
from datetime import timedelta
from pathlib import Path
from types import FrameType

from onetomany import Engine
from onetomany.delivery.retry import RetryPolicy
from onetomany.errors import StoreError
from onetomany.plugins.settings import PluginSettings
from onetomany.program import Audience, EventTrigger, Program, Touch
from onetomany.rules.windows import DEFAULT_WINDOWS, WindowSettings
from onetomany.store import Store
from tests.load.harness import BATCH, LEASE_SECONDS, TOKEN

#: Enough attempts that 30% faults never exhaust them (0.3^30 per row), waits kept short.
RETRY = RetryPolicy(max_attempts=30, initial=0.2, maximum=2.0, jitter=0.2)


def program(provider: str, folder: Path) -> Program:
    # The harness wrote the templates before starting any worker: one rewriting the file
    # while another reads it would hand that one a half-written template.
    templates = folder / "templates"
    return Program(
        name="load",
        touches=(
            Touch(
                name="welcome",
                trigger=EventTrigger(event="signed_up"),
                channel="email",
                template="welcome",
                audience=Audience(roles=("admin",)),
            ),
        ),
        channels={
            "email": PluginSettings(
                name="email",
                plugin="postmark",
                options={"server_token": TOKEN, "base_url": provider, "batch_size": BATCH},
            )
        },
        templates_dir=templates,
        sender="Acme <success@acme.test>",
        base_dir=folder,
        retry=RETRY,
        # The workers run on the wall clock: email's window open at any hour of the run.
        windows=WindowSettings(windows={**DEFAULT_WINDOWS, "email": None}),
    )


def main(url: str, provider: str, folder: str) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(process)d %(levelname)s %(message)s")
    stopping = False

    def stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    engine = Engine(
        program(provider, Path(folder)),
        store=Store(url, migrate=False),
        lease=timedelta(seconds=LEASE_SECONDS),
        batch_size=BATCH,
        store_patience=5.0,
    )
    with engine:
        while not stopping:
            try:
                report = engine.dispatch(limit=BATCH * 5)
            except StoreError as exc:  # a claim while the database restarts
                logging.warning("store unavailable: %s", exc)
                time.sleep(0.5)
                continue
            if not report.claimed:
                time.sleep(0.1)


if __name__ == "__main__":
    main(*sys.argv[1:4])
