"""The policy contract: every claimed outbox row passes the engine's policies before it renders.

(The shape agreed for issue 12; the dispatcher hook that runs the policies lands beside it.)
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

import attrs

from onetomany.model import Account, ChannelKind, Contact
from onetomany.model.decisions import Check
from onetomany.program import Touch
from onetomany.store import OutboxRow

__all__ = ["Pending", "Policy", "Ruling"]


@attrs.frozen(kw_only=True)
class Pending:
    """One claimed row, as a policy sees it."""

    row: OutboxRow
    #: The program's touch (None: a row of a touch since removed).
    touch: Touch | None
    kind: ChannelKind
    contact: Contact | None
    account: Account | None


@attrs.frozen(kw_only=True)
class Ruling:
    """One policy's word on one Pending: a failed check with ``until`` defers, without skips."""

    check: Check
    until: datetime | None = None


class Policy(Protocol):
    name: str

    def rule(self, pending: Sequence[Pending], now: datetime) -> list[Ruling]:
        """One Ruling per Pending, in the same order; batch-wise, so a policy asks the store
        once."""
        ...
