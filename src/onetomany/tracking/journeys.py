"""Journey tracking: which stage of each journey every account is in, moved forward each round.

Each round, every stage criterion is evaluated once over the accounts the round looks at,
in SQL (one query per criterion, giving the ids of the accounts with at least one contact
that meets it). Then, per journey:

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

A round looks at every account the first time. After that, given the program's name, a
cursor per journey (``journey:<program>:<journey>`` in ``cursors``, written in the round's
transaction) says when the last round ran and how far it had read the event log, and a round
looks only at the accounts whose answer may differ from then: those with an event a
criterion reads stored since (or dated since, now reached), those saved since (the account
or one of its contacts), and those whose open stage reached its ``ideal_days`` in between;
it reads their states only. Every other account was settled by an earlier round from the
same inputs. That holds while every criterion changes only with what is written (see
:mod:`onetomany.rules.segments.inputs`): a journey with a criterion that moves with time on
its own (``days_since()``, ``count()`` over N days, ``tier()``, ``health()``, ``stage()``)
looks at every account every round, as does a round without a usable cursor (the first, a
changed journey or segment, a clock that went back).

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
from onetomany.rules.segments.ast import Expr
from onetomany.rules.segments.inputs import events_read, written_inputs
from onetomany.rules.segments.parser import parse
from onetomany.store import EventPosition, Store
from onetomany.store.queries.absence import log_position
from onetomany.store.queries.journeys import (
    Move,
    became_overdue,
    save_moves,
    states_in,
    states_of,
    written_since,
)
from onetomany.store.round_cursors import cursor_value, digest, last_round
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
    program: str | None = None,
) -> list[StageChange]:
    """Move every account forward through ``journeys``; returns the steps taken.

    With ``program`` (its name), each journey keeps a cursor, and a round after the first
    looks only at the accounts whose answer may have changed (see the module's text).
    """
    planned: list[Move] = []
    cursors: list[tuple[str, str]] = []
    # Read before the queries below: an event stored meanwhile is after it, read again.
    position = log_position(store) if program is not None else None
    for journey in journeys:
        among: set[str] | None = None
        valid_for = shape(journey, segments)
        if position is not None and valid_for is not None:
            name = cursor_name(program or "", journey)
            previous = last_round(store.get_cursor(name), valid_for, now)
            if previous is not None:
                among = _changed_accounts(
                    store, journey, segments, previous["at"], previous["log"], now
                )
            cursors.append((name, cursor_value(valid_for, now, position)))
        criteria = _criteria(store, journey, now=now, segments=segments, among=among)
        states = (
            states_in(store, journey.name)
            if among is None
            else states_of(store, journey.name, among)
        )
        for account_id in sorted(set(states) | _placeable(criteria)):
            old = states.get(account_id)
            new, steps = advance(journey, account_id, old, criteria, now)
            if new != old:
                planned.append((old, new, steps))
        if log.isEnabledFor(logging.DEBUG):
            _log_early_completions(journey, states, criteria, planned)
    return save_moves(store, planned, now=now, cursors=cursors)


def cursor_name(program: str, journey: Journey) -> str:
    return f"journey:{program}:{journey.name}"


def shape(journey: Journey, segments: SegmentSet | None) -> str | None:
    """What a journey's cursor is valid for (its stages and the segments they name); None
    when a criterion moves with time on its own, and every round must look at everyone."""
    definitions = written_inputs(_parsed(journey), segments, events=True)
    if definitions is None:
        return None
    return digest("journey", journey, sorted(definitions))


def _parsed(journey: Journey) -> list[Expr]:
    return [parse(text) for text in journey.expressions().values()]


def _changed_accounts(
    store: Store,
    journey: Journey,
    segments: SegmentSet | None,
    then: datetime,
    log: EventPosition,
    now: datetime,
) -> set[str]:
    """The accounts whose round may differ from the one at ``then`` (read to ``log``)."""
    found = written_since(
        store,
        events=events_read(_parsed(journey), segments),
        stored_after=log,
        occurred_after=then,
        until=now,
        changed_since=then,
    )
    ideal = {s.name: s.ideal_days for s in journey.stages if s.ideal_days is not None}
    if ideal:
        found |= became_overdue(store, journey.name, ideal, after=then, until=now)
    return found


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
    store: Store,
    journey: Journey,
    *,
    now: datetime,
    segments: SegmentSet | None,
    among: set[str] | None = None,
) -> Criteria:
    def meeting(expr: str) -> frozenset[str]:
        if among is not None and not among:
            return frozenset()
        return accounts_meeting(store, expr, now=now, segments=segments, among=among)

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
