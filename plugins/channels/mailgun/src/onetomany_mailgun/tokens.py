"""The webhook tokens a Mailgun channel has taken, to refuse a token used again.

Mailgun signs ``timestamp + token`` with the webhook signing key, not the body, so a captured
request's signature could be sent again with another body inside the replay window. Each
token is remembered here, with a digest of the body it came with, until it leaves the window:
the same token with the same body passes (Mailgun retrying; the event's id then makes it a
duplicate), with another body it is refused. The ledger is in memory, one per channel in one
process: with several web processes, the event id still keeps each event to one record.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict


class TokenLedger:
    """Tokens seen in the last ``window`` seconds, each with the digest of its body."""

    #: A bound on memory whatever arrives: the oldest tokens are forgotten first.
    MAX_TOKENS = 100_000

    def __init__(self, window: float) -> None:
        self.window = window
        self._seen: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, token: str, body: bytes, *, at: float, now: float) -> bool:
        """Record ``token`` (signed at ``at``) with ``body``; False when it was taken before
        with another body."""
        digest = hashlib.sha256(body).hexdigest()
        with self._lock:
            self._forget(now)
            seen = self._seen.get(token)
            if seen is not None:
                return seen[1] == digest
            self._seen[token] = (at, digest)
            while len(self._seen) > self.MAX_TOKENS:
                self._seen.popitem(last=False)
            return True

    def _forget(self, now: float) -> None:
        # Tokens arrive in about the order they were signed; drop those out of the window.
        while self._seen:
            token, (at, _) = next(iter(self._seen.items()))
            if now - at <= self.window:
                break
            del self._seen[token]
