"""``suppression``: nothing reaches an address on the suppression list, on any channel."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from onetomany.delivery.policy import Pending, Ruling
from onetomany.model import ChannelKind
from onetomany.model.decisions import Check
from onetomany.rules.suppression import PERSON_REASONS, Suppression, addresses_of
from onetomany.store import Store
from onetomany.store.queries.suppression import suppressed


class SuppressionPolicy:
    """Skips a row whose recipient's address is suppressed, with the entry's reason.

    An email is checked by the contact's email, an SMS or WhatsApp message by their phone
    number; an in-app message or a CSM task, which reach the contact without an address of
    theirs, by both, for the entries that stand for the person (``manual``, ``legal``), not
    for one mailbox (a bounce). One lookup per batch.
    """

    name = "suppression"

    def __init__(self, store: Store) -> None:
        self.store = store

    def rule(self, pending: Sequence[Pending], now: datetime) -> list[Ruling]:
        wanted = [self._addresses(item) for item in pending]
        listed = suppressed(self.store, (a for addresses in wanted for a in addresses))
        return [
            self._one(item, addresses, listed)
            for item, addresses in zip(pending, wanted, strict=True)
        ]

    @staticmethod
    def _addresses(item: Pending) -> Sequence[str]:
        contact = item.contact
        if contact is None:
            return ()
        if item.kind is ChannelKind.EMAIL:
            return addresses_of(contact.email, None)
        if item.kind in (ChannelKind.SMS, ChannelKind.WHATSAPP):
            return addresses_of(None, contact.phone)
        return addresses_of(contact.email, contact.phone)

    def _one(
        self, item: Pending, addresses: Sequence[str], listed: dict[str, Suppression]
    ) -> Ruling:
        person_only = item.kind in (ChannelKind.INAPP, ChannelKind.CSM)
        for address in addresses:
            entry = listed.get(address)
            if entry is None or (person_only and entry.reason not in PERSON_REASONS):
                continue
            return Ruling(
                check=Check.failed(
                    self.name,
                    f"{address} is suppressed ({entry.reason.value}, from {entry.source} "
                    f"on {entry.at:%Y-%m-%d})",
                    address=address,
                    suppressed_for=entry.reason.value,
                    source=entry.source,
                    at=entry.at.isoformat(),
                )
            )
        return Ruling(check=Check.passed(self.name, "not suppressed", addresses=list(addresses)))
