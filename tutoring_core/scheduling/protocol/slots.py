"""The slot engine: a tutor's weekly hours and date overrides, kept in their wall-clock time,
turned into availability windows and bookable slots in UTC (issue 12). No Django.

Semantics (shared by the API and the pages):

- A rule ``start``-``end`` on a local date covers the instants from the first instant whose local
  time is at or after ``start`` to the first instant whose local time is at or after ``end``;
  ``end_minute`` 1440 is the first instant of the next local date. A local time that does not
  exist (a spring-forward gap) starts at the first one that does, the transition itself; an
  ambiguous one (a fall-back fold) is its earlier instant. So a window over a gap is shorter in
  real time and one over a fold longer.
- Windows that touch (or overlap) merge, also across local midnight (an overnight rule is two
  rules). Slots start at a window's first instant and every ``duration`` of real time after it and
  end by the window's end. A slot's block ``[start - buffer_before, end + buffer_after)`` must not
  overlap a busy block; ``start >= now + min_notice``; ``end <= now + window_days``; a local date
  (of the slot's start, in the tutor's zone) whose booked count reached ``daily_cap`` offers none.
- Every datetime handed out is aware UTC; lists are in time order.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "Availability",
    "DateOverride",
    "SlotError",
    "WeeklyRule",
    "first_instant_at_or_after",
    "free_slots",
    "is_bookable",
    "local_instant",
    "nearest_free",
    "windows",
]

UTC = dt.UTC
DAY_MINUTES = 1440
MAX_WINDOW_DAYS = 730
ONE_DAY = dt.timedelta(days=1)
# A chain of windows touching at every midnight as far back as the rules and overrides go (a tutor
# available around the clock) has no first instant for its slots to start from. Its slots count
# from local midnight at the start of this Monday instead, so every query sees the same slot grid.
CHAIN_EPOCH = dt.date(2000, 1, 3)
_NO_BOOKINGS: Mapping[dt.date, int] = MappingProxyType({})

Span = tuple[dt.datetime, dt.datetime]


class SlotError(ValueError):
    """A value the engine cannot work with (a naive datetime, an unknown zone, a rule out of range)."""


def _check_minutes(start_minute: int, end_minute: int) -> None:
    if not 0 <= start_minute < end_minute <= DAY_MINUTES:
        raise SlotError(
            f"Hours must satisfy 0 <= start < end <= {DAY_MINUTES} minutes (got {start_minute}-{end_minute})."
        )


@dataclass(frozen=True)
class WeeklyRule:
    weekday: int  # 0 = Monday .. 6 = Sunday
    start_minute: int
    end_minute: int  # 1440 = the next local midnight

    def __post_init__(self) -> None:
        if not 0 <= self.weekday <= 6:
            raise SlotError(f"A weekday is 0 (Monday) to 6 (Sunday), not {self.weekday}.")
        _check_minutes(self.start_minute, self.end_minute)


@dataclass(frozen=True)
class DateOverride:
    """Hours on one local date; any override on a date replaces that date's weekly rules."""

    date: dt.date
    start_minute: int | None
    end_minute: int | None
    unavailable: bool = False

    def __post_init__(self) -> None:
        if self.unavailable:
            return
        if self.start_minute is None or self.end_minute is None:
            raise SlotError(f"The override on {self.date} needs a start and an end, or unavailable.")
        _check_minutes(self.start_minute, self.end_minute)


@dataclass(frozen=True)
class Availability:
    time_zone: str
    weekly: tuple[WeeklyRule, ...]
    overrides: tuple[DateOverride, ...] = ()
    buffer_before: dt.timedelta = dt.timedelta(0)
    buffer_after: dt.timedelta = dt.timedelta(0)
    min_notice: dt.timedelta = dt.timedelta(0)
    window_days: int = 90
    daily_cap: int | None = None

    def __post_init__(self) -> None:
        _zone(self.time_zone)
        for name in ("buffer_before", "buffer_after", "min_notice"):
            if getattr(self, name) < dt.timedelta(0):
                raise SlotError(f"{name} must not be negative.")
        if not 1 <= self.window_days <= MAX_WINDOW_DAYS:
            raise SlotError(f"window_days must be 1 to {MAX_WINDOW_DAYS}, not {self.window_days}.")
        if self.daily_cap is not None and self.daily_cap < 0:
            raise SlotError("daily_cap must not be negative.")


# --- local time to instants ----------------------------------------------------------------------


@functools.lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise SlotError(f"Unknown time zone {name!r}.") from exc


def _wall(instant: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """The naive local wall-clock time of an instant (comparisons of naive datetimes ignore fold)."""
    return instant.astimezone(zone).replace(tzinfo=None)


def first_instant_at_or_after(zone: ZoneInfo, local: dt.datetime) -> dt.datetime:
    """The first instant (aware UTC) whose wall-clock time in ``zone`` is at or after naive ``local``.

    Candidates come from the zone's own offsets around ``local`` (PEP 495: fold=0 and fold=1 use the
    offsets before and after a transition) and each is checked by converting it back, so no naive
    arithmetic decides anything. A time that exists once or twice (a fold) gives its earliest
    instant; a time in a gap gives the transition instant, found by bisecting whole seconds between
    the two candidates, which bracket exactly one transition.
    """
    candidates = [local.replace(tzinfo=zone, fold=fold).astimezone(UTC) for fold in (0, 1)]
    exact = [instant for instant in candidates if _wall(instant, zone) == local]
    if exact:
        return min(exact)
    low, high = sorted(candidates)
    # low's wall time is before ``local`` (still the old offset), high's after (the new one).
    if not (
        _wall(low, zone) < local <= _wall(high, zone)
    ):  # pragma: no cover - a zone PEP 495 cannot describe
        raise SlotError(f"Cannot place {local} in {zone.key}.")
    low_s, high_s = int(low.timestamp()), int(high.timestamp())
    while high_s - low_s > 1:
        mid = (low_s + high_s) // 2
        if _wall(dt.datetime.fromtimestamp(mid, UTC), zone) >= local:
            high_s = mid
        else:
            low_s = mid
    return dt.datetime.fromtimestamp(high_s, UTC)


@functools.lru_cache(maxsize=1 << 16)
def local_instant(time_zone: str, day: dt.date, minute: int) -> dt.datetime:
    """The first instant (aware UTC) at or after ``minute`` minutes into local ``day`` (1440 = next midnight)."""
    if minute == DAY_MINUTES:
        day, minute = day + ONE_DAY, 0
    local = dt.datetime.combine(day, dt.time(minute // 60, minute % 60))
    return first_instant_at_or_after(_zone(time_zone), local)


def _aware(value: dt.datetime, name: str) -> dt.datetime:
    if value.tzinfo is UTC:
        return value
    if value.tzinfo is None or value.utcoffset() is None:
        raise SlotError(f"{name} must be an aware datetime.")
    return value.astimezone(UTC)


def _merge(spans: list[Span]) -> list[Span]:
    spans.sort()
    merged: list[Span] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


# --- a tutor's calendar --------------------------------------------------------------------------


class _Calendar:
    """One availability's windows, day by day, cached for the length of one call."""

    def __init__(self, av: Availability) -> None:
        self.av = av
        self.zone_name = av.time_zone
        self.zone = _zone(av.time_zone)
        weekly: list[list[tuple[int, int]]] = [[] for _ in range(7)]
        for rule in av.weekly:
            weekly[rule.weekday].append((rule.start_minute, rule.end_minute))
        self.weekly = [sorted(hours) for hours in weekly]
        overrides: dict[dt.date, list[tuple[int, int]]] = {}
        off: set[dt.date] = set()
        for override in av.overrides:
            hours = overrides.setdefault(override.date, [])
            if override.unavailable:
                off.add(override.date)
            elif override.start_minute is not None and override.end_minute is not None:
                hours.append((override.start_minute, override.end_minute))
        # Contract: any override on a date replaces its weekly rules; a day off means no hours at all.
        self.overrides = {day: [] if day in off else sorted(hours) for day, hours in overrides.items()}
        self.earliest_override = min(self.overrides, default=None)
        self._days: dict[dt.date, list[Span]] = {}

    def hours(self, day: dt.date) -> list[tuple[int, int]]:
        found = self.overrides.get(day)
        return found if found is not None else self.weekly[day.weekday()]

    def midnight(self, day: dt.date) -> dt.datetime:
        return local_instant(self.zone_name, day, 0)

    def day_windows(self, day: dt.date) -> list[Span]:
        cached = self._days.get(day)
        if cached is None:
            spans = [
                (local_instant(self.zone_name, day, start), local_instant(self.zone_name, day, end))
                for start, end in self.hours(day)
            ]
            # Hours wholly inside a spring-forward gap cover no instant.
            cached = self._days[day] = _merge([span for span in spans if span[0] < span[1]])
        return cached

    def local_date(self, instant: dt.datetime) -> dt.date:
        return instant.astimezone(self.zone).date()

    def windows(self, first: dt.date, last: dt.date) -> list[Span]:
        """Merged windows of local dates ``first``..``last``, the first one followed back to its start."""
        day = first
        bound = min(first, self.earliest_override or first) - 8 * ONE_DAY
        endless = False
        while True:
            spans = self.day_windows(day)
            # The chain reaches back across ``day``'s midnight only if its window starts there; past
            # the first day it runs on only through days that are one window from midnight to midnight.
            if not spans or spans[0][0] != self.midnight(day) or (day != first and len(spans) > 1):
                break
            before = self.day_windows(day - ONE_DAY)
            if not before or before[-1][1] != spans[0][0]:
                break
            day -= ONE_DAY
            if day < bound:
                # Eight whole days in a row before any override: every weekday is whole, forever.
                endless = True
                break
        spans = []
        current = day
        while current <= last:
            spans.extend(self.day_windows(current))
            current += ONE_DAY
        merged = _merge(spans)
        if endless and merged:
            merged[0] = (min(merged[0][0], self.midnight(CHAIN_EPOCH)), merged[0][1])
        return merged


class _Busy:
    """Busy blocks merged and sorted, for an O(log n) overlap test per slot."""

    def __init__(self, busy: Sequence[Span]) -> None:
        merged = _merge([(_aware(start, "busy start"), _aware(end, "busy end")) for start, end in busy])
        self.starts = [start for start, _ in merged]
        self.ends = [end for _, end in merged]

    def overlaps(self, start: dt.datetime, end: dt.datetime) -> bool:
        # The first block ending after ``start``; it overlaps [start, end) if it begins before ``end``.
        index = bisect.bisect_right(self.ends, start)
        return index < len(self.starts) and self.starts[index] < end


def _slots(
    cal: _Calendar,
    *,
    duration: dt.timedelta,
    now: dt.datetime,
    start: dt.datetime,
    end: dt.datetime,
    busy: _Busy,
    booked_per_day: Mapping[dt.date, int],
) -> list[Span]:
    """Free slots whose start lies in [start, end)."""
    av = cal.av
    earliest = max(start, now + av.min_notice)
    latest_end = now + av.window_days * ONE_DAY
    if earliest >= end or earliest + duration > latest_end:
        return []
    last_end = min(end + duration, latest_end)
    # One local day beyond the last slot's end, so no window that matters is cut short.
    windows = cal.windows(cal.local_date(earliest), cal.local_date(last_end) + ONE_DAY)
    cap = av.daily_cap
    found: list[Span] = []
    for window_start, window_end in windows:
        if window_start >= end:
            break
        stop = min(window_end, latest_end)
        step = 0 if earliest <= window_start else -((window_start - earliest) // duration)
        slot_start = window_start + step * duration
        while slot_start < end:
            slot_end = slot_start + duration
            if slot_end > stop:
                break
            if (cap is None or booked_per_day.get(cal.local_date(slot_start), 0) < cap) and not busy.overlaps(
                slot_start - av.buffer_before, slot_end + av.buffer_after
            ):
                found.append((slot_start, slot_end))
            slot_start = slot_end
    return found


def _check_duration(duration: dt.timedelta) -> None:
    if duration <= dt.timedelta(0):
        raise SlotError("A session lasts longer than zero minutes.")


# --- the contract --------------------------------------------------------------------------------


def windows(av: Availability, start: dt.datetime, end: dt.datetime) -> list[Span]:
    """Availability windows (aware UTC) that intersect [start, end), in order, merged where they touch.

    A window running on past the local day after ``end`` is cut there.
    """
    start, end = _aware(start, "start"), _aware(end, "end")
    if end <= start:
        return []
    cal = _Calendar(av)
    spans = cal.windows(cal.local_date(start), cal.local_date(end) + ONE_DAY)
    return [(w_start, w_end) for w_start, w_end in spans if w_end > start and w_start < end]


def free_slots(
    av: Availability,
    *,
    duration: dt.timedelta,
    now: dt.datetime,
    start: dt.datetime,
    end: dt.datetime,
    busy: Sequence[Span] = (),
    booked_per_day: Mapping[dt.date, int] = _NO_BOOKINGS,
) -> list[Span]:
    """Free slots (aware UTC, ordered) of ``duration`` whose start lies in [start, end)."""
    _check_duration(duration)
    return _slots(
        _Calendar(av),
        duration=duration,
        now=_aware(now, "now"),
        start=_aware(start, "start"),
        end=_aware(end, "end"),
        busy=_Busy(busy),
        booked_per_day=booked_per_day,
    )


def is_bookable(
    av: Availability,
    *,
    slot_start: dt.datetime,
    duration: dt.timedelta,
    now: dt.datetime,
    busy: Sequence[Span] = (),
    booked_per_day: Mapping[dt.date, int] = _NO_BOOKINGS,
) -> bool:
    """Whether [slot_start, slot_start + duration) is one of the free slots (the same rules, one slot)."""
    _check_duration(duration)
    slot_start = _aware(slot_start, "slot_start")
    found = _slots(
        _Calendar(av),
        duration=duration,
        now=_aware(now, "now"),
        start=slot_start,
        end=slot_start + dt.timedelta(microseconds=1),
        busy=_Busy(busy),
        booked_per_day=booked_per_day,
    )
    return bool(found) and found[0][0] == slot_start


def nearest_free(
    av: Availability,
    *,
    around: dt.datetime,
    duration: dt.timedelta,
    now: dt.datetime,
    busy: Sequence[Span] = (),
    booked_per_day: Mapping[dt.date, int] = _NO_BOOKINGS,
    limit: int = 5,
) -> list[Span]:
    """Up to ``limit`` free slots nearest ``around`` (by distance of their start, then time).

    Searches outwards from ``around`` in doubling radii, across the whole booking window at most.
    """
    _check_duration(duration)
    around, now = _aware(around, "around"), _aware(now, "now")
    if limit <= 0:
        return []
    cal = _Calendar(av)
    blocks = _Busy(busy)
    lowest = now + av.min_notice
    highest = now + av.window_days * ONE_DAY
    radius = ONE_DAY
    while True:
        low, high = max(lowest, around - radius), min(highest, around + radius)
        found = (
            _slots(
                cal,
                duration=duration,
                now=now,
                start=low,
                end=high,
                busy=blocks,
                booked_per_day=booked_per_day,
            )
            if low < high
            else []
        )
        found.sort(key=lambda slot: (abs(slot[0] - around), slot[0]))
        # Any slot not yet seen starts at least ``radius`` away from ``around``.
        if (low <= lowest and high >= highest) or (
            len(found) >= limit and abs(found[limit - 1][0] - around) < radius
        ):
            return sorted(found[:limit], key=lambda slot: (abs(slot[0] - around), slot[0]))
        radius *= 2
