"""``quiet-hours``: a row due outside its channel's send window waits for the next opening."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from onetomany.delivery.policy import Pending, Ruling
from onetomany.model.decisions import Check
from onetomany.rules.windows import (
    WindowNeverOpens,
    WindowSettings,
    is_open,
    next_opening,
    recipient_zone,
)


class QuietHours:
    """Defers each row whose recipient's local time is outside the window of its channel kind
    (``[windows]``; TCPA hours for SMS and WhatsApp by default) to the window's next opening.
    A holiday of the recipient's locale keeps the whole day closed."""

    name = "quiet-hours"

    def __init__(self, settings: WindowSettings) -> None:
        self.settings = settings

    def rule(self, pending: Sequence[Pending], now: datetime) -> list[Ruling]:
        return [self._one(item, now) for item in pending]

    def _one(self, item: Pending, now: datetime) -> Ruling:
        window = self.settings.window(item.kind)
        if window is None:
            return Ruling(check=Check.info(self.name, f"{item.kind} has no quiet hours"))
        zone, source = recipient_zone(item.contact, item.account, self.settings.timezone)
        closed = self.settings.holidays.closed(item.contact.locale if item.contact else None)
        local = now.astimezone(zone)
        inputs = {
            "window": window.describe(),
            "timezone": zone.key,
            "timezone_from": source,
            "local_time": local.isoformat(),
        }
        if is_open(now, window, zone, closed):
            return Ruling(check=Check.passed(self.name, "inside the send window", **inputs))
        holiday = " (a holiday)" if local.date() in closed else ""
        outside = (
            f"{local:%a %H:%M} {zone.key}{holiday} is outside the {item.kind} window "
            f"{window.describe()}"
        )
        try:
            until = next_opening(now, window, zone, closed)
        except WindowNeverOpens as exc:
            return Ruling(check=Check.failed(self.name, f"{outside}, and {exc}", **inputs))
        opens = until.astimezone(zone)
        reason = f"{outside}; deferred to {opens:%a %Y-%m-%d %H:%M} {zone.key}"
        return Ruling(
            check=Check.failed(self.name, reason, **inputs, until=until.isoformat()), until=until
        )
