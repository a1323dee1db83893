"""The slot engine against an independent brute-force computation (issue 12), no database.

The brute force never converts a local time to an instant. It walks real time minute by minute
over 18 days, reads each minute's wall-clock time through zoneinfo, and finds "the first instant
whose local time is at or after T" as the first minute whose wall time (or any earlier minute's)
reached T. Availability is the set of minutes some rule covers; windows are its maximal runs;
slots step through each run; the other rules are checked the plain way (every busy block against
every slot). Hypothesis draws the zones' transition days (and ordinary ones), rules, overrides,
buffers, notice, windows, caps, busy blocks and queries.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
from dataclasses import dataclass
from functools import cache
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tutoring_core.scheduling.protocol.slots import (
    Availability,
    DateOverride,
    WeeklyRule,
    free_slots,
    is_bookable,
    local_instant,
    nearest_free,
    windows,
)

UTC = dt.UTC
MIN = dt.timedelta(minutes=1)
DAY_MIN = 1440
ZONES = ("America/New_York", "Europe/Berlin", "Australia/Sydney", "Asia/Kolkata", "Australia/Lord_Howe")
SCAN_BEFORE, SCAN_AFTER = 11, 7  # days of real time scanned around the drawn day


@cache
def transition_days(zone_name: str) -> tuple[dt.date, ...]:
    """Local dates in 2026-2028 on which the zone's UTC offset changes (none for Kolkata)."""
    zone = ZoneInfo(zone_name)
    found = []
    instant = dt.datetime(2026, 1, 1, tzinfo=UTC)
    previous = instant.astimezone(zone).utcoffset()
    while instant.year < 2029:
        instant += dt.timedelta(minutes=30)
        local = instant.astimezone(zone)
        if local.utcoffset() != previous:
            found.append(local.date())
            previous = local.utcoffset()
    return tuple(found)


@dataclass
class Scan:
    """Wall-clock time of every real minute from ``origin``."""

    zone: ZoneInfo
    origin: dt.datetime
    walls: list[dt.datetime]
    reached: list[dt.datetime]  # running maximum of walls: non-decreasing

    @classmethod
    def around(cls, zone_name: str, day: dt.date) -> Scan:
        zone = ZoneInfo(zone_name)
        origin = dt.datetime.combine(day - dt.timedelta(days=SCAN_BEFORE), dt.time(), UTC)
        count = (SCAN_BEFORE + SCAN_AFTER) * DAY_MIN
        walls = [(origin + k * MIN).astimezone(zone).replace(tzinfo=None) for k in range(count)]
        return cls(zone, origin, walls, list(itertools.accumulate(walls, max)))

    def index(self, instant: dt.datetime) -> int:
        return round((instant - self.origin) / MIN)

    def instant(self, index: int) -> dt.datetime:
        return self.origin + index * MIN

    def first_at_or_after(self, local: dt.datetime) -> int:
        index = bisect.bisect_left(self.reached, local)
        assert 0 < index < len(self.walls), "the scan is too short for this local time"
        return index


def brute_hours(av: Availability, day: dt.date) -> list[tuple[int, int]]:
    on_day = [o for o in av.overrides if o.date == day]
    if on_day:
        if any(o.unavailable for o in on_day):
            return []
        return [(o.start_minute, o.end_minute) for o in on_day]  # type: ignore[misc]
    return [(r.start_minute, r.end_minute) for r in av.weekly if r.weekday == day.weekday()]


def brute_runs(
    av: Availability, scan: Scan, day: dt.date, dates: list[dt.date] | None = None
) -> list[tuple[int, int]]:
    """Maximal runs [a, b) of available minutes (indices into the scan)."""
    covered = bytearray(len(scan.walls))
    if dates is None:
        dates = [day + dt.timedelta(days=offset) for offset in range(-SCAN_BEFORE + 1, SCAN_AFTER - 1)]
    for date in dates:
        midnight = dt.datetime.combine(date, dt.time())
        for start, end in brute_hours(av, date):
            first = scan.first_at_or_after(midnight + start * MIN)
            last = scan.first_at_or_after(midnight + end * MIN)
            covered[first:last] = b"\x01" * max(0, last - first)
    # A run touching either end of the scan might continue beyond it: such draws are discarded.
    assume(covered[0] == 0 and covered[-1] == 0)
    runs: list[tuple[int, int]] = []
    run_start: int | None = None
    for index, flag in enumerate(covered):
        if flag and run_start is None:
            run_start = index
        elif not flag and run_start is not None:
            runs.append((run_start, index))
            run_start = None
    return runs


def brute_slots(
    av: Availability,
    scan: Scan,
    runs: list[tuple[int, int]],
    *,
    duration: int,
    now: dt.datetime,
    busy: list[tuple[dt.datetime, dt.datetime]],
    booked: dict[dt.date, int],
) -> list[tuple[dt.datetime, dt.datetime]]:
    """Every free slot, whatever its start (the caller filters by range)."""
    found = []
    for first, last in runs:
        index = first
        while index + duration <= last:
            start, end = scan.instant(index), scan.instant(index + duration)
            block = (start - av.buffer_before, end + av.buffer_after)
            ok = (
                start >= now + av.min_notice
                and end <= now + dt.timedelta(days=av.window_days)
                and (av.daily_cap is None or booked.get(scan.walls[index].date(), 0) < av.daily_cap)
                and not any(b_start < block[1] and b_end > block[0] for b_start, b_end in busy)
            )
            if ok:
                found.append((start, end))
            index += duration
    return found


# --- strategies -----------------------------------------------------------------------------------

EDGE_MINUTES = [0, 30, 60, 90, 100, 120, 135, 150, 165, 180, 210, 240, 1380, 1410, 1440]
minute = st.one_of(st.sampled_from(EDGE_MINUTES), st.integers(0, DAY_MIN))


@st.composite
def hours(draw: st.DrawFn, most: int, least: int = 0) -> list[tuple[int, int]]:
    """Up to ``most`` intervals in one day, apart or touching."""
    count = draw(st.integers(least, most))
    points = sorted(draw(st.lists(minute, min_size=2 * count, max_size=2 * count, unique=True)))
    pairs = [(points[k], points[k + 1]) for k in range(0, len(points) - 1, 2)]
    touching = draw(st.booleans())
    if touching and len(points) >= 3:
        pairs.append((points[1], points[2]))
    return sorted({(a, b) for a, b in pairs if a < b})


@st.composite
def cases(draw: st.DrawFn) -> dict[str, object]:
    zone = draw(st.sampled_from(ZONES))
    transitions = transition_days(zone)
    day = draw(
        st.one_of(
            st.sampled_from(transitions)
            if transitions
            else st.dates(dt.date(2026, 1, 1), dt.date(2028, 12, 31)),
            st.dates(dt.date(2026, 1, 1), dt.date(2028, 12, 31)),
        )
    )
    # At least one weekday without rules keeps every chain of windows shorter than a week.
    # The drawn day always has some.
    free_weekdays = draw(
        st.sets(st.integers(0, 6).filter(lambda weekday: weekday != day.weekday()), min_size=1, max_size=4)
    )
    weekly = tuple(
        WeeklyRule(weekday, start, end)
        for weekday in range(7)
        if weekday not in free_weekdays
        for start, end in draw(hours(3, least=1))
    )
    overrides: list[DateOverride] = []
    for offset in draw(st.lists(st.integers(-2, 1), max_size=2, unique=True)):
        date = day + dt.timedelta(days=offset)
        if draw(st.booleans()):
            overrides.append(DateOverride(date, None, None, unavailable=True))
        else:
            overrides.extend(DateOverride(date, a, b) for a, b in draw(hours(2)))
    av = Availability(
        time_zone=zone,
        weekly=weekly,
        overrides=tuple(overrides),
        buffer_before=draw(st.sampled_from([0, 0, 5, 15, 30])) * MIN,
        buffer_after=draw(st.sampled_from([0, 0, 10, 15, 45])) * MIN,
        min_notice=draw(st.sampled_from([0, 0, 30, 90, 600])) * MIN,
        window_days=draw(st.integers(1, 5)),
        daily_cap=draw(st.one_of(st.none(), st.integers(1, 3), st.just(0))),
    )
    midnight = dt.datetime.combine(day, dt.time(), UTC)
    # On a five-minute grid, like the rule minutes, durations and buffers, so blocks often
    # touch a slot's block exactly (half-open ranges: touching is free).
    busy = [
        (midnight + 5 * start * MIN, midnight + 5 * (start + length) * MIN)
        for start, length in draw(
            st.lists(
                st.tuples(st.integers(-2 * DAY_MIN // 5, 3 * DAY_MIN // 5), st.integers(1, 48)), max_size=8
            )
        )
    ]
    booked = {
        day + dt.timedelta(days=offset): count
        for offset, count in draw(st.dictionaries(st.integers(-3, 5), st.integers(0, 3), max_size=4)).items()
    }
    now = midnight + draw(st.integers(-2 * DAY_MIN, DAY_MIN)) * MIN
    # Mostly inside the booking window, sometimes before ``now``.
    query_start = now + draw(st.integers(-DAY_MIN // 2, 2 * DAY_MIN)) * MIN
    return {
        "av": av,
        "day": day,
        "duration": draw(st.sampled_from([15, 20, 25, 30, 45, 50, 60, 90])),
        "now": now,
        "start": query_start,
        "end": query_start
        + draw(st.one_of(st.sampled_from([DAY_MIN, 2 * DAY_MIN]), st.integers(1, 2 * DAY_MIN))) * MIN,
        "busy": busy,
        "booked": booked,
        "around": midnight + draw(st.integers(-2 * DAY_MIN, 4 * DAY_MIN)) * MIN,
        "limit": draw(st.integers(1, 6)),
        "probes": draw(st.lists(st.integers(-DAY_MIN, 3 * DAY_MIN), max_size=6)),
    }


# --- the comparisons ------------------------------------------------------------------------------


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
)
@given(cases())
def test_engine_matches_the_minute_by_minute_computation(case: dict[str, object]) -> None:
    av: Availability = case["av"]  # type: ignore[assignment]
    day: dt.date = case["day"]  # type: ignore[assignment]
    duration: int = case["duration"]  # type: ignore[assignment]
    now: dt.datetime = case["now"]  # type: ignore[assignment]
    start: dt.datetime = case["start"]  # type: ignore[assignment]
    end: dt.datetime = case["end"]  # type: ignore[assignment]
    busy: list[tuple[dt.datetime, dt.datetime]] = case["busy"]  # type: ignore[assignment]
    booked: dict[dt.date, int] = case["booked"]  # type: ignore[assignment]
    around: dt.datetime = case["around"]  # type: ignore[assignment]

    scan = Scan.around(av.time_zone, day)
    runs = brute_runs(av, scan, day)
    every = brute_slots(av, scan, runs, duration=duration, now=now, busy=busy, booked=booked)

    # windows(): the runs meeting [start, end), compared within it (the engine cuts far ends).
    expected_windows = [
        (max(scan.instant(a), start), min(scan.instant(b), end))
        for a, b in runs
        if scan.instant(b) > start and scan.instant(a) < end
    ]
    got_windows = [(max(a, start), min(b, end)) for a, b in windows(av, start, end)]
    assert got_windows == expected_windows

    # free_slots(): slots starting in [start, end).
    got = free_slots(
        av, duration=duration * MIN, now=now, start=start, end=end, busy=busy, booked_per_day=booked
    )
    assert got == [slot for slot in every if start <= slot[0] < end]

    # nearest_free(): all free slots in the booking window, by distance to ``around``, then time.
    limit: int = case["limit"]  # type: ignore[assignment]
    nearest = sorted(every, key=lambda slot: (abs(slot[0] - around), slot[0]))[:limit]
    got_nearest = nearest_free(
        av, around=around, duration=duration * MIN, now=now, busy=busy, booked_per_day=booked, limit=limit
    )
    assert got_nearest == nearest
    from hypothesis import event

    event(f"slots={min(len(got), 3)} windows={min(len(got_windows), 2)} nearest={len(got_nearest)}")

    # is_bookable(): true exactly for the free slots' starts.
    starts = {slot[0] for slot in every}
    midnight = dt.datetime.combine(day, dt.time(), UTC)
    probes = [midnight + offset * MIN for offset in case["probes"]] + [s for s, _ in every[:3]]  # type: ignore[attr-defined]
    for probe in probes:
        answer = is_bookable(
            av, slot_start=probe, duration=duration * MIN, now=now, busy=busy, booked_per_day=booked
        )
        assert answer == (probe in starts), probe


DST_ZONES = tuple(zone for zone in ZONES if zone != "Asia/Kolkata")


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(DST_ZONES), st.data())
def test_transition_days_match_the_scan(zone: str, data: st.DataObject) -> None:
    """Rules on the transition day itself, the day shown whole: windows and slots as the scan finds them."""
    day = data.draw(st.sampled_from(transition_days(zone)))
    weekly = tuple(WeeklyRule(day.weekday(), start, end) for start, end in data.draw(hours(3, least=1)))
    av = Availability(zone, weekly=weekly, window_days=5)
    duration = data.draw(st.sampled_from([15, 30, 45, 60]))
    scan = _short_scan(zone, day - dt.timedelta(days=1), days=4)
    runs = brute_runs(av, scan, day, dates=[day])
    start = dt.datetime.combine(day - dt.timedelta(days=1), dt.time(), UTC)
    end = start + dt.timedelta(days=3)
    assert windows(av, start, end) == [(scan.instant(a), scan.instant(b)) for a, b in runs]
    now = start - dt.timedelta(days=1)
    every = brute_slots(av, scan, runs, duration=duration, now=now, busy=[], booked={})
    assert free_slots(av, duration=duration * MIN, now=now, start=start, end=end) == every


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(ZONES),
    st.data(),
    st.one_of(st.sampled_from(EDGE_MINUTES), st.integers(0, DAY_MIN)),
)
def test_local_instant_matches_the_scan(zone: str, data: st.DataObject, minutes: int) -> None:
    transitions = transition_days(zone) or (dt.date(2027, 6, 1),)
    day = data.draw(
        st.one_of(st.sampled_from(transitions), st.dates(dt.date(2026, 1, 1), dt.date(2028, 12, 31)))
    )
    scan = _short_scan(zone, day)
    local = dt.datetime.combine(day, dt.time()) + minutes * MIN
    assert local_instant(zone, day, minutes) == scan.instant(scan.first_at_or_after(local))


def _short_scan(zone_name: str, day: dt.date, days: int = 3) -> Scan:
    zone = ZoneInfo(zone_name)
    origin = dt.datetime.combine(day - dt.timedelta(days=1), dt.time(), UTC)
    walls = [(origin + k * MIN).astimezone(zone).replace(tzinfo=None) for k in range(days * DAY_MIN)]
    return Scan(zone, origin, walls, list(itertools.accumulate(walls, max)))


def test_the_drawn_transition_days_are_the_known_ones() -> None:
    # Guards the strategy: 2027's days as listed in test_slots.py.
    assert [d for d in transition_days("America/New_York") if d.year == 2027] == [
        dt.date(2027, 3, 14),
        dt.date(2027, 11, 7),
    ]
    assert [d for d in transition_days("Europe/Berlin") if d.year == 2027] == [
        dt.date(2027, 3, 28),
        dt.date(2027, 10, 31),
    ]
    assert [d for d in transition_days("Australia/Sydney") if d.year == 2027] == [
        dt.date(2027, 4, 4),
        dt.date(2027, 10, 3),
    ]
    assert [d for d in transition_days("Australia/Lord_Howe") if d.year == 2027] == [
        dt.date(2027, 4, 4),
        dt.date(2027, 10, 3),
    ]
    assert transition_days("Asia/Kolkata") == ()
