"""Questions about the event log of a contact and its account: engagement with sent
messages, the activity a recap lists, the events an explanation shows."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from onetomany.model import Contact, Event
from onetomany.store import schema
from onetomany.store.store import EventPosition, event_from_row

if TYPE_CHECKING:
    from onetomany.store import Store

#: Ids per IN list: under SQLite's bound-parameter limit.
_CHUNK = 500

#: The ``properties`` key whose true value marks an open made by a machine (a privacy proxy
#: prefetching images, a scanner): it is kept, but stops no ladder.
MACHINE_FLAG = "machine"


def by_a_person(events: sa.TableClause | sa.Table | Any) -> sa.ColumnElement[bool]:
    """Whether an event of ``events`` (the table or an alias) was not flagged a machine's."""
    # SQLite reads a JSON true as 1, PostgreSQL's ->> as 'true'.
    flag = sa.func.coalesce(sa.cast(events.c.properties[MACHINE_FLAG].as_string(), sa.String), "")
    return flag.not_in(["true", "1"])


def _owned_by(contact: Contact) -> sa.ColumnElement[bool]:
    """Events of the contact or of its account."""
    t = schema.events
    owner = t.c.contact_id == contact.id
    if contact.account_id:
        owner = sa.or_(owner, t.c.account_id == contact.account_id)
    return owner


def events_of(store: Store, contact: Contact, *, names: Iterable[str] | None = None) -> list[Event]:
    """The events of the contact and of its account (only those named ``names`` when given),
    oldest first."""
    t = schema.events
    query = sa.select(t).where(_owned_by(contact)).order_by(t.c.seq)
    if names is not None:
        query = query.where(t.c.name.in_(sorted(set(names))))
    with store.read() as conn:
        return [event_from_row(row) for row in conn.execute(query)]


def latest_events_of(
    store: Store, contact: Contact, names: Iterable[str], *, limit: int
) -> list[tuple[EventPosition, Event]]:
    """The newest ``limit`` events named ``names`` of the contact or its account, newest
    first, with their positions."""
    t = schema.events
    query = (
        sa.select(t)
        .where(_owned_by(contact), t.c.name.in_(sorted(set(names))))
        .order_by(t.c.seq.desc())
        .limit(limit)
    )
    with store.read() as conn:
        return [(EventPosition.of(row), event_from_row(row)) for row in conn.execute(query)]


def events_between(
    store: Store,
    contact: Contact,
    *,
    since: datetime,
    until: datetime,
    leave_out: Iterable[str] = (),
    limit: int,
) -> list[dict[str, Any]]:
    """The events of ``contact``'s account (or the contact's own, when it has no account) in
    ``(since, until]``, except those named in ``leave_out``: oldest first, at most ``limit``,
    each as its ``id``, ``name``, ``occurred_at`` and ``properties``."""
    e = schema.events
    subject = (
        e.c.account_id == contact.account_id if contact.account_id else e.c.contact_id == contact.id
    )
    query = (
        sa.select(e.c.id, e.c.name, e.c.occurred_at, e.c.properties)
        .where(subject, e.c.occurred_at > since, e.c.occurred_at <= until)
        .where(e.c.name.not_in(sorted(leave_out)))
        .order_by(e.c.occurred_at, e.c.seq)
        .limit(limit)
    )
    with store.read() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def engaged_keys(
    store: Store,
    keys: Iterable[str],
    *,
    names: Sequence[str],
    contact_ids: Iterable[str | None],
    now: datetime,
) -> set[str]:
    """Which of ``keys`` (outbox idempotency keys) have one of the engagement events ``names``
    of one of ``contact_ids`` at or before ``now``."""
    e = schema.events
    wanted = set(keys)
    contacts = sorted({c for c in contact_ids if c})
    key = e.c.properties["idempotency_key"].as_string()
    found: set[str] = set()
    with store.read() as conn:
        for start in range(0, len(contacts), _CHUNK):
            # The contacts narrow the scan to their events (indexed); the keys pick among them.
            query = sa.select(key).where(
                e.c.contact_id.in_(contacts[start : start + _CHUNK]),
                e.c.name.in_(names),
                e.c.occurred_at <= now,
                by_a_person(e),
            )
            found.update(k for k in conn.scalars(query) if k in wanted)
    return found
