"""Each round's health scores: every measure asked of the whole book in one statement, the
weighted score per account worked out, and the round's scores kept
(:mod:`onetomany.rules.health` says how a score is made)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from onetomany.store.queries.health import write_scores
from onetomany.store.queries.nps import score_counts
from onetomany.store.segments import account_numbers

if TYPE_CHECKING:
    from onetomany.rules.health import HealthSettings, Measure
    from onetomany.rules.segments import SegmentSet
    from onetomany.store import Store


def measure_values(
    store: Store, measure: Measure, *, now: datetime, segments: SegmentSet, nps_event: str
) -> dict[str, float]:
    """``measure``'s value per account at ``now`` (accounts without one are left out)."""
    if measure.expr is not None:
        return account_numbers(store, measure.expr, now=now, segments=segments)
    assert measure.nps_days is not None
    since = now - timedelta(days=measure.nps_days)
    # Answers at or before now (the range's end is excluded).
    until = now + timedelta(microseconds=1)
    answers = score_counts(store, event=nps_event, by="account", since=since, until=until)
    found = {}
    for account, scores in answers.items():
        answered = sum(scores.values())
        if account and answered:
            promoters = sum(n for score, n in scores.items() if score >= 9)
            detractors = sum(n for score, n in scores.items() if score <= 6)
            found[account] = (promoters - detractors) * 100 / answered
    return found


def update_health(
    store: Store,
    settings: HealthSettings,
    *,
    now: datetime,
    segments: SegmentSet,
    nps_event: str,
) -> dict[str, float]:
    """Score every account with a value for some measure, keep the scores at ``now`` and
    return them (account id -> score)."""
    if not settings.measures:
        return {}
    values = {
        m.name: measure_values(store, m, now=now, segments=segments, nps_event=nps_event)
        for m in settings.measures
    }
    accounts = sorted({account for found in values.values() for account in found})
    scores: dict[str, tuple[float, dict[str, Any]]] = {}
    for account in accounts:
        scored = settings.score({name: found.get(account) for name, found in values.items()})
        if scored is not None:
            scores[account] = scored
    write_scores(store, scores, now=now)
    return {account: score for account, (score, _) in scores.items()}
