from datetime import UTC, datetime, timedelta

from onetomany import FrozenClock

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def test_frozen_clock_advances_by_a_timedelta():
    clock = FrozenClock(START)
    assert clock.advance(timedelta(days=2)) == START + timedelta(days=2)
    assert clock.now() == START + timedelta(days=2)


def test_frozen_clock_advances_by_keywords_as_before():
    clock = FrozenClock(START)
    assert clock.advance(hours=1, minutes=30) == START + timedelta(hours=1, minutes=30)
    assert clock.advance(days=3, seconds=-1) == START + timedelta(
        days=3, hours=1, minutes=29, seconds=59
    )


def test_a_timedelta_and_keywords_add_up():
    clock = FrozenClock(START)
    assert clock.advance(timedelta(days=1), hours=2) == START + timedelta(days=1, hours=2)


def test_sleep_advances_the_frozen_clock():
    clock = FrozenClock(START)
    clock.sleep(90)
    assert clock.now() == START + timedelta(seconds=90)
