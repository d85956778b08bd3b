"""What the three web examples share: the engine over examples/web-program, the signing keys
for the inbox tokens, a signup that identifies and tracks, and a worker thread.

Each framework example (web-fastapi, web-flask, web-django) adds only its own glue: two
routes of its own and the onetomany app mounted under /onetomany.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from onetomany import Account, Contact, Engine, load_program
from onetomany.store import Store
from onetomany.web import SigningKeys, issue_token

PROGRAM = Path(__file__).resolve().parent
#: For a local run only: set ONETOMANY_WEB_KEYS="k1:<32+ random characters>" in production.
DEVELOPMENT_KEY = "development-only-key-0123456789abcdef"


class Backend:
    """The engine a host process builds once, the keys, and a worker thread that runs
    ``tick`` and ``dispatch`` (in production, a separate worker process does that)."""

    def __init__(self, store: str | None = None, interval: float | None = None) -> None:
        program = load_program(PROGRAM / "program.toml")
        store = store or os.environ.get("ACME_STORE")
        self.engine = Engine(program, store=Store(store) if store else None)
        if os.environ.get("ONETOMANY_WEB_KEYS"):
            self.keys = SigningKeys.from_env()
        else:
            self.keys = SigningKeys.of({"dev": DEVELOPMENT_KEY})
        self.interval = interval or float(os.environ.get("ACME_WORKER_INTERVAL", "2"))
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None

    def signup(self, user_id: str, *, name: str, email: str, company: str) -> None:
        """The host's signup handler calls this: who the user is, then what happened."""
        account_id = f"acct-{user_id}"
        self.engine.identify(
            Account(id=account_id, name=company),
            Contact(id=user_id, account_id=account_id, name=name, email=email, role="admin"),
        )
        self.engine.track("signed_up", account_id=account_id, contact_id=user_id)

    def inbox_token(self, user_id: str) -> str:
        """The widget's token for the logged-in user (never for a user id the browser names)."""
        return issue_token(self.keys, user_id, engine=self.engine)

    def start_worker(self) -> None:
        if self._worker is None:
            self._stop.clear()
            self._worker = threading.Thread(target=self._work, name="onetomany-worker", daemon=True)
            self._worker.start()

    def _work(self) -> None:
        while not self._stop.is_set():
            self.engine.run_once()
            self._stop.wait(self.interval)

    def stop_worker(self) -> None:
        self._stop.set()
        if self._worker is not None:
            self._worker.join(timeout=30)
            self._worker = None

    def close(self) -> None:
        self.stop_worker()
        self.engine.close()
