"""``reserved-days``: on days a team reserved for a segment, its members get nothing else.

A launch or a webinar day belongs to its own touches: a member of the reservation's segment
whose local date is a reserved day receives only the touches the reservation names; any
other touch waits until the first local midnight after the reserved run (and then passes the
quiet hours again, so it goes when the window opens that day).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, time

from onetomany.delivery.policy import Pending, Ruling
from onetomany.model.decisions import Check
from onetomany.rules.calendar import Reservation
from onetomany.rules.segments import SegmentSet
from onetomany.rules.windows import recipient_zone
from onetomany.store import Store
from onetomany.store.segments import matching_contact_ids


class ReservedDays:
    """Defers rows of other touches to members of a reserved segment on its reserved days."""

    name = "reserved-days"

    def __init__(
        self,
        store: Store,
        reservations: Sequence[Reservation],
        segments: SegmentSet,
        timezone: str | None = None,
    ) -> None:
        self.store = store
        self.reservations = tuple(reservations)
        self.segments = segments
        self.timezone = timezone

    def rule(self, pending: Sequence[Pending], now: datetime) -> list[Ruling]:
        # Who is on a reserved day now, per reservation; segment membership is asked once per
        # reservation, only for those.
        zones = [recipient_zone(p.contact, p.account, self.timezone)[0] for p in pending]
        days = [now.astimezone(zone).date() for zone in zones]
        members: dict[str, set[str]] = {}
        for reservation in self.reservations:
            among = {
                p.row.contact_id
                for p, day in zip(pending, days, strict=True)
                if p.row.contact_id and reservation.holds(p.row.touch, day)
            }
            if among:
                expr = self.segments.expr(reservation.segment)
                members[reservation.name] = set(
                    matching_contact_ids(
                        self.store, expr, now=now, segments=self.segments, among=among
                    )
                )
        rulings = []
        for item, zone, day in zip(pending, zones, days, strict=True):
            held = [
                r
                for r in self.reservations
                if item.row.contact_id in members.get(r.name, set())
                and r.holds(item.row.touch, day)
            ]
            if not held:
                rulings.append(Ruling(check=Check.passed(self.name, "no reserved day")))
                continue
            free = max(r.first_free_day(day) for r in held)
            # Another reservation may start on that day: move on until none holds it.
            while any(r.holds(item.row.touch, free) for r in held):
                free = max(r.first_free_day(free) for r in held)
            until = datetime.combine(free, time(0), tzinfo=zone)
            names = ", ".join(r.name for r in held)
            reason = (
                f"{day.isoformat()} is reserved for segment "
                f"{', '.join(sorted({r.segment for r in held}))} ({names}); deferred to "
                f"{free.isoformat()} {zone.key}"
            )
            rulings.append(
                Ruling(
                    check=Check.failed(
                        self.name, reason, reservations=[r.name for r in held], day=day.isoformat()
                    ),
                    until=until,
                )
            )
        return rulings
