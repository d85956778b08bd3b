"""The quiet-hours, reserved-days and WhatsApp-window policies, each asked directly."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from onetomany import Account, Contact, Event
from onetomany.delivery.policies import QuietHours, ReservedDays, WhatsAppWindow
from onetomany.delivery.policy import Pending
from onetomany.model import ChannelKind
from onetomany.model.decisions import Verdict
from onetomany.rules.calendar import Holidays, Reservation, read_reserved
from onetomany.rules.segments import SegmentSet
from onetomany.rules.windows import WindowSettings
from onetomany.store import OutboxRow, Store
from onetomany.templating import TemplateSet

NEW_YORK = ZoneInfo("America/New_York")


def row(touch: str = "news", channel: str = "email", contact: str = "c1", n: int = 1) -> OutboxRow:
    return OutboxRow(
        id=n,
        idempotency_key=f"{contact}:{touch}:{n}",
        program="p",
        touch=touch,
        channel=channel,
        template=touch,
        contact_id=contact,
        account_id="a1",
        event_id=None,
        payload={},
        status="claimed",
        attempts=0,
        available_at=datetime(2026, 9, 1, tzinfo=UTC),
    )


def pending(contact: Contact, *, touch="news", kind=ChannelKind.EMAIL, account=None, n=1):
    return Pending(
        row=row(touch, str(kind), contact.id, n),
        touch=None,
        kind=kind,
        contact=contact,
        account=account,
    )


# -- quiet hours --------------------------------------------------------------------------------


def test_a_text_due_at_night_in_new_york_waits_for_eight_local_and_email_for_monday():
    contact = Contact(id="c1", timezone="America/New_York", phone="+12025550143")
    now = datetime(2026, 9, 5, 2, 30, tzinfo=UTC)  # Friday 22:30 in New York
    sms, email, inapp = QuietHours(WindowSettings()).rule(
        [
            pending(contact, kind=ChannelKind.SMS),
            pending(contact, kind=ChannelKind.EMAIL),
            pending(contact, kind=ChannelKind.INAPP),
        ],
        now,
    )
    assert sms.check.verdict is Verdict.FAIL
    assert sms.until == datetime(2026, 9, 5, 8, 0, tzinfo=NEW_YORK)
    assert "outside the sms window 08:00-21:00 every day" in sms.check.reason
    assert email.until == datetime(2026, 9, 7, 8, 0, tzinfo=NEW_YORK)  # Monday
    assert inapp.check.verdict is Verdict.INFO


def test_inside_the_window_passes_and_the_accounts_zone_stands_in_for_an_unknown_one():
    contact = Contact(id="c1", email="c1@example.test")  # no timezone: UTC, read as unknown
    account = Account(id="a1", traits={"timezone": "Asia/Jakarta"})
    now = datetime(2026, 9, 7, 3, 0, tzinfo=UTC)  # Monday 10:00 in Jakarta, 03:00 in UTC
    [ruling] = QuietHours(WindowSettings()).rule([pending(contact, account=account)], now)
    assert ruling.check.verdict is Verdict.PASS
    assert ruling.check.inputs["timezone"] == "Asia/Jakarta"
    assert ruling.check.inputs["timezone_from"] == "account"


def test_a_holiday_of_the_contacts_locale_keeps_the_day_closed():
    settings = WindowSettings(holidays=Holidays(by_locale={"pt-BR": frozenset({date(2026, 9, 7)})}))
    brazilian = Contact(id="c1", timezone="America/Sao_Paulo", locale="pt-BR")
    other = Contact(id="c2", timezone="America/Sao_Paulo", locale="en")
    now = datetime(2026, 9, 7, 13, 0, tzinfo=UTC)  # Monday 10:00 in Sao Paulo
    held, free = QuietHours(settings).rule([pending(brazilian), pending(other, n=2)], now)
    assert free.check.verdict is Verdict.PASS
    assert held.until == datetime(2026, 9, 8, 8, 0, tzinfo=ZoneInfo("America/Sao_Paulo"))
    assert "(a holiday)" in held.check.reason


# -- reserved days ------------------------------------------------------------------------------


def test_a_reserved_day_holds_other_touches_for_the_segments_members_only(store: Store):
    now = datetime(2026, 10, 14, 15, 0, tzinfo=UTC)
    paying = Contact(id="c1", account_id="a1", timezone="America/New_York")
    free = Contact(id="c2", account_id="a2", timezone="America/New_York")
    store.save_profiles(
        accounts=[
            Account(id="a1", traits={"plan": "pro"}),
            Account(id="a2", traits={"plan": "free"}),
        ],
        contacts=[paying, free],
        now=now,
    )
    launch = Reservation(
        name="launch",
        segment="paying",
        days=frozenset({date(2026, 10, 14), date(2026, 10, 15)}),
        touches=frozenset({"webinar"}),
    )
    policy = ReservedDays(
        store, [launch], SegmentSet({"paying": "account.plan == 'pro'"}, file="program.toml")
    )
    news, webinar, others = policy.rule(
        [pending(paying), pending(paying, touch="webinar", n=2), pending(free, n=3)], now
    )
    assert news.check.verdict is Verdict.FAIL
    assert news.until == datetime(2026, 10, 16, 0, 0, tzinfo=NEW_YORK)
    assert "reserved for segment paying (launch)" in news.check.reason
    assert webinar.check.verdict is Verdict.PASS
    assert others.check.verdict is Verdict.PASS
    # The day after the run, nothing is held.
    [after] = policy.rule([pending(paying)], now + timedelta(days=2))
    assert after.check.verdict is Verdict.PASS


def test_bad_reservations_are_refused_with_file_and_key():
    _, errors = read_reserved(
        {
            "launch": {"segment": "nobody", "days": ["2026-10-14"], "touches": ["ghost"]},
            "empty": {"segment": "paying", "days": []},
            "typo": {"segment": "paying", "days": ["14/10/2026"], "when": 1},
        },
        file="program.toml",
        segments=["paying"],
        touches=["news"],
    )
    assert [(e.key, e.reason.split(" (")[0]) for e in errors] == [
        ("reserved.launch.segment", "unknown segment 'nobody'"),
        ("reserved.launch.touches", "unknown touch 'ghost'"),
        ("reserved.empty.days", 'expected a list of ISO dates, e.g. ["2026-10-14"], got []'),
        ("reserved.typo.when", "unknown key"),
        ("reserved.typo.days", "expected an ISO date such as \"2026-12-25\", got '14/10/2026'"),
    ]


# -- WhatsApp's 24-hour window ----------------------------------------------------------------


def test_free_form_text_goes_only_within_24_hours_of_the_contacts_last_message(store, tmp_path):
    (tmp_path / "chat.whatsapp.txt").write_text("Hi {{ contact.first_name }}")
    (tmp_path / "order.whatsapp.toml").write_text(
        'template = "order_update"\nparameters = ["contact.first_name"]\n'
    )
    now = datetime(2026, 9, 7, 12, 0, tzinfo=UTC)
    wrote = Contact(id="c1", phone="+12025550143")
    silent = Contact(id="c2", phone="+12025550144")
    long_ago = Contact(id="c3", phone="+12025550145")
    store.save_profiles(contacts=[wrote, silent, long_ago], now=now)
    store.add_events(
        [
            Event(name="whatsapp_inbound", contact_id="c1", occurred_at=now - timedelta(hours=3)),
            Event(name="whatsapp_inbound", contact_id="c3", occurred_at=now - timedelta(hours=30)),
        ],
        now=now,
    )
    policy = WhatsAppWindow(store, TemplateSet(tmp_path))
    kind = ChannelKind.WHATSAPP
    inside, never, expired, template, email = policy.rule(
        [
            pending(wrote, touch="chat", kind=kind),
            pending(silent, touch="chat", kind=kind, n=2),
            pending(long_ago, touch="chat", kind=kind, n=3),
            pending(silent, touch="order", kind=kind, n=4),
            pending(silent, touch="chat", kind=ChannelKind.EMAIL, n=5),
        ],
        now,
    )
    assert inside.check.verdict is Verdict.PASS
    assert never.check.verdict is Verdict.FAIL
    assert never.until is None  # skipped, not deferred
    assert "the contact never wrote" in never.check.reason
    assert expired.check.verdict is Verdict.FAIL
    assert "only an approved template (.whatsapp.toml) may go" in expired.check.reason
    assert template.check.verdict is Verdict.PASS
    assert email.check.verdict is Verdict.INFO
