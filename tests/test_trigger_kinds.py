"""Trigger kinds: one unit each, in one registry, each reading its own ``program.toml`` form."""

import pytest

from onetomany.rules.triggers import (
    TRIGGER_TYPES,
    AbsenceTrigger,
    CadenceTrigger,
    EngagementTrigger,
    EventTrigger,
    SegmentTrigger,
    StageTrigger,
    read_trigger,
)
from onetomany.triggers import KINDS, kind_of


class _Errors:
    def __init__(self) -> None:
        self.errors: list[tuple[str, str]] = []

    def error(self, key: str, reason: str) -> None:
        self.errors.append((key, reason))


def test_every_trigger_class_has_one_kind_and_every_kind_one_class():
    assert [k.trigger for k in KINDS] == list(TRIGGER_TYPES)
    assert [k.name for k in KINDS] == [t.kind for t in TRIGGER_TYPES]
    assert len({k.name for k in KINDS}) == len(KINDS)
    keys = [key for t in TRIGGER_TYPES for key in t.forms]
    assert len(keys) == len(set(keys)), "two kinds claim one program.toml key"


def test_the_event_log_drives_the_event_kinds_and_the_clock_the_others():
    assert {k.name for k in KINDS if k.reads_events} == {"event", "segment", "stage"}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"event": "signed_up"}, EventTrigger(event="signed_up")),
        (
            {"event": "paid", "where": {"plan": "pro"}},
            EventTrigger(event="paid", where={"plan": "pro"}),
        ),
        ({"segment": "low", "on": "leave"}, SegmentTrigger(segment="low", on="leave")),
        (
            {"stage": "onboarding.setup", "on": "overdue"},
            StageTrigger(journey="onboarding", stage="setup", on="overdue"),
        ),
        ({"absence": "login", "days": 30}, AbsenceTrigger(event="login", days=30)),
        (
            {"rrule": "FREQ=DAILY;INTERVAL=90", "anchor": "signed_up", "after_days": 90},
            CadenceTrigger(rrule="FREQ=DAILY;INTERVAL=90", anchor="signed_up", after_days=90),
        ),
        (
            {"not_clicked": "welcome", "days": 3},
            EngagementTrigger(touch="welcome", outcome="not_clicked", days=3),
        ),
    ],
    ids=lambda value: next(iter(value)) if isinstance(value, dict) else "",
)
def test_each_kind_reads_its_own_form(body, expected):
    errors = _Errors()
    kind = kind_of(expected)
    assert kind.read(body, "t", errors) == expected
    assert read_trigger(body, "t", errors) == expected
    assert errors.errors == []


def test_a_form_with_two_kinds_keys_is_refused_naming_both():
    errors = _Errors()
    assert read_trigger({"event": "x", "absence": "y", "days": 3}, "t", errors) is None
    [(key, reason)] = errors.errors
    assert key == "t" and reason.startswith("both event and absence")
