"""Topics and each contact's subscriptions to them.

A program declares its topics in ``[topics]`` (``onboarding``, ``product_updates``,
``surveys``, ...); each touch names the topic it belongs to. A contact unsubscribes from one
topic or from all, on one channel kind or on all; each answer is kept with its source and
time (and recorded as an event, so consent can be proven). A **transactional** topic (an
invoice, a password reset) is not governed by unsubscribing: caps and quiet hours still apply.

When several answers cover one send (``all topics`` and ``this topic``, ``all channels`` and
``email``), the latest one wins: unsubscribing from everything after resubscribing to one
topic stops that topic too, and resubscribing to it afterwards lets it through again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs

from onetomany.errors import ConfigError

__all__ = ["Answer", "Preferences", "Topic", "read_topics"]

_TOPIC_KEYS = {"transactional", "description"}


@attrs.frozen(kw_only=True)
class Topic:
    """One kind of message a contact may opt out of (or, transactional, may not)."""

    name: str
    transactional: bool = False
    description: str = ""


def read_topics(
    section: Mapping[str, Any], *, file: str
) -> tuple[dict[str, Topic], list[ConfigError]]:
    """``[topics]`` as :class:`Topic` values, and every problem (file, key, reason).

    Each topic is a table, ``[topics.billing] transactional = true``, or ``{}``.
    """
    topics: dict[str, Topic] = {}
    errors: list[ConfigError] = []
    for name, body in section.items():
        key = f"topics.{name}"
        if not isinstance(body, dict):
            errors.append(
                ConfigError(
                    'expected a table, e.g. { transactional = false, description = "..." }',
                    file=file,
                    key=key,
                )
            )
            continue
        for unknown in sorted(set(body) - _TOPIC_KEYS):
            errors.append(
                ConfigError(
                    f"unknown key (known: {', '.join(sorted(_TOPIC_KEYS))})",
                    file=file,
                    key=f"{key}.{unknown}",
                )
            )
        transactional = body.get("transactional", False)
        description = body.get("description", "")
        if not isinstance(transactional, bool):
            errors.append(
                ConfigError(
                    f"expected true or false, got {transactional!r}",
                    file=file,
                    key=f"{key}.transactional",
                )
            )
            continue
        if not isinstance(description, str):
            errors.append(
                ConfigError(
                    f"expected text, got {description!r}", file=file, key=f"{key}.description"
                )
            )
            continue
        topics[name] = Topic(name=name, transactional=transactional, description=description)
    return topics, errors


@attrs.frozen(kw_only=True)
class Answer:
    """One contact's last word on a topic (None: every topic) and a channel kind (None:
    every channel): subscribed or not, where it came from (``link``, ``webhook``, ``api``,
    ``import``, ...) and when."""

    contact_id: str
    topic: str | None
    channel: str | None
    subscribed: bool
    source: str
    at: datetime

    def covers(self, topic: str | None, channel: str | None) -> bool:
        """Whether this answer speaks for a send of ``topic`` on ``channel``."""
        return self.topic in (None, topic) and self.channel in (None, channel)

    def describe(self) -> str:
        what = f"topic {self.topic!r}" if self.topic else "every topic"
        where = f"on {self.channel}" if self.channel else "on every channel"
        verb = "subscribed to" if self.subscribed else "unsubscribed from"
        return f"{verb} {what} {where} ({self.source}, {self.at.isoformat()})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "channel": self.channel,
            "subscribed": self.subscribed,
            "source": self.source,
            "at": self.at.isoformat(),
        }


def _specificity(answer: Answer) -> int:
    return (answer.topic is not None) * 2 + (answer.channel is not None)


@attrs.frozen(kw_only=True)
class Preferences:
    """A contact's subscriptions: what a preference page shows and the consent policy reads."""

    contact_id: str
    topics: Mapping[str, Topic] = attrs.field(factory=dict)
    answers: tuple[Answer, ...] = attrs.field(default=(), converter=tuple[Answer, ...])

    def deciding(self, topic: str | None, channel: str | None) -> Answer | None:
        """The answer that decides a send of ``topic`` on ``channel`` (the latest covering
        it; a more specific one wins a tie), or None when the contact never said."""
        covering = [a for a in self.answers if a.covers(topic, channel)]
        if not covering:
            return None
        return max(covering, key=lambda a: (a.at, _specificity(a)))

    def allows(self, topic: str | None, channel: str | None = None) -> bool:
        """Whether a send of ``topic`` on ``channel`` may go: always for a transactional
        topic, else unless the deciding answer is an unsubscribe."""
        declared = self.topics.get(topic) if topic else None
        if declared is not None and declared.transactional:
            return True
        answer = self.deciding(topic, channel)
        return answer is None or answer.subscribed

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: each topic with whether it is on (on every channel), and the answers."""
        return {
            "contact_id": self.contact_id,
            "topics": {
                name: {
                    "transactional": topic.transactional,
                    "description": topic.description,
                    "subscribed": self.allows(name),
                }
                for name, topic in self.topics.items()
            },
            "answers": [a.as_dict() for a in self.answers],
        }


def answers_by_contact(answers: Iterable[Answer]) -> dict[str, list[Answer]]:
    found: dict[str, list[Answer]] = {}
    for answer in answers:
        found.setdefault(answer.contact_id, []).append(answer)
    return found


def unknown_topic(topic: str, topics: Sequence[str]) -> str:
    known = ", ".join(sorted(topics)) or "none declared in [topics]"
    return f"unknown topic {topic!r} (topics: {known})"
