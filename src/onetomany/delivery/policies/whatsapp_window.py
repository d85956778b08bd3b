"""``whatsapp-window``: WhatsApp's 24-hour customer service window.

WhatsApp Business lets a business send free-form text only within 24 hours of the customer's
last message to it; outside, only a pre-approved template may go. A touch whose WhatsApp
variant is an approved template (``.whatsapp.toml``) passes at any time; one that is session
text (``.whatsapp.txt``) passes only within 24 hours of the contact's last inbound message (an
event named ``whatsapp_inbound``, which a source or webhook records), and is skipped otherwise:
the window may never open again, and the message would be refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from onetomany.delivery.policy import Pending, Ruling
from onetomany.errors import TemplateError
from onetomany.model import ChannelKind
from onetomany.model.decisions import Check
from onetomany.store import Store
from onetomany.store.queries.inbound import last_inbound
from onetomany.templating import TemplateSet, WhatsAppTemplate

#: The event a contact's inbound WhatsApp message is recorded as.
INBOUND_EVENT = "whatsapp_inbound"
#: How long after the contact's last message free-form text may go.
SERVICE_WINDOW = timedelta(hours=24)


class WhatsAppWindow:
    """Skips free-form WhatsApp text outside the 24-hour window; templates always pass."""

    name = "whatsapp-window"

    def __init__(self, store: Store, templates: TemplateSet) -> None:
        self.store = store
        self.templates = templates

    def rule(self, pending: Sequence[Pending], now: datetime) -> list[Ruling]:
        forms = [self._free_form(item) for item in pending]
        writers = [p.row.contact_id for p, free in zip(pending, forms, strict=True) if free]
        inbound = last_inbound(self.store, [c for c in writers if c], INBOUND_EVENT)
        rulings = []
        for item, free in zip(pending, forms, strict=True):
            if item.kind is not ChannelKind.WHATSAPP:
                check = Check.info(self.name, "not a WhatsApp message")
            elif free is None:
                check = Check.info(self.name, "no WhatsApp variant to judge (composing says so)")
            elif not free:
                check = Check.passed(self.name, "an approved template may go at any time")
            else:
                rulings.append(self._text(inbound.get(item.row.contact_id or ""), now))
                continue
            rulings.append(Ruling(check=check))
        return rulings

    def _free_form(self, item: Pending) -> bool | None:
        """Whether the row renders as session text (None: no WhatsApp variant to judge;
        composing reports that)."""
        if item.kind is not ChannelKind.WHATSAPP:
            return None
        contact = item.contact
        try:
            found = self.templates.whatsapp(
                item.row.template,
                locale=contact.locale if contact else None,
                persona=contact.role if contact else None,
            )
        except TemplateError:
            return None
        if found is None:
            return None
        return not isinstance(found, WhatsAppTemplate)

    def _text(self, last: datetime | None, now: datetime) -> Ruling:
        inputs = {"last_inbound": last.isoformat() if last else None, "window_hours": 24}
        if last is not None and now - last < SERVICE_WINDOW:
            closes = (last + SERVICE_WINDOW).isoformat()
            reason = f"free-form text inside the 24-hour window (until {closes})"
            return Ruling(check=Check.passed(self.name, reason, **inputs))
        since = f"the contact last wrote {last.isoformat()}" if last else "the contact never wrote"
        reason = (
            f"free-form WhatsApp text outside the 24-hour customer service window ({since}); "
            "only an approved template (.whatsapp.toml) may go"
        )
        return Ruling(check=Check.failed(self.name, reason, **inputs))
