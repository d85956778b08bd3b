"""A steady round's cursor as stored in ``cursors``: what it is valid for, when it ran, and how
far it had read the event log (:mod:`onetomany.triggers.rounds` and
:mod:`onetomany.tracking.journeys` keep one each).

It is a small JSON object, so a round may add what else it needs to remember.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from onetomany.store.store import EventPosition


def digest(*read: object) -> str:
    """A short digest of what a round read its answer from."""
    return hashlib.sha256(repr(read).encode()).hexdigest()[:16]


def cursor_value(shape: str, now: datetime, log: EventPosition, **more: Any) -> str:
    """A round's cursor: its shape, when it ran, how far it had read the log, and ``more``."""
    return json.dumps({"shape": shape, "at": now.isoformat(), "log": str(log), **more})


def last_round(stored: str | None, shape: str, now: datetime) -> Mapping[str, Any] | None:
    """The last round's cursor as stored, with ``at`` as a datetime and ``log`` as a position;
    None (read everything) without a usable one: the first round, a changed definition, or a
    clock that went back."""
    if stored is None:
        return None
    last = json.loads(stored)
    then = datetime.fromisoformat(last["at"])
    if last.get("shape") != shape or then > now:
        return None
    return {**last, "at": then, "log": EventPosition.parse(last["log"])}
