"""The one Backend of the process (engine, keys, worker), shared by the views and asgi.py."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "web-program"))
from acme_backend import Backend

backend = Backend()
