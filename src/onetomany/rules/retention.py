"""``[retention]``: how long the store keeps events, finished deliveries and decisions.

::

    [retention]
    events = "400d"                          # every event, unless its name says otherwise
    deliveries = "180d"                      # finished outbox rows' attempts and payloads
    decisions = "30d"                        # what ticks decided (explain's history)
    archive = "var/archive"                  # gzip'd JSON lines written before deletion
    [retention.event]
    page_viewed = "30d"                      # per event name

A kind left out is kept for ever (decisions: 30 days, as before the section existed). What a
trigger still needs is never removed, whatever the ages say: :mod:`onetomany.ops.lifecycle`
states the rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import attrs

from onetomany.rules.freshness import Reporter, parse_staleness

__all__ = ["DEFAULT_DECISIONS", "Retention", "read_retention"]

#: How long decisions are kept when ``[retention]`` says nothing about them.
DEFAULT_DECISIONS = timedelta(days=30)
_KEYS = {"events", "deliveries", "decisions", "archive", "event"}


@attrs.frozen(kw_only=True)
class Retention:
    """Ages after which rows may go (None: kept for ever)."""

    events: timedelta | None = None
    #: Per event name, instead of ``events``.
    event: Mapping[str, timedelta] = attrs.field(factory=dict)
    deliveries: timedelta | None = None
    decisions: timedelta = DEFAULT_DECISIONS
    #: The folder archives go to before rows are deleted (relative: to the program).
    archive: str | None = None

    def of_event(self, name: str) -> timedelta | None:
        """How long events named ``name`` are kept (None: for ever)."""
        return self.event.get(name, self.events)


def read_retention(section: Mapping[str, Any], reporter: Reporter) -> Retention:
    """The ``[retention]`` table; each problem is reported with its key."""
    for key in sorted(set(section) - _KEYS):
        reporter.error(f"retention.{key}", f"unknown key (known: {', '.join(sorted(_KEYS))})")

    def age(key: str) -> timedelta | None:
        if key not in section:
            return None
        return parse_staleness(section[key], f"retention.{key}", reporter)

    per_name: dict[str, timedelta] = {}
    table = section.get("event", {})
    if not isinstance(table, Mapping):
        reporter.error(
            "retention.event",
            f'expected a table of event names, e.g. page_viewed = "30d", got {table!r}',
        )
        table = {}
    for name, value in table.items():
        parsed = parse_staleness(value, f"retention.event.{name}", reporter)
        if parsed is not None:
            per_name[str(name)] = parsed
    archive = section.get("archive")
    if archive is not None and (not isinstance(archive, str) or not archive.strip()):
        reporter.error("retention.archive", f"expected a folder path, got {archive!r}")
        archive = None
    return Retention(
        events=age("events"),
        event=per_name,
        deliveries=age("deliveries"),
        decisions=age("decisions") or DEFAULT_DECISIONS,
        archive=archive,
    )
