"""The slot engine (tutoring_core/scheduling/protocol/slots.py), no database (issue 12).

Transition days used below (2027), from the system tzdata:
- America/New_York: 14 Mar 02:00 EST -> 03:00 EDT (07:00Z); 7 Nov 02:00 EDT -> 01:00 EST (06:00Z)
- Europe/Berlin: 28 Mar 02:00 CET -> 03:00 CEST (01:00Z); 31 Oct 03:00 CEST -> 02:00 CET (01:00Z)
- Australia/Sydney: 4 Apr 03:00 AEDT -> 02:00 AEST (3 Apr 16:00Z); 3 Oct 02:00 AEST -> 03:00 AEDT (2 Oct 16:00Z)
- Australia/Lord_Howe: 4 Apr 02:00 +11 -> 01:30 +10:30 (3 Apr 15:00Z); 3 Oct 02:00 +10:30 -> 02:30 +11 (2 Oct 15:30Z)
- Asia/Kolkata: +05:30 all year (no transition; the half-hour offset is the edge).
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from tutoring_core.scheduling.protocol.slots import (
    Availability,
    DateOverride,
    SlotError,
    WeeklyRule,
    free_slots,
    is_bookable,
    local_instant,
    nearest_free,
    windows,
)

UTC = dt.UTC
MIN = dt.timedelta(minutes=1)
H = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
LONG_AGO = dt.datetime(2026, 12, 1, tzinfo=UTC)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=UTC)


def hm(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def rule_on(day: dt.date, start: str, end: str) -> WeeklyRule:
    return WeeklyRule(weekday=day.weekday(), start_minute=hm(start), end_minute=hm(end))


def day_slots(av: Availability, day: dt.date, minutes: int, **kwargs: object) -> list[tuple[str, str]]:
    """Slots starting within two days around ``day`` (UTC), as ISO strings, for readable expectations."""
    start = dt.datetime.combine(day, dt.time(), UTC) - dt.timedelta(days=1)
    found = free_slots(
        av,
        duration=dt.timedelta(minutes=minutes),
        now=kwargs.pop("now", start - DAY),  # type: ignore[arg-type]
        start=start,
        end=start + dt.timedelta(days=2),
        **kwargs,  # type: ignore[arg-type]
    )
    return [(s.strftime("%m-%d %H:%M"), e.strftime("%m-%d %H:%M")) for s, e in found]


# --- DST by hand: exact UTC slots on transition days ------------------------------------------


@pytest.mark.parametrize(
    ("zone", "day", "start", "end", "minutes", "expected"),
    [
        # New York spring forward: 01:00 EST = 06:00Z, 04:00 EDT = 08:00Z (two hours of real time).
        ("America/New_York", dt.date(2027, 3, 14), "01:00", "04:00", 60,
         [("03-14 06:00", "03-14 07:00"), ("03-14 07:00", "03-14 08:00")]),
        # 02:30 does not exist that day: the window starts at the transition (03:00 EDT = 07:00Z).
        ("America/New_York", dt.date(2027, 3, 14), "02:30", "03:30", 30, [("03-14 07:00", "03-14 07:30")]),
        # Fall back: 01:00 is ambiguous (the earlier, EDT, 05:00Z); 02:00 EST = 07:00Z: two hours.
        ("America/New_York", dt.date(2027, 11, 7), "01:00", "02:00", 60,
         [("11-07 05:00", "11-07 06:00"), ("11-07 06:00", "11-07 07:00")]),
        # Berlin spring: 01:00 CET = 00:00Z, 04:00 CEST = 02:00Z; 45-minute slots, the third would end 02:15Z.
        ("Europe/Berlin", dt.date(2027, 3, 28), "01:00", "04:00", 45,
         [("03-28 00:00", "03-28 00:45"), ("03-28 00:45", "03-28 01:30")]),
        # Berlin fall: the whole repeated hour 02:00-03:00 is two hours of real time (00:00Z-02:00Z).
        ("Europe/Berlin", dt.date(2027, 10, 31), "02:00", "03:00", 30,
         [("10-31 00:00", "10-31 00:30"), ("10-31 00:30", "10-31 01:00"), ("10-31 01:00", "10-31 01:30"),
          ("10-31 01:30", "10-31 02:00")]),
        # Sydney fall: 02:00 AEDT (first of two) = 15:00Z, 03:00 AEST = 17:00Z.
        ("Australia/Sydney", dt.date(2027, 4, 4), "02:00", "03:00", 60,
         [("04-03 15:00", "04-03 16:00"), ("04-03 16:00", "04-03 17:00")]),
        # Sydney spring: 01:30 AEST = 15:30Z, 03:30 AEDT = 16:30Z: one hour of real time.
        ("Australia/Sydney", dt.date(2027, 10, 3), "01:30", "03:30", 60, [("10-02 15:30", "10-02 16:30")]),
        # Kolkata, +05:30: 09:00-10:30 local is 03:30Z-05:00Z.
        ("Asia/Kolkata", dt.date(2027, 3, 15), "09:00", "10:30", 30,
         [("03-15 03:30", "03-15 04:00"), ("03-15 04:00", "03-15 04:30"), ("03-15 04:30", "03-15 05:00")]),
        # Lord Howe fall (half-hour shift): 01:00 +11 = 14:00Z, 03:00 +10:30 = 16:30Z: 2.5 hours.
        ("Australia/Lord_Howe", dt.date(2027, 4, 4), "01:00", "03:00", 30,
         [("04-03 14:00", "04-03 14:30"), ("04-03 14:30", "04-03 15:00"), ("04-03 15:00", "04-03 15:30"),
          ("04-03 15:30", "04-03 16:00"), ("04-03 16:00", "04-03 16:30")]),
        # Lord Howe spring: 01:00 +10:30 = 14:30Z, 04:00 +11 = 17:00Z: 2.5 hours, two whole hours fit.
        ("Australia/Lord_Howe", dt.date(2027, 10, 3), "01:00", "04:00", 60,
         [("10-02 14:30", "10-02 15:30"), ("10-02 15:30", "10-02 16:30")]),
        # 02:15 does not exist (02:00 -> 02:30): start at the transition, 15:30Z; 03:00 +11 = 16:00Z.
        ("Australia/Lord_Howe", dt.date(2027, 10, 3), "02:15", "03:00", 30, [("10-02 15:30", "10-02 16:00")]),
        # Hours wholly inside the gap cover no instant.
        ("Australia/Lord_Howe", dt.date(2027, 10, 3), "02:00", "02:30", 15, []),
        # Lord Howe fall, 01:30-02:00 happens twice: from the first 01:30 (14:30Z) to 02:00 +10:30 (15:30Z).
        ("Australia/Lord_Howe", dt.date(2027, 4, 4), "01:30", "02:00", 30,
         [("04-03 14:30", "04-03 15:00"), ("04-03 15:00", "04-03 15:30")]),
    ],
)  # fmt: skip
def test_transition_days_by_hand(
    zone: str, day: dt.date, start: str, end: str, minutes: int, expected: list[tuple[str, str]]
) -> None:
    av = Availability(time_zone=zone, weekly=(rule_on(day, start, end),))
    assert day_slots(av, day, minutes) == expected


def test_windows_on_transition_days_by_hand() -> None:
    av = Availability("America/New_York", weekly=(WeeklyRule(6, hm("00:00"), hm("12:00")),))
    # 23 hours' day: midnight EST (05:00Z) to noon EDT (16:00Z) is 11 hours.
    assert windows(av, utc(2027, 3, 14), utc(2027, 3, 15)) == [(utc(2027, 3, 14, 5), utc(2027, 3, 14, 16))]
    # 25 hours' day: midnight EDT (04:00Z) to noon EST (17:00Z) is 13 hours.
    assert windows(av, utc(2027, 11, 7), utc(2027, 11, 8)) == [(utc(2027, 11, 7, 4), utc(2027, 11, 7, 17))]


def test_local_instant_gap_fold_and_midnight() -> None:
    assert local_instant("America/New_York", dt.date(2027, 3, 14), hm("02:00")) == utc(2027, 3, 14, 7)
    assert local_instant("America/New_York", dt.date(2027, 3, 14), hm("02:59")) == utc(2027, 3, 14, 7)
    assert local_instant("America/New_York", dt.date(2027, 3, 14), hm("03:00")) == utc(2027, 3, 14, 7)
    assert local_instant("America/New_York", dt.date(2027, 11, 7), hm("01:30")) == utc(2027, 11, 7, 5, 30)
    assert local_instant("Europe/Berlin", dt.date(2027, 10, 30), 1440) == utc(2027, 10, 30, 22)
    assert local_instant("Australia/Lord_Howe", dt.date(2027, 4, 4), hm("02:00")) == utc(2027, 4, 3, 15, 30)


def test_overnight_rule_merges_across_midnight_and_a_gap() -> None:
    # Saturday 22:00-24:00 and Sunday 00:00-02:00 in New York on the spring-forward night: 22:00 EST
    # (03:00Z) to 02:00 Sunday, which does not exist, so 03:00 EDT (07:00Z). One window of four hours;
    # 45-minute slots run across midnight from its start.
    av = Availability(
        "America/New_York",
        weekly=(WeeklyRule(5, hm("22:00"), 1440), WeeklyRule(6, 0, hm("02:00"))),
    )
    assert windows(av, utc(2027, 3, 14), utc(2027, 3, 15)) == [(utc(2027, 3, 14, 3), utc(2027, 3, 14, 7))]
    assert day_slots(av, dt.date(2027, 3, 14), 45) == [
        ("03-14 03:00", "03-14 03:45"),
        ("03-14 03:45", "03-14 04:30"),
        ("03-14 04:30", "03-14 05:15"),
        ("03-14 05:15", "03-14 06:00"),
        ("03-14 06:00", "03-14 06:45"),
    ]


def test_touching_rules_merge_and_slots_count_from_the_first() -> None:
    # Monday 09:00-10:00 and 10:00-11:00 UTC are one window; 45-minute slots: 09:00, 09:45 (10:30 would end 11:15).
    av = Availability(
        "UTC", weekly=(WeeklyRule(0, hm("09:00"), hm("10:00")), WeeklyRule(0, hm("10:00"), hm("11:00")))
    )
    assert windows(av, utc(2027, 3, 15), utc(2027, 3, 16)) == [(utc(2027, 3, 15, 9), utc(2027, 3, 15, 11))]
    assert day_slots(av, dt.date(2027, 3, 15), 45) == [
        ("03-15 09:00", "03-15 09:45"),
        ("03-15 09:45", "03-15 10:30"),
    ]


def test_round_the_clock_availability_has_one_grid_whatever_the_query() -> None:
    # Kolkata, every day whole: one endless window; its slots count from 2000-01-03 00:00 +05:30
    # (2000-01-02 18:30Z), so 45-minute slots fall on the same instants whichever range is asked.
    av = Availability(
        "Asia/Kolkata", weekly=tuple(WeeklyRule(day, 0, 1440) for day in range(7)), window_days=730
    )
    now = utc(2027, 3, 1)
    wide = free_slots(av, duration=45 * MIN, now=now, start=utc(2027, 3, 10), end=utc(2027, 3, 12))
    narrow = free_slots(av, duration=45 * MIN, now=now, start=utc(2027, 3, 11, 7), end=utc(2027, 3, 11, 9))
    assert narrow == [s for s in wide if utc(2027, 3, 11, 7) <= s[0] < utc(2027, 3, 11, 9)]
    anchor = utc(2000, 1, 2, 18, 30)
    assert all((s - anchor) % (45 * MIN) == dt.timedelta(0) for s, _ in wide)
    assert len(wide) == 64


def test_chain_of_whole_days_is_followed_back_to_its_start() -> None:
    # Monday 20:00-24:00, Tuesday and Wednesday whole: one window from Monday 20:00; a query on
    # Wednesday sees 50-minute slots counted from Monday 20:00 UTC.
    av = Availability(
        "UTC",
        weekly=(WeeklyRule(0, hm("20:00"), 1440), WeeklyRule(1, 0, 1440), WeeklyRule(2, 0, hm("06:00"))),
    )
    assert windows(av, utc(2027, 3, 17, 1), utc(2027, 3, 17, 2)) == [
        (utc(2027, 3, 15, 20), utc(2027, 3, 17, 6))
    ]
    found = free_slots(
        av, duration=50 * MIN, now=utc(2027, 3, 17) - DAY, start=utc(2027, 3, 17), end=utc(2027, 3, 18)
    )
    # 34 hours from Monday 20:00 to Wednesday 06:00 hold 40 slots; Wednesday's are the 35th to the 40th.
    first = utc(2027, 3, 15, 20)
    assert found == [(first + k * 50 * MIN, first + (k + 1) * 50 * MIN) for k in range(34, 40)]
    assert (found[0][0], found[-1][1]) == (utc(2027, 3, 17, 0, 20), utc(2027, 3, 17, 5, 20))


# --- the rules --------------------------------------------------------------------------------

BERLIN_MON = dt.date(2027, 6, 14)  # a Monday, CEST (+02:00)


def berlin(hour: int, minute: int = 0, day: dt.date = BERLIN_MON) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), ZoneInfo("Europe/Berlin")).astimezone(UTC)


def berlin_av(**kwargs: object) -> Availability:
    return Availability("Europe/Berlin", weekly=(WeeklyRule(0, hm("09:00"), hm("12:00")),), **kwargs)  # type: ignore[arg-type]


def slots_on_monday(av: Availability, minutes: int, **kwargs: object) -> list[dt.datetime]:
    found = free_slots(
        av,
        duration=dt.timedelta(minutes=minutes),
        now=kwargs.pop("now", berlin(0) - DAY),  # type: ignore[arg-type]
        start=berlin(0),
        end=berlin(0) + dt.timedelta(days=1),
        **kwargs,  # type: ignore[arg-type]
    )
    assert all(end - start == dt.timedelta(minutes=minutes) for start, end in found)
    return [start for start, _ in found]


def test_plain_day() -> None:
    assert slots_on_monday(berlin_av(), 60) == [berlin(9), berlin(10), berlin(11)]
    assert berlin(9) == utc(2027, 6, 14, 7)


def test_busy_blocks_with_buffers() -> None:
    busy = [(berlin(10), berlin(11))]
    assert slots_on_monday(berlin_av(), 60, busy=busy) == [berlin(9), berlin(11)]
    buffered = berlin_av(buffer_before=15 * MIN, buffer_after=15 * MIN)
    # 60 minutes: 09:00 needs 08:45-10:15, 11:00 needs 10:45-12:15; both touch the busy hour.
    assert slots_on_monday(buffered, 60, busy=busy) == []
    # 30 minutes: 09:00 (08:45-09:45) and 11:30 (11:15-12:15) are clear; 09:30 and 11:00 are not.
    assert slots_on_monday(buffered, 30, busy=busy) == [berlin(9), berlin(11, 30)]
    # A busy block that only touches a slot's block leaves it free (half-open ranges): 09:00 is
    # blocked to 10:30 and 11:00 from 11:00; 10:00 (to 11:30) overlaps.
    assert slots_on_monday(berlin_av(buffer_after=30 * MIN), 60, busy=[(berlin(10, 30), berlin(11))]) == [
        berlin(9),
        berlin(11),
    ]


def test_busy_blocks_unsorted_overlapping_and_in_other_zones() -> None:
    tokyo = ZoneInfo("Asia/Tokyo")
    busy = [
        (berlin(11, 10).astimezone(tokyo), berlin(11, 20).astimezone(tokyo)),
        (berlin(9, 0), berlin(9, 40)),
        (berlin(9, 30), berlin(9, 50)),
    ]
    assert slots_on_monday(berlin_av(), 30, busy=busy) == [berlin(10), berlin(10, 30), berlin(11, 30)]


def test_many_busy_blocks() -> None:
    # Every other half hour busy over a year: the slots are exactly the free halves of Monday's hours.
    start = berlin(0) - dt.timedelta(days=180)
    busy = [(start + k * H, start + k * H + 30 * MIN) for k in range(24 * 365)]
    assert slots_on_monday(berlin_av(), 30, busy=busy) == [berlin(9, 30), berlin(10, 30), berlin(11, 30)]


def test_minimum_notice() -> None:
    now = berlin(8, 30)
    assert slots_on_monday(berlin_av(min_notice=60 * MIN), 60, now=now) == [berlin(10), berlin(11)]
    assert slots_on_monday(berlin_av(min_notice=30 * MIN), 60, now=now) == [berlin(9), berlin(10), berlin(11)]
    assert slots_on_monday(berlin_av(), 60, now=berlin(9, 1)) == [berlin(10), berlin(11)]


def test_booking_window_up_to_two_years() -> None:
    now = berlin(11) - dt.timedelta(days=730)
    av = berlin_av(window_days=730)
    # The 10:00 slot ends exactly 730 days after now: inside; 11:00 ends an hour later: outside.
    assert slots_on_monday(av, 60, now=now) == [berlin(9), berlin(10)]
    assert slots_on_monday(av, 60, now=now + H - MIN) == [berlin(9), berlin(10)]
    assert slots_on_monday(av, 60, now=now + H) == [berlin(9), berlin(10), berlin(11)]
    assert slots_on_monday(av, 60, now=now - MIN) == [berlin(9)]
    assert slots_on_monday(berlin_av(window_days=1), 60, now=berlin(10) - dt.timedelta(days=1)) == [berlin(9)]
    with pytest.raises(SlotError, match="window_days must be 1 to 730, not 731"):
        berlin_av(window_days=731)
    with pytest.raises(SlotError, match="window_days must be 1 to 730, not 0"):
        berlin_av(window_days=0)


def test_daily_cap_counts_the_tutor_local_date() -> None:
    # Sydney 22:00-24:00 on Monday 14 June 2027 (AEST, +10) is 12:00Z-14:00Z that same UTC date;
    # 23:30 Sunday local is Sunday too. Counts are per Sydney date.
    av = Availability(
        "Australia/Sydney",
        weekly=(WeeklyRule(0, hm("08:00"), hm("10:00")), WeeklyRule(6, hm("23:00"), 1440)),
        daily_cap=2,
    )
    start, end = utc(2027, 6, 13), utc(2027, 6, 15)
    sunday, monday = dt.date(2027, 6, 13), dt.date(2027, 6, 14)

    def starts(booked: dict[dt.date, int]) -> list[dt.datetime]:
        found = free_slots(av, duration=H, now=start - DAY, start=start, end=end, booked_per_day=booked)
        return [s for s, _ in found]

    # Sunday 23:00 local = 13:00Z Sunday; Monday 08:00, 09:00 local = 22:00Z, 23:00Z Sunday.
    assert starts({}) == [utc(2027, 6, 13, 13), utc(2027, 6, 13, 22), utc(2027, 6, 13, 23)]
    assert starts({monday: 1}) == [utc(2027, 6, 13, 13), utc(2027, 6, 13, 22), utc(2027, 6, 13, 23)]
    assert starts({monday: 2}) == [utc(2027, 6, 13, 13)]
    assert starts({sunday: 2, monday: 1}) == [utc(2027, 6, 13, 22), utc(2027, 6, 13, 23)]
    assert starts({dt.date(2027, 6, 12): 5, dt.date(2027, 6, 15): 5}) == starts({})
    capped_at_zero = Availability("Australia/Sydney", weekly=av.weekly, daily_cap=0)
    assert free_slots(capped_at_zero, duration=H, now=start - DAY, start=start, end=end) == []


def test_overrides_add_hours_replace_rules_and_take_days_off() -> None:
    tuesday = BERLIN_MON + dt.timedelta(days=1)
    av = Availability(
        "Europe/Berlin",
        weekly=(WeeklyRule(0, hm("09:00"), hm("12:00")),),
        overrides=(
            # Extra hours on a Tuesday, which has no weekly rule, in two pieces.
            DateOverride(tuesday, hm("14:00"), hm("15:00")),
            DateOverride(tuesday, hm("16:00"), hm("17:00")),
        ),
    )
    assert slots_on_monday(av, 60) == [berlin(9), berlin(10), berlin(11)]
    found = free_slots(
        av,
        duration=H,
        now=berlin(0, day=tuesday) - DAY,
        start=berlin(0, day=tuesday),
        end=berlin(23, day=tuesday),
    )
    assert [s for s, _ in found] == [berlin(14, day=tuesday), berlin(16, day=tuesday)]
    # An override on Monday replaces Monday's weekly hours.
    moved = Availability(
        "Europe/Berlin", weekly=av.weekly, overrides=(DateOverride(BERLIN_MON, hm("13:00"), hm("14:00")),)
    )
    assert slots_on_monday(moved, 60) == [berlin(13)]
    # A day off: nothing that date, the next Monday unchanged.
    off = Availability(
        "Europe/Berlin", weekly=av.weekly, overrides=(DateOverride(BERLIN_MON, None, None, unavailable=True),)
    )
    assert slots_on_monday(off, 60) == []
    next_monday = BERLIN_MON + dt.timedelta(days=7)
    found = free_slots(
        off,
        duration=H,
        now=berlin(0, day=next_monday) - DAY,
        start=berlin(0, day=next_monday),
        end=berlin(23, day=next_monday),
    )
    assert [s for s, _ in found] == [
        berlin(9, day=next_monday),
        berlin(10, day=next_monday),
        berlin(11, day=next_monday),
    ]
    # A day off wins over hours given for the same date.
    both = Availability(
        "Europe/Berlin",
        weekly=av.weekly,
        overrides=(
            DateOverride(BERLIN_MON, hm("13:00"), hm("14:00")),
            DateOverride(BERLIN_MON, None, None, True),
        ),
    )
    assert slots_on_monday(both, 60) == []


def test_override_on_a_transition_day() -> None:
    # Lord Howe, Sunday 4 April 2027 (the example): an override 01:00-03:00 on a day with no rule.
    av = Availability(
        "Australia/Lord_Howe",
        weekly=(),
        overrides=(DateOverride(dt.date(2027, 4, 4), hm("01:00"), hm("03:00")),),
    )
    assert windows(av, utc(2027, 4, 3), utc(2027, 4, 5)) == [(utc(2027, 4, 3, 14), utc(2027, 4, 3, 16, 30))]


def test_range_holds_slots_starting_in_it() -> None:
    av = berlin_av()
    found = free_slots(av, duration=H, now=berlin(9, 30) - DAY, start=berlin(9, 30), end=berlin(11))
    assert found == [(berlin(10), berlin(11))]
    found = free_slots(
        av,
        duration=H,
        now=berlin(9, 30) - DAY,
        start=berlin(9, 30),
        end=berlin(11, 0) + dt.timedelta(microseconds=1),
    )
    assert found == [(berlin(10), berlin(11)), (berlin(11), berlin(12))]
    assert free_slots(av, duration=H, now=berlin(12) - DAY, start=berlin(12), end=berlin(9)) == []


def test_is_bookable_follows_the_same_rules() -> None:
    av = berlin_av(buffer_after=10 * MIN, min_notice=60 * MIN, daily_cap=3)
    now = berlin(8)
    ok = {"duration": H, "now": now, "busy": (), "booked_per_day": {}}
    assert is_bookable(av, slot_start=berlin(9), **ok)  # type: ignore[arg-type]
    assert is_bookable(av, slot_start=berlin(11), **ok)  # type: ignore[arg-type]
    assert not is_bookable(av, slot_start=berlin(9, 30), **ok)  # type: ignore[arg-type]  # off the grid
    assert not is_bookable(av, slot_start=berlin(12), **ok)  # type: ignore[arg-type]  # past the window's end
    assert not is_bookable(av, slot_start=berlin(9), duration=H, now=berlin(8, 1), busy=(), booked_per_day={})
    assert not is_bookable(
        av, slot_start=berlin(9), duration=H, now=now, busy=[(berlin(10), berlin(10, 5))], booked_per_day={}
    )
    assert not is_bookable(
        av, slot_start=berlin(9), duration=H, now=now, busy=(), booked_per_day={BERLIN_MON: 3}
    )
    assert is_bookable(av, slot_start=berlin(9).astimezone(ZoneInfo("Europe/Berlin")), **ok)  # type: ignore[arg-type]
    # On a transition day: Lord Howe 4 April, 30-minute grid from 14:00Z.
    howe = Availability("Australia/Lord_Howe", weekly=(WeeklyRule(6, hm("01:00"), hm("03:00")),))
    assert is_bookable(
        howe, slot_start=utc(2027, 4, 3, 16), duration=30 * MIN, now=LONG_AGO + dt.timedelta(days=60)
    )
    assert not is_bookable(
        howe, slot_start=utc(2027, 4, 3, 16, 30), duration=30 * MIN, now=LONG_AGO + dt.timedelta(days=60)
    )


def test_nearest_free_by_distance_then_time() -> None:
    av = Availability("UTC", weekly=tuple(WeeklyRule(day, hm("09:00"), hm("17:00")) for day in range(5)))
    now = utc(2027, 3, 1)  # a Monday
    busy = [(utc(2027, 3, 3, 12), utc(2027, 3, 3, 13))]
    around = utc(2027, 3, 3, 12)
    found = nearest_free(av, around=around, duration=H, now=now, busy=busy, booked_per_day={}, limit=5)
    # 11:00 and 13:00 are both one hour away: the earlier first.
    assert [s for s, _ in found] == [
        utc(2027, 3, 3, 11),
        utc(2027, 3, 3, 13),
        utc(2027, 3, 3, 10),
        utc(2027, 3, 3, 14),
        utc(2027, 3, 3, 9),
    ]
    # From Saturday noon: Friday 16:00 is 20 hours back, Monday 09:00 45 hours ahead.
    saturday = utc(2027, 3, 6, 12)
    found = nearest_free(av, around=saturday, duration=H, now=now, busy=(), booked_per_day={}, limit=3)
    assert [s for s, _ in found] == [utc(2027, 3, 5, 16), utc(2027, 3, 5, 15), utc(2027, 3, 5, 14)]
    # A full Wednesday and a capped Thursday push the search outwards.
    wed = [(utc(2027, 3, 3, 9), utc(2027, 3, 3, 17))]
    capped = Availability("UTC", weekly=av.weekly, daily_cap=1)
    found = nearest_free(
        capped, around=around, duration=H, now=now, busy=wed, booked_per_day={dt.date(2027, 3, 4): 1}, limit=2
    )
    assert [s for s, _ in found] == [utc(2027, 3, 2, 16), utc(2027, 3, 2, 15)]
    # Beyond the booking window nothing is offered; far in the future the last slots in it are nearest.
    short = Availability("UTC", weekly=av.weekly, window_days=3)
    found = nearest_free(
        short, around=utc(2030, 1, 1), duration=H, now=now, busy=(), booked_per_day={}, limit=2
    )
    assert [s for s, _ in found] == [utc(2027, 3, 3, 16), utc(2027, 3, 3, 15)]
    assert nearest_free(av, around=around, duration=H, now=now, busy=(), booked_per_day={}, limit=0) == []
    nothing = Availability("UTC", weekly=())
    assert nearest_free(nothing, around=around, duration=H, now=now, busy=(), booked_per_day={}) == []


def test_everything_handed_out_is_utc() -> None:
    av = berlin_av()
    now = dt.datetime(2026, 12, 1, 9, tzinfo=ZoneInfo("America/New_York"))
    found = free_slots(av, duration=H, now=now, start=berlin(0), end=berlin(23))
    found += windows(av, berlin(0), berlin(23))
    found += nearest_free(av, around=berlin(10), duration=H, now=now, busy=(), booked_per_day={})
    assert found and all(s.tzinfo is UTC and e.tzinfo is UTC for s, e in found)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: WeeklyRule(7, 0, 60), "A weekday is 0 (Monday) to 6 (Sunday), not 7."),
        (lambda: WeeklyRule(0, 60, 60), "Hours must satisfy 0 <= start < end <= 1440 minutes (got 60-60)."),
        (lambda: WeeklyRule(0, -1, 60), "Hours must satisfy 0 <= start < end <= 1440 minutes (got -1-60)."),
        (lambda: WeeklyRule(0, 0, 1441), "Hours must satisfy 0 <= start < end <= 1440 minutes (got 0-1441)."),
        (lambda: DateOverride(dt.date(2027, 1, 1), None, 60), "The override on 2027-01-01 needs a start and an end, or unavailable."),
        (lambda: Availability("Mars/Olympus", ()), "Unknown time zone 'Mars/Olympus'."),
        (lambda: Availability("../etc/passwd", ()), "Unknown time zone '../etc/passwd'."),
        (lambda: Availability("UTC", (), buffer_before=-MIN), "buffer_before must not be negative."),
        (lambda: Availability("UTC", (), daily_cap=-1), "daily_cap must not be negative."),
        (lambda: free_slots(berlin_av(), duration=H, now=dt.datetime(2027, 1, 1), start=berlin(0), end=berlin(9)),
         "now must be an aware datetime."),
        (lambda: free_slots(berlin_av(), duration=0 * MIN, now=berlin(0) - DAY, start=berlin(0), end=berlin(9)),
         "A session lasts longer than zero minutes."),
        (lambda: free_slots(berlin_av(), duration=H, now=berlin(0) - DAY, start=berlin(0), end=berlin(9), busy=[(dt.datetime(2027, 1, 1), berlin(1))]),
         "busy start must be an aware datetime."),
        (lambda: windows(berlin_av(), dt.datetime(2027, 1, 1), berlin(9)), "start must be an aware datetime."),
        (lambda: is_bookable(berlin_av(), slot_start=dt.datetime(2027, 1, 1), duration=H, now=LONG_AGO),
         "slot_start must be an aware datetime."),
    ],
)  # fmt: skip
def test_bad_values_are_refused_with_a_reason(make: object, message: str) -> None:
    with pytest.raises(SlotError) as refused:
        make()  # type: ignore[operator]
    assert str(refused.value) == message


def test_a_day_off_starts_a_round_the_clock_chain() -> None:
    # Kolkata, every day whole, but Monday 1 March 2027 off: the chain starts at Tuesday's local
    # midnight (1 March 18:30Z), and weeks later the 45-minute slots still count from there.
    av = Availability(
        "Asia/Kolkata",
        weekly=tuple(WeeklyRule(day, 0, 1440) for day in range(7)),
        overrides=(DateOverride(dt.date(2027, 3, 1), None, None, unavailable=True),),
        window_days=730,
    )
    anchor = utc(2027, 3, 1, 18, 30)
    found = windows(av, utc(2027, 3, 20), utc(2027, 3, 21))
    assert len(found) == 1 and found[0][0] == anchor and found[0][1] >= utc(2027, 3, 21)
    slots = free_slots(
        av, duration=45 * MIN, now=utc(2027, 3, 19), start=utc(2027, 3, 20), end=utc(2027, 3, 21)
    )
    assert len(slots) == 32
    assert all((start - anchor) % (45 * MIN) == dt.timedelta(0) for start, _ in slots)
    # 26,250 minutes after the anchor is 583 slots and a third: the first starts 00:30Z.
    assert slots[0] == (utc(2027, 3, 20, 0, 30), utc(2027, 3, 20, 1, 15))
    # The day before the day off ends its own chain at Monday's local midnight.
    before = windows(av, utc(2027, 2, 28, 12), utc(2027, 2, 28, 13))
    assert before[0][1] == utc(2027, 2, 28, 18, 30)


def test_nearest_free_reaches_across_the_two_year_window() -> None:
    now = utc(2027, 1, 4)
    far = dt.date(2028, 12, 1)  # 697 days ahead
    av = Availability(
        "UTC", weekly=(), overrides=(DateOverride(far, hm("10:00"), hm("11:00")),), window_days=730
    )
    assert nearest_free(av, around=now, duration=H, now=now) == [(utc(2028, 12, 1, 10), utc(2028, 12, 1, 11))]
    shorter = Availability("UTC", weekly=(), overrides=av.overrides, window_days=697)
    assert nearest_free(shorter, around=now, duration=H, now=now) == []
    assert free_slots(av, duration=H, now=now, start=now, end=now + dt.timedelta(days=730)) == [
        (utc(2028, 12, 1, 10), utc(2028, 12, 1, 11))
    ]
