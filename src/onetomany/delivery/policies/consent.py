"""``consent``: the contact's consent per channel, and their subscriptions per topic."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from onetomany.delivery.policy import Pending, Ruling
from onetomany.model import ChannelKind
from onetomany.model.decisions import Check
from onetomany.rules.topics import Answer, Preferences, Topic, answers_by_contact
from onetomany.store import Store
from onetomany.store.queries.subscriptions import answers_of


class ConsentPolicy:
    """Skips a row whose contact refused its channel kind (``consent``) or unsubscribed
    from its touch's topic (or from everything) on that channel. A transactional topic is
    not governed by unsubscribing; a CSM task goes to the account's owner and is not governed
    by the contact's consent. One lookup per batch."""

    name = "consent"

    def __init__(self, store: Store, topics: Mapping[str, Topic]) -> None:
        self.store = store
        self.topics = topics

    def rule(self, pending: Sequence[Pending], now: datetime) -> list[Ruling]:
        ids = {item.contact.id for item in pending if item.contact is not None}
        answers = answers_by_contact(answers_of(self.store, ids))
        return [self._one(item, answers.get(item.row.contact_id or "", [])) for item in pending]

    def _one(self, item: Pending, answers: list[Answer]) -> Ruling:
        contact, kind = item.contact, item.kind
        if contact is None or kind is ChannelKind.CSM:
            return Ruling(check=Check.info(self.name, "no contact's consent applies"))
        if not contact.allows(kind):
            return Ruling(
                check=Check.failed(
                    self.name, f"contact {contact.id!r} has not consented to {kind}", channel=kind
                )
            )
        topic = item.touch.topic if item.touch is not None else None
        inputs = {"topic": topic, "channel": str(kind)}
        declared = self.topics.get(topic) if topic else None
        if declared is not None and declared.transactional:
            return Ruling(check=Check.passed(self.name, f"{topic!r} is transactional", **inputs))
        answer = None
        if answers:  # most contacts never answered: no Preferences to build
            prefs = Preferences(contact_id=contact.id, topics=self.topics, answers=answers)
            answer = prefs.deciding(topic, str(kind))
        if answer is None:
            return Ruling(check=Check.passed(self.name, "subscribed (never opted out)", **inputs))
        inputs["answer"] = answer.describe()
        if answer.subscribed:
            return Ruling(check=Check.passed(self.name, answer.describe(), **inputs))
        return Ruling(check=Check.failed(self.name, answer.describe(), **inputs))
