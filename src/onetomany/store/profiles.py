"""Profiles read from a store: what :func:`~onetomany.rules.segments.evaluate` needs per contact.

The Python evaluator decides for one :class:`Profile`; this module fills one in with
everything the SQL compiler reads for the same contact: its account, the events of the
account and of the contact, the account's tier (``tier_states``), its current stage in
every journey (``journey_states``) and its health scores (``health_scores``). Reads go by id
in chunks, so asking for a few contacts costs a few queries whatever the size of the store.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from onetomany.model import Event
from onetomany.rules.segments.evaluate import Profile
from onetomany.store.schema import events, health_scores, journey_states, tier_states
from onetomany.store.store import event_from_row

if TYPE_CHECKING:
    from onetomany.store import Store

#: Ids per IN list: under SQLite's bound-parameter limit.
_CHUNK = 500


def load_profiles(
    store: Store,
    contact_ids: Iterable[str] | None = None,
    *,
    event_names: Iterable[str] | None = None,
) -> dict[str, Profile]:
    """The profiles of ``contact_ids`` (every contact when None), by contact id.

    Ids of contacts the store does not hold are left out. ``event_names`` limits the events
    loaded to those names (the ones an expression counts), which is all the evaluator needs.
    """
    if contact_ids is None:
        people = store.all_contacts()
    else:
        people = list(store.get_contacts(contact_ids).values())
    account_ids = sorted({c.account_id for c in people if c.account_id is not None})
    accounts = store.get_accounts(account_ids)
    names = None if event_names is None else sorted(set(event_names))
    tiers: dict[str, str] = {}
    stages: dict[str, dict[str, tuple[str, datetime]]] = defaultdict(dict)
    of_account: dict[str, list[Event]] = defaultdict(list)
    health: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
    of_contact: dict[str, list[Event]] = defaultdict(list)
    with store.engine.connect() as conn:
        for chunk in _chunks(account_ids):
            t = tier_states
            for row in conn.execute(
                sa.select(t.c.account_id, t.c.tier).where(t.c.account_id.in_(chunk))
            ):
                tiers[row.account_id] = row.tier
            j = journey_states
            for state in conn.execute(
                sa.select(j.c.account_id, j.c.journey, j.c.stage, j.c.entered_at).where(
                    j.c.account_id.in_(chunk)
                )
            ):
                stages[state.account_id][state.journey] = (state.stage, state.entered_at)
            h = health_scores
            for score in conn.execute(
                sa.select(h.c.account_id, h.c.at, h.c.score).where(h.c.account_id.in_(chunk))
            ):
                health[score.account_id].append((score.at, score.score))
            for event in _events(conn, events.c.account_id, chunk, names):
                of_account[event.account_id or ""].append(event)
        for chunk in _chunks(sorted(c.id for c in people)):
            for event in _events(conn, events.c.contact_id, chunk, names):
                of_contact[event.contact_id or ""].append(event)
    profiles: dict[str, Profile] = {}
    for contact in people:
        account_id = contact.account_id
        own = of_account.get(account_id, []) if account_id is not None else []
        # An event of the contact's own account is already in ``own``.
        extra = [
            e
            for e in of_contact.get(contact.id, [])
            if account_id is None or e.account_id != account_id
        ]
        profiles[contact.id] = Profile(
            contact=contact,
            account=accounts.get(account_id) if account_id is not None else None,
            events=(*own, *extra),
            tier=tiers.get(account_id) if account_id is not None else None,
            stages=dict(stages.get(account_id, {})) if account_id is not None else {},
            health=tuple(health.get(account_id, ())) if account_id is not None else (),
        )
    return profiles


def _chunks(ids: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]


def _events(
    conn: sa.Connection, owner: sa.Column[Any], ids: Sequence[str], names: Sequence[str] | None
) -> Iterator[Event]:
    stmt = sa.select(events).where(owner.in_(ids))
    if names is not None:
        stmt = stmt.where(events.c.name.in_(names))
    for row in conn.execute(stmt):
        yield event_from_row(row)
