"""Each contact's subscriptions: the current answer per topic and channel kind, written with
the event that proves it in one transaction."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import sqlalchemy as sa

from onetomany.model import Event
from onetomany.rules.topics import Answer
from onetomany.store import schema

if TYPE_CHECKING:
    from onetomany.store import Store

#: Ids per IN list: under SQLite's bound-parameter limit.
_CHUNK = 500


def record_answer(store: Store, answer: Answer, event: Event) -> None:
    """Keep ``answer`` as the contact's current word on its topic and channel, and store
    ``event`` (its proof in the event log), together."""
    t = schema.subscriptions
    row = {
        "contact_id": answer.contact_id,
        "topic": answer.topic or "",
        "channel": answer.channel or "",
        "subscribed": answer.subscribed,
        "source": answer.source,
        "at": answer.at,
    }
    stmt = store._insert(t)
    stmt = stmt.on_conflict_do_update(
        index_elements=[t.c.contact_id, t.c.topic, t.c.channel],
        set_={name: stmt.excluded[name] for name in ("subscribed", "source", "at")},
    )
    with store.write() as conn:
        conn.execute(stmt, row)
        store._add_events(conn, [event], answer.at)


def answers_of(store: Store, contact_ids: Iterable[str]) -> list[Answer]:
    """The stored answers of ``contact_ids``, oldest first."""
    wanted = sorted(set(contact_ids))
    t = schema.subscriptions
    found: list[Answer] = []
    with store.read() as conn:
        for start in range(0, len(wanted), _CHUNK):
            query = sa.select(t).where(t.c.contact_id.in_(wanted[start : start + _CHUNK]))
            found.extend(
                Answer(
                    contact_id=row.contact_id,
                    topic=row.topic or None,
                    channel=row.channel or None,
                    subscribed=bool(row.subscribed),
                    source=row.source,
                    at=row.at,
                )
                for row in conn.execute(query)
            )
    return sorted(found, key=lambda a: (a.at, a.contact_id))
