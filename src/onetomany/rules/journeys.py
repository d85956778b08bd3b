"""Journeys: ordered stages an account moves through, and how ``program.toml`` spells them.

A journey (onboarding, adoption, renewal) is a list of stages. Each stage has an entry
criterion, an ideal duration and a completion criterion, all segment expressions
(docs/segments.md) evaluated for the account's contacts: the account meets one when any of
its contacts does. An account is in at most one stage per journey at a time.

In ``program.toml``::

    [[journeys.onboarding.stages]]
    name = "setup"
    entry = 'exists(last("signed_up"))'
    complete = 'count("integration_connected") >= 1'
    ideal_days = 7

    [[journeys.onboarding.stages]]
    name = "first_value"
    complete = 'count("report_created") >= 1'
    ideal_days = 14

A stage without ``entry`` is entered when the one before it completes.

Where an account stands in a journey is a :class:`JourneyState`; each step it takes (entered,
completed, overdue) is a :class:`StageChange`, which becomes a ``stage_*`` event. Moving
accounts through the stages is :mod:`onetomany.tracking.journeys`; keeping states and steps,
:mod:`onetomany.store.queries.journeys`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

import attrs

from onetomany.errors import ConfigError
from onetomany.model import Event
from onetomany.rules.segments.parser import parse
from onetomany.rules.triggers import STAGE_EVENTS, Reporter

_STAGE_KEYS = {"name", "entry", "complete", "ideal_days"}


@attrs.frozen(kw_only=True)
class Stage:
    """One step of a journey; ``entry`` None means "the previous stage completed"."""

    name: str
    complete: str
    entry: str | None = None
    ideal_days: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.ge(1))
    )


@attrs.frozen(kw_only=True)
class Journey:
    """Ordered stages; the first one needs an ``entry`` criterion."""

    name: str
    stages: tuple[Stage, ...]

    def __attrs_post_init__(self) -> None:
        if not self.stages:
            raise ValueError(f"journey {self.name!r} has no stages")
        if self.stages[0].entry is None:
            raise ValueError(f"journey {self.name!r}: its first stage needs an entry criterion")
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"journey {self.name!r} names a stage twice")

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        known = ", ".join(s.name for s in self.stages)
        raise KeyError(f"journey {self.name!r} has no stage {name!r} (stages: {known})")

    def index(self, name: str) -> int:
        return [s.name for s in self.stages].index(name)

    def expressions(self) -> dict[str, str]:
        """Every criterion as ``{"journeys.J.stages.S.entry": expr}``, for checking."""
        found: dict[str, str] = {}
        for stage in self.stages:
            key = f"journeys.{self.name}.stages.{stage.name}"
            if stage.entry is not None:
                found[f"{key}.entry"] = stage.entry
            found[f"{key}.complete"] = stage.complete
        return found


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


def read_journeys(section: Mapping[str, Any], reader: Reporter) -> dict[str, Journey]:
    """The ``[journeys]`` section; problems go to ``reader`` with their keys."""
    journeys: dict[str, Journey] = {}
    for name, body in section.items():
        path = f"journeys.{name}"
        if not isinstance(body, dict) or set(body) != {"stages"}:
            reader.error(path, "expected a table with one key, stages: [[journeys.NAME.stages]]")
            continue
        rows = body["stages"]
        if not isinstance(rows, list) or not rows:
            reader.error(f"{path}.stages", "expected a non-empty array of stage tables")
            continue
        stages = [_read_stage(row, f"{path}.stages[{i}]", reader) for i, row in enumerate(rows)]
        if isinstance(rows[0], dict) and rows[0].get("entry") is None:
            # Reported here, not by Journey(), so it shows up beside the other stages' errors.
            reader.error(
                f"{path}.stages[0].entry",
                "is required for the first stage: it says which accounts start the journey",
            )
            continue
        read = [s for s in stages if s is not None]
        if len(read) != len(stages):
            continue
        try:
            journeys[name] = Journey(name=name, stages=tuple(read))
        except ValueError as exc:
            reader.error(path, str(exc))
    return journeys


def _read_stage(row: object, path: str, reader: Reporter) -> Stage | None:
    if not isinstance(row, dict):
        reader.error(path, "expected a table with name, entry, complete and ideal_days")
        return None
    unknown = set(row) - _STAGE_KEYS
    if unknown:
        known = ", ".join(sorted(_STAGE_KEYS))
        reader.error(path, f"unknown key(s) {sorted(unknown)} (known: {known})")
        return None
    ok = True
    for key in ("name", "complete"):
        if not isinstance(row.get(key), str) or not row[key].strip():
            reader.error(f"{path}.{key}", f"is required: a string, got {row.get(key)!r}")
            ok = False
    entry = row.get("entry")
    if entry is not None and not isinstance(entry, str):
        reader.error(f"{path}.entry", f"expected an expression string, got {entry!r}")
        ok = False
    days = row.get("ideal_days")
    if days is not None and (isinstance(days, bool) or not isinstance(days, int) or days < 1):
        reader.error(f"{path}.ideal_days", f"expected a whole number of days >= 1, got {days!r}")
        ok = False
    for key in ("entry", "complete"):
        text = row.get(key)
        if isinstance(text, str) and (key == "entry" or text.strip()):
            try:
                parse(text)
            except ConfigError as exc:
                reader.error(f"{path}.{key}", exc.reason)
                ok = False
    if not ok:
        return None
    return Stage(name=row["name"], entry=entry, complete=row["complete"], ideal_days=days)
