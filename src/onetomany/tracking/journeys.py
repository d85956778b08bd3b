"""Journey tracking: which stage of each journey every account is in, moved forward each round.

Each round, every stage criterion is evaluated once over the whole population in SQL (one
query per criterion, giving the ids of the accounts with at least one contact that meets it).
Then, per journey:

* an account not in the journey is placed at the first stage whose ``entry`` holds;
* an account whose current stage's ``complete`` holds completes it (``stage_completed``),
  then enters the next stage when that stage has no ``entry`` or its ``entry`` holds
  (``stage_entered``); this cascades, so one round may carry an account through several
  stages, at most once through each;
* a stage entered ``ideal_days`` or more ago and not completed is overdue (``stage_overdue``),
  once per entry.

Stages only move forward: a criterion that stops holding moves nobody back, and an account
that completed the last stage has finished the journey and stays there. Every entry gets a
fresh ``entry_id``; re-entry rule ``{ per = "stage", journey = ... }`` keys touches by it.
State (``journey_states``), history (``journey_history``) and events are written in one
transaction; a state row changes only if it still holds what the round read, so two engines
running at once cannot record one step twice.

Contradictory data never stops a round (docs/journeys.md, "When the data disagrees"):

* an account meeting the entry of several stages is placed at the first of them (logged);
* meeting the completion of a stage not entered yet does nothing until the account enters
  it, where it completes at once if the criterion still holds (logged at DEBUG);
* a stored stage that the journey no longer has (the program changed) is dropped from
  ``journey_states`` with a warning, and the account is placed again as if new; its
  history stays.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Literal

import attrs
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from onetomany.model import Event
from onetomany.rules.journeys import Journey
from onetomany.rules.segments import SegmentSet
from onetomany.rules.triggers import STAGE_EVENTS
from onetomany.store import Store, schema
from onetomany.store.segments import compile_segment

log = logging.getLogger(__name__)

Action = Literal["entered", "completed", "overdue"]
_EVENT_OF: dict[str, str] = {
    "entered": STAGE_EVENTS["enter"],
    "completed": STAGE_EVENTS["complete"],
    "overdue": STAGE_EVENTS["overdue"],
}


@attrs.frozen(kw_only=True)
class JourneyState:
    """Where one account is in one journey: its current stage and that entry's progress."""

    journey: str
    account_id: str
    stage: str
    entry_id: str
    entered_at: datetime
    completed_at: datetime | None = None
    overdue_at: datetime | None = None

    @property
    def completed(self) -> bool:
        return self.completed_at is not None

    @property
    def overdue(self) -> bool:
        return self.overdue_at is not None


@attrs.frozen(kw_only=True)
class StageChange:
    """One step of one account through a journey: a ``journey_history`` row."""

    journey: str
    account_id: str
    stage: str
    action: Action
    entry_id: str
    at: datetime

    @property
    def event_name(self) -> str:
        return _EVENT_OF[self.action]

    @property
    def event_id(self) -> str:
        """Deterministic: an entry is entered, completed and overdue at most once each."""
        return hashlib.sha256(f"stage:{self.action}:{self.entry_id}".encode()).hexdigest()[:32]

    def event(self) -> Event:
        return Event(
            id=self.event_id,
            name=self.event_name,
            account_id=self.account_id,
            occurred_at=self.at,
            properties={"journey": self.journey, "stage": self.stage, "entry_id": self.entry_id},
        )


def new_entry_id(journey: str, account_id: str, stage: str, at: datetime) -> str:
    """The id of one entry into a stage (an account enters a stage at most once per instant)."""
    text = f"entry:{journey}:{account_id}:{stage}:{at.isoformat()}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@attrs.frozen
class Criteria:
    """The accounts meeting each stage's criteria, by stage position (None: no entry)."""

    entry: tuple[frozenset[str] | None, ...]
    complete: tuple[frozenset[str], ...]


def accounts_meeting(
    store: Store, expr: str, *, now: datetime, segments: SegmentSet | None = None
) -> frozenset[str]:
    """Ids of the accounts with at least one contact in segment expression ``expr``."""
    compiled = compile_segment(expr, dialect_name=store.dialect, segments=segments)
    with store.engine.connect() as conn:
        return frozenset(conn.scalars(compiled.accounts, compiled.params(now)))


def update_journeys(
    store: Store,
    journeys: Iterable[Journey],
    *,
    now: datetime,
    segments: SegmentSet | None = None,
) -> list[StageChange]:
    """Move every account forward through ``journeys``; returns the steps taken."""
    planned: list[tuple[JourneyState | None, JourneyState | None, list[StageChange]]] = []
    for journey in journeys:
        criteria = _criteria(store, journey, now=now, segments=segments)
        states = _states(store, journey.name)
        for account_id in sorted(set(states) | _placeable(criteria)):
            old = states.get(account_id)
            new, steps = advance(journey, account_id, old, criteria, now)
            if new != old:
                planned.append((old, new, steps))
        if log.isEnabledFor(logging.DEBUG):
            _log_early_completions(journey, states, criteria, planned)
    if not planned:
        return []
    taken: list[StageChange] = []
    with store._write() as conn:
        for old, new, steps in planned:
            if _save(store, conn, old, new):
                taken += steps
        if taken:
            conn.execute(sa.insert(schema.journey_history), [_history_row(s) for s in taken])
            store._add_events(conn, [s.event() for s in taken], now)
    return taken


def advance(
    journey: Journey,
    account_id: str,
    state: JourneyState | None,
    criteria: Criteria,
    now: datetime,
) -> tuple[JourneyState | None, list[StageChange]]:
    """One round for one account: its new state and the steps that led there."""
    names = [s.name for s in journey.stages]
    steps: list[StageChange] = []

    def enter(position: int) -> JourneyState:
        stage = names[position]
        entry_id = new_entry_id(journey.name, account_id, stage, now)
        steps.append(_step(journey, account_id, stage, "entered", entry_id, now))
        return JourneyState(
            journey=journey.name,
            account_id=account_id,
            stage=stage,
            entry_id=entry_id,
            entered_at=now,
        )

    if state is not None and state.stage not in names:
        log.warning(
            "journey %r has no stage %r any more: account %r leaves it (its history stays) "
            "and is placed again as if new",
            journey.name,
            state.stage,
            account_id,
        )
        state = None
    if state is None:
        meeting = [i for i, e in enumerate(criteria.entry) if e is not None and account_id in e]
        if not meeting:
            return None, steps
        if len(meeting) > 1:
            log.info(
                "account %r meets the entry of several stages of journey %r (%s): "
                "placed at the first, %r",
                account_id,
                journey.name,
                ", ".join(names[i] for i in meeting),
                names[meeting[0]],
            )
        state = enter(meeting[0])
    for _ in range(len(names)):
        position = names.index(state.stage)
        if not state.completed:
            if account_id not in criteria.complete[position]:
                break
            state = attrs.evolve(state, completed_at=now)
            steps.append(_step(journey, account_id, state.stage, "completed", state.entry_id, now))
        following = position + 1
        if following == len(names):
            break  # the journey is finished
        entry = criteria.entry[following]
        if entry is not None and account_id not in entry:
            break  # waiting for the next stage's entry
        state = enter(following)
    ideal = journey.stage(state.stage).ideal_days
    if (
        ideal is not None
        and not state.completed
        and not state.overdue
        and state.entered_at + timedelta(days=ideal) <= now
    ):
        state = attrs.evolve(state, overdue_at=now)
        steps.append(_step(journey, account_id, state.stage, "overdue", state.entry_id, now))
    return state, steps


def journey_states(store: Store, account_id: str) -> list[JourneyState]:
    """Every journey ``account_id`` is in, by journey name."""
    t = schema.journey_states
    stmt = sa.select(t).where(t.c.account_id == account_id).order_by(t.c.journey)
    with store.engine.connect() as conn:
        return [_state(row) for row in conn.execute(stmt)]


def journey_history(store: Store, account_id: str, journey: str | None = None) -> list[StageChange]:
    """The steps ``account_id`` took (through ``journey``, or every journey), oldest first."""
    t = schema.journey_history
    stmt = sa.select(t).where(t.c.account_id == account_id).order_by(t.c.id)
    if journey is not None:
        stmt = stmt.where(t.c.journey == journey)
    with store.engine.connect() as conn:
        return [
            StageChange(
                journey=row.journey,
                account_id=row.account_id,
                stage=row.stage,
                action=row.action,
                entry_id=row.entry_id,
                at=row.at,
            )
            for row in conn.execute(stmt)
        ]


def _criteria(
    store: Store, journey: Journey, *, now: datetime, segments: SegmentSet | None
) -> Criteria:
    def meeting(expr: str) -> frozenset[str]:
        return accounts_meeting(store, expr, now=now, segments=segments)

    return Criteria(
        entry=tuple(None if s.entry is None else meeting(s.entry) for s in journey.stages),
        complete=tuple(meeting(s.complete) for s in journey.stages),
    )


def _placeable(criteria: Criteria) -> set[str]:
    return set().union(*(e for e in criteria.entry if e is not None))


def _states(store: Store, journey: str) -> dict[str, JourneyState]:
    t = schema.journey_states
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(t).where(t.c.journey == journey))
        return {row.account_id: _state(row) for row in rows}


def _state(row: sa.Row[object]) -> JourneyState:
    m = row._mapping
    return JourneyState(
        journey=m["journey"],
        account_id=m["account_id"],
        stage=m["stage"],
        entry_id=m["entry_id"],
        entered_at=m["entered_at"],
        completed_at=m["completed_at"],
        overdue_at=m["overdue_at"],
    )


def _step(
    journey: Journey, account_id: str, stage: str, action: Action, entry_id: str, at: datetime
) -> StageChange:
    return StageChange(
        journey=journey.name,
        account_id=account_id,
        stage=stage,
        action=action,
        entry_id=entry_id,
        at=at,
    )


def _history_row(step: StageChange) -> dict[str, object]:
    return {
        "journey": step.journey,
        "account_id": step.account_id,
        "stage": step.stage,
        "action": step.action,
        "entry_id": step.entry_id,
        "at": step.at,
    }


def _save(
    store: Store, conn: Connection, old: JourneyState | None, new: JourneyState | None
) -> bool:
    """Write ``new`` over ``old`` if the row still holds ``old``; False if it changed."""
    t = schema.journey_states
    if old is None:
        assert new is not None
        stmt = (
            store._insert(t)
            .values(_state_values(new))
            .on_conflict_do_nothing(index_elements=["journey", "account_id"])
            .returning(t.c.account_id)
        )
        return conn.execute(stmt).first() is not None
    unchanged = sa.and_(
        t.c.journey == old.journey,
        t.c.account_id == old.account_id,
        t.c.entry_id == old.entry_id,
        t.c.completed_at.is_(None) if old.completed_at is None else t.c.completed_at.is_not(None),
        t.c.overdue_at.is_(None) if old.overdue_at is None else t.c.overdue_at.is_not(None),
    )
    if new is None:
        return conn.execute(sa.delete(t).where(unchanged)).rowcount == 1
    return conn.execute(sa.update(t).where(unchanged).values(_state_values(new))).rowcount == 1


def _state_values(state: JourneyState) -> dict[str, object]:
    return {
        "journey": state.journey,
        "account_id": state.account_id,
        "stage": state.stage,
        "entry_id": state.entry_id,
        "entered_at": state.entered_at,
        "completed_at": state.completed_at,
        "overdue_at": state.overdue_at,
    }


def _log_early_completions(
    journey: Journey,
    states: Mapping[str, JourneyState],
    criteria: Criteria,
    planned: list[tuple[JourneyState | None, JourneyState | None, list[StageChange]]],
) -> None:
    """DEBUG: accounts meeting the completion of a stage they have not reached."""
    names = [s.name for s in journey.stages]
    now_at = dict(states)
    for _, new, _steps in planned:
        if new is not None and new.journey == journey.name:
            now_at[new.account_id] = new
    for position, meeting in enumerate(criteria.complete):
        for account_id in sorted(meeting):
            state = now_at.get(account_id)
            reached = names.index(state.stage) if state and state.stage in names else -1
            if position > reached:
                log.debug(
                    "account %r meets the completion of stage %r of journey %r, which it has "
                    "not entered: ignored until it enters that stage",
                    account_id,
                    names[position],
                    journey.name,
                )
