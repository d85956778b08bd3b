"""``caps``: frequency caps, counted and reserved in the store in one transaction per batch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from onetomany.delivery.policy import Pending, Ruling
from onetomany.model import ChannelKind
from onetomany.model.decisions import Check
from onetomany.rules.caps import Cap, Grant, Hold, Request
from onetomany.store import Store
from onetomany.store.queries.caps import queued_at, reserve


class FrequencyCaps:
    """Lets a row through while every cap covering it has a free slot in its rolling window,
    and takes the slot; a row over a cap waits for the next free slot, or is dropped once the
    cap's ``drop_after`` has passed since it was queued.

    Run it last: a slot is spent when this policy lets the row through, so a later policy must
    not stop it. Rows compete in priority order (the touch's ``priority``, high first). A CSM
    task reaches the account's CSM, not the contact: only a cap that names its channel counts it.
    """

    name = "caps"

    def __init__(
        self, store: Store, caps: Mapping[str, Cap], priorities: Mapping[str, int] | None = None
    ) -> None:
        self.store = store
        self.caps = caps
        self.priorities = priorities or {}

    def _keys(self, item: Pending) -> tuple[tuple[str, str], ...]:
        row, keys = item.row, []
        for cap in self.caps.values():
            if not cap.covers(row.touch, row.channel):
                continue
            if cap.channel is None and item.kind is ChannelKind.CSM:
                continue
            if cap.per == "contact":
                scope = row.contact_id
            else:
                scope = (item.contact.account_id if item.contact else None) or row.account_id
            if scope:
                keys.append((cap.name, scope))
        return tuple(keys)

    def rule(self, pending: Sequence[Pending], now: datetime) -> list[Ruling]:
        requests = [Request(row_id=item.row.id, keys=self._keys(item)) for item in pending]
        order = sorted(
            range(len(pending)),
            key=lambda i: (
                -self.priorities.get(pending[i].row.touch, 0),
                pending[i].row.available_at,
                pending[i].row.id,
            ),
        )
        answers = reserve(self.store, [requests[i] for i in order], self.caps, now=now)
        by_row = {answer.row_id: answer for answer in answers}
        waiting = [a.row_id for a in answers if isinstance(a, Hold) and self.caps[a.cap].drop_after]
        queued = queued_at(self.store, waiting) if waiting else {}
        rulings = []
        for item, request in zip(pending, requests, strict=True):
            answer = by_row[item.row.id]
            if isinstance(answer, Grant):
                rulings.append(self._granted(request))
            else:
                rulings.append(self._held(answer, queued.get(item.row.id)))
        return rulings

    def _granted(self, request: Request) -> Ruling:
        if not request.keys:
            return Ruling(check=Check.info(self.name, "no cap covers this touch"))
        names = sorted({cap for cap, _ in request.keys})
        described = "; ".join(self.caps[name].describe() for name in names)
        return Ruling(check=Check.passed(self.name, f"within {described}", caps=names))

    def _held(self, hold: Hold, queued: datetime | None) -> Ruling:
        cap = self.caps[hold.cap]
        full = (
            f"cap {cap.name}: {hold.counted} of {cap.max} used ({cap.describe()}) "
            f"for {cap.per} {hold.scope}"
        )
        inputs = {
            "cap": cap.name,
            "scope": hold.scope,
            "counted": hold.counted,
            "max": cap.max,
            "free_at": hold.until.isoformat(),
        }
        if cap.drop_after is not None and queued is not None:
            deadline = queued + cap.drop_after
            if hold.until > deadline:
                reason = (
                    f"{full}; dropped: the next free slot ({hold.until.isoformat()}) is past "
                    f"its deadline ({deadline.isoformat()})"
                )
                return Ruling(check=Check.failed(self.name, reason, **inputs))
        reason = f"{full}; deferred to the next free slot, {hold.until.isoformat()}"
        return Ruling(check=Check.failed(self.name, reason, **inputs), until=hold.until)
