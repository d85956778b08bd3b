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

import attrs

from onetomany.rules.journeys import Action, Journey, JourneyState, StageChange
from onetomany.rules.segments import SegmentSet
from onetomany.store import Store
from onetomany.store.queries.journeys import Move, save_moves, states_in
from onetomany.store.segments import accounts_meeting

log = logging.getLogger(__name__)


def new_entry_id(journey: str, account_id: str, stage: str, at: datetime) -> str:
    """The id of one entry into a stage (an account enters a stage at most once per instant)."""
    text = f"entry:{journey}:{account_id}:{stage}:{at.isoformat()}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@attrs.frozen
class Criteria:
    """The accounts meeting each stage's criteria, by stage position (None: no entry)."""

    entry: tuple[frozenset[str] | None, ...]
    complete: tuple[frozenset[str], ...]


def update_journeys(
    store: Store,
    journeys: Iterable[Journey],
    *,
    now: datetime,
    segments: SegmentSet | None = None,
) -> list[StageChange]:
    """Move every account forward through ``journeys``; returns the steps taken."""
    planned: list[Move] = []
    for journey in journeys:
        criteria = _criteria(store, journey, now=now, segments=segments)
        states = states_in(store, journey.name)
        for account_id in sorted(set(states) | _placeable(criteria)):
            old = states.get(account_id)
            new, steps = advance(journey, account_id, old, criteria, now)
            if new != old:
                planned.append((old, new, steps))
        if log.isEnabledFor(logging.DEBUG):
            _log_early_completions(journey, states, criteria, planned)
    return save_moves(store, planned, now=now)


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


def _log_early_completions(
    journey: Journey,
    states: Mapping[str, JourneyState],
    criteria: Criteria,
    planned: list[Move],
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
