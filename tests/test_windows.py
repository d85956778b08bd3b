"""Send windows on the recipient's wall clock: DST days, holidays, and the program.toml form."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onetomany import Account, Contact
from onetomany.model import ChannelKind
from onetomany.rules.calendar import Holidays, parse_ics
from onetomany.rules.windows import (
    DEFAULT_WINDOWS,
    SendWindow,
    WindowNeverOpens,
    is_open,
    next_opening,
    read_windows,
    recipient_zone,
)

NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")


def local(zone: ZoneInfo, *parts: int, fold: int = 0) -> datetime:
    return datetime(*parts, tzinfo=zone, fold=fold)  # type: ignore[misc]


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


# -- the spring-forward gap -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "day", "gap_opens"),
    [
        # New York skips 02:00-03:00 on 8 March 2026; Berlin 02:00-03:00 on 29 March 2026.
        (NEW_YORK, date(2026, 3, 8), utc(2026, 3, 8, 7, 0)),
        (BERLIN, date(2026, 3, 29), utc(2026, 3, 29, 1, 0)),
    ],
)
def test_a_window_opening_in_the_skipped_hour_opens_when_the_clock_jumps(zone, day, gap_opens):
    window = SendWindow.parse("02:30-20:00")
    midnight = datetime.combine(day, datetime.min.time(), tzinfo=zone)
    opening = next_opening(midnight, window, zone)
    assert opening == gap_opens
    assert opening.astimezone(zone).hour == 3  # the first local time at or after 02:30
    assert not is_open(opening - timedelta(seconds=1), window, zone)


def test_a_window_that_lies_inside_the_skipped_hour_does_not_open_that_day():
    window = SendWindow.parse("02:00-02:45")
    opening = next_opening(local(NEW_YORK, 2026, 3, 8, 0, 0), window, NEW_YORK)
    assert opening.astimezone(NEW_YORK) == local(NEW_YORK, 2026, 3, 9, 2, 0)


def test_eight_in_the_morning_after_spring_forward_is_eight_on_the_new_clock():
    sms = DEFAULT_WINDOWS[ChannelKind.SMS]
    assert sms is not None
    opening = next_opening(local(NEW_YORK, 2026, 3, 7, 22, 0), sms, NEW_YORK)
    assert opening == utc(2026, 3, 8, 12, 0)  # 08:00 EDT, not 08:00 EST
    opening = next_opening(local(BERLIN, 2026, 3, 28, 22, 0), sms, BERLIN)
    assert opening == utc(2026, 3, 29, 6, 0)  # 08:00 CEST


# -- the autumn overlap -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "day", "first_pass", "second_pass"),
    [
        # New York repeats 01:00-02:00 on 1 November 2026; Berlin 02:00-03:00 on 25 October.
        (NEW_YORK, date(2026, 11, 1), utc(2026, 11, 1, 5, 30), utc(2026, 11, 1, 6, 30)),
        (BERLIN, date(2026, 10, 25), utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 30)),
    ],
)
def test_a_window_opening_in_the_repeated_hour_opens_at_its_first_passing(
    zone, day, first_pass, second_pass
):
    hour = first_pass.astimezone(zone).hour
    window = SendWindow.parse(f"{hour:02d}:30-20:00")
    midnight = datetime.combine(day, datetime.min.time(), tzinfo=zone)
    assert next_opening(midnight, window, zone) == first_pass
    # Open through the first passing; when the clock goes back to hh:00 it is quiet again
    # until hh:30 comes round a second time.
    assert is_open(first_pass + timedelta(minutes=29), window, zone)
    back = second_pass - timedelta(minutes=30)
    assert not is_open(back, window, zone)
    assert next_opening(back, window, zone) == second_pass


def test_a_window_closing_in_the_repeated_hour_opens_again_when_the_clock_goes_back():
    window = SendWindow.parse("00:00-01:30")
    moment = utc(2026, 11, 1, 5, 45)  # 01:45 EDT: closed
    assert not is_open(moment, window, NEW_YORK)
    assert next_opening(moment, window, NEW_YORK) == utc(2026, 11, 1, 6, 0)  # 01:00 EST


def test_evening_quiet_hours_follow_the_local_clock_across_the_autumn_change():
    email = DEFAULT_WINDOWS[ChannelKind.EMAIL]
    assert email is not None
    # Friday 30 October 2026 21:00 in Berlin: next is Monday 2 November 08:00 CET (UTC+1).
    assert next_opening(local(BERLIN, 2026, 10, 30, 21, 0), email, BERLIN) == utc(2026, 11, 2, 7, 0)


# -- the properties ---------------------------------------------------------------------------

ZONES = [NEW_YORK, BERLIN, ZoneInfo("Australia/Lord_Howe"), ZoneInfo("Asia/Kolkata"), UTC]
TRANSITIONS = [utc(2026, 3, 8, 7), utc(2026, 3, 29, 1), utc(2026, 10, 25, 1), utc(2026, 11, 1, 6)]


@st.composite
def windows(draw: st.DrawFn) -> SendWindow:
    start = draw(st.integers(0, 1439))
    end = draw(st.integers(start + 1, 1440))
    days = draw(st.frozensets(st.integers(0, 6), min_size=1))
    return SendWindow(start=start, end=end, days=days)


@st.composite
def moments(draw: st.DrawFn) -> datetime:
    near = draw(st.sampled_from(TRANSITIONS))
    return near + timedelta(seconds=draw(st.integers(-3 * 86400, 3 * 86400)))


def _minute_starts(start: datetime, stop: datetime):
    at = start.replace(second=0, microsecond=0)
    if at < start:
        at += timedelta(minutes=1)
    while at < stop:
        yield at
        at += timedelta(minutes=1)


@settings(max_examples=150, deadline=None)
@given(
    window=windows(),
    zone=st.sampled_from(ZONES),
    moment=moments(),
    holidays=st.frozensets(st.integers(-2, 8), max_size=3),
)
def test_the_opening_is_the_first_open_instant_not_before_the_moment(
    window, zone, moment, holidays
):
    closed = frozenset(moment.astimezone(zone).date() + timedelta(days=d) for d in holidays)
    opening = next_opening(moment, window, zone, closed)
    assert opening >= moment
    assert is_open(opening, window, zone, closed)
    local_open = opening.astimezone(zone)
    assert window.contains(local_open)
    assert local_open.date() not in closed
    if opening > moment:
        # Whole-minute windows in zones that change offset on whole minutes: open or closed
        # stays the same through each minute, so checking every minute start (and the moment
        # itself) checks every instant before the opening.
        assert not is_open(moment, window, zone, closed)
        for at in _minute_starts(moment, opening):
            assert not is_open(at, window, zone, closed), at


@settings(max_examples=100, deadline=None)
@given(window=windows(), zone=st.sampled_from(ZONES), moment=moments())
def test_an_open_moment_is_its_own_opening(window, zone, moment):
    if is_open(moment, window, zone):
        assert next_opening(moment, window, zone) == moment


# -- holidays -----------------------------------------------------------------------------------


def test_a_holiday_closes_the_day_and_the_window_opens_on_the_next_open_day():
    email = DEFAULT_WINDOWS[ChannelKind.EMAIL]
    assert email is not None
    christmas = frozenset({date(2026, 12, 25)})
    moment = local(NEW_YORK, 2026, 12, 24, 21, 0)  # Thursday evening
    assert next_opening(moment, email, NEW_YORK, christmas) == local(NEW_YORK, 2026, 12, 28, 8, 0)


def test_a_calendar_closing_every_day_is_reported_not_looped_on():
    window = SendWindow.parse("08:00-20:00")
    start = date(2026, 1, 1)
    every_day = frozenset(start + timedelta(days=n) for n in range(4 * 366))
    with pytest.raises(WindowNeverOpens, match="does not open"):
        next_opening(local(UTC, 2026, 1, 1, 9), window, UTC, every_day)  # type: ignore[arg-type]


ICS = """BEGIN:VCALENDAR\r
VERSION:2.0\r
BEGIN:VEVENT\r
SUMMARY:Christmas\r
DTSTART;VALUE=DATE:20261225\r
RRULE:FREQ=YEARLY\r
END:VEVENT\r
BEGIN:VEVENT\r
SUMMARY:Carnival, two days\r
DTSTART;VALUE=DATE:20270208\r
DTEND;VALUE=DATE:20270210\r
END:VEVENT\r
BEGIN:VEVENT\r
SUMMARY:A timed event closes its day\r
DTSTART:20270501T090000Z\r
END:VEVENT\r
END:VCALENDAR\r
"""


def test_an_ics_calendar_closes_its_events_days_runs_and_recurrences():
    days = parse_ics(ICS)
    assert {date(2026, 12, 25), date(2027, 12, 25), date(2040, 12, 25)} <= days
    assert {date(2027, 2, 8), date(2027, 2, 9)} <= days
    assert date(2027, 2, 10) not in days  # DTEND is exclusive
    assert date(2027, 5, 1) in days


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("BEGIN:VEVENT\nDTSTART:2026-12-25\nEND:VEVENT\n", "line 2"),
        ("BEGIN:VEVENT\nSUMMARY:x\nEND:VEVENT\n", "without DTSTART"),
        ("BEGIN:VEVENT\nDTSTART:20261225\n", "ends inside a VEVENT"),
        ("BEGIN:VEVENT\nDTSTART:20261225\nRRULE:FREQ=SOMETIMES\nEND:VEVENT\n", "line 3"),
        ("garbage\n", "line 1"),
    ],
)
def test_a_broken_ics_calendar_says_where(text, message):
    with pytest.raises(ValueError, match=message):
        parse_ics(text)


def test_a_contact_gets_its_locales_calendar_then_its_languages_then_the_default():
    holidays = Holidays(
        by_locale={
            "default": frozenset({date(2026, 1, 1)}),
            "pt": frozenset({date(2026, 4, 21)}),
            "pt-BR": frozenset({date(2026, 11, 2)}),
        }
    )
    assert holidays.closed("pt-BR") == {date(2026, 11, 2)}
    assert holidays.closed("pt-PT") == {date(2026, 4, 21)}
    assert holidays.closed("en") == {date(2026, 1, 1)}


# -- whose clock --------------------------------------------------------------------------------


def test_the_recipients_zone_is_the_contacts_then_the_accounts_then_the_programs():
    account = Account(id="a", traits={"timezone": "Asia/Jakarta"})
    berlin = Contact(id="c1", account_id="a", timezone="Europe/Berlin")
    unknown = Contact(id="c2", account_id="a")
    assert recipient_zone(berlin, account, "America/New_York") == (BERLIN, "contact")
    assert recipient_zone(unknown, account, "America/New_York") == (
        ZoneInfo("Asia/Jakarta"),
        "account",
    )
    assert recipient_zone(unknown, Account(id="a"), "America/New_York") == (NEW_YORK, "program")
    bad_trait = Account(id="a", traits={"timezone": "Mars/Olympus"})
    assert recipient_zone(unknown, bad_trait, None) == (ZoneInfo("UTC"), "contact")


# -- program.toml -------------------------------------------------------------------------------


def no_files(name: str) -> str:
    raise FileNotFoundError(name)


def test_the_windows_table_sets_windows_zone_and_holidays():
    settings, errors = read_windows(
        {
            "timezone": "America/New_York",
            "email": {"hours": "09:00-17:30", "days": "mon-fri"},
            "sms": {"hours": "10:00-20:00", "days": ["sat", "sun"]},
            "inapp": "always",
            "holidays": {"default": ["2026-12-25"], "pt-BR": "br.ics"},
        },
        file="program.toml",
        read_calendar=lambda name: ICS,
    )
    assert errors == []
    assert settings.timezone == "America/New_York"
    assert settings.window("email") == SendWindow(
        start=540, end=1050, days=frozenset({0, 1, 2, 3, 4})
    )
    assert settings.window("sms") == SendWindow(start=600, end=1200, days=frozenset({5, 6}))
    assert settings.window("inapp") is None
    assert settings.window("whatsapp") == DEFAULT_WINDOWS[ChannelKind.WHATSAPP]
    assert settings.holidays.closed("pt-BR") == parse_ics(ICS)
    assert settings.holidays.closed("en") == {date(2026, 12, 25)}


@pytest.mark.parametrize(
    ("section", "key", "reason"),
    [
        ({"email": {"hours": "00:00-00:00"}}, "windows.email", "never open"),
        ({"email": {"hours": "20:00-08:00"}}, "windows.email", "never open"),
        ({"sms": {"hours": "08:00-21:00", "days": []}}, "windows.sms", "weekday"),
        ({"sms": {"hours": "8 to 9"}}, "windows.sms", "08:00-20:00"),
        ({"sms": {"hours": "08:00-25:00"}}, "windows.sms", "not a time of day"),
        ({"sms": {"hours": "08:00-21:00", "days": "weekdays"}}, "windows.sms", "mon-fri"),
        ({"email": "sometimes"}, "windows.email", "always"),
        ({"fax": "always"}, "windows.fax", "unknown key"),
        ({"timezone": "Mars/Olympus"}, "windows.timezone", "IANA"),
        ({"holidays": {"default": ["25/12/2026"]}}, "windows.holidays.default", "ISO date"),
        ({"holidays": {"pt-BR": "br.ics"}}, "windows.holidays.pt-BR", "cannot read"),
        ({"holidays": ["2026-12-25"]}, "windows.holidays", "table"),
    ],
)
def test_bad_windows_are_refused_with_file_and_key(section, key, reason):
    _, errors = read_windows(section, file="program.toml", read_calendar=no_files)
    assert [(e.file, e.key) for e in errors] == [("program.toml", key)]
    assert reason in errors[0].reason


def test_a_broken_ics_file_is_refused_naming_the_file_and_line():
    _, errors = read_windows(
        {"holidays": {"pt-BR": "br.ics"}},
        file="program.toml",
        read_calendar=lambda name: "BEGIN:VEVENT\nDTSTART:nope\nEND:VEVENT\n",
    )
    assert [e.key for e in errors] == ["windows.holidays.pt-BR"]
    assert "line 2" in errors[0].reason
    assert "br.ics" in errors[0].reason
