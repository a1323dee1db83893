"""Attendance outcome from join/leave spans (issue 15): attended, late, left early, no-show."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

ATTENDED = "attended"
LATE = "late"
LEFT_EARLY = "left_early"
NO_SHOW = "no_show"
OUTCOMES = (ATTENDED, LATE, LEFT_EARLY, NO_SHOW)


def attendance_outcome(
    *,
    spans: Iterable[tuple[dt.datetime, dt.datetime | None]],
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
    late_after: dt.timedelta,
    early_before: dt.timedelta,
) -> str:
    """One person's outcome from their (joined, left) spans; an open span counts up to ``now``.

    Late: first joined more than ``late_after`` after the start. Left early: last left more
    than ``early_before`` before the end. Late wins over left early (the first fault is the one
    a tutor asks about); a person never seen is a no-show."""
    closed = [(joined, left if left is not None else now) for joined, left in spans]
    if not closed:
        return NO_SHOW
    first = min(joined for joined, _ in closed)
    last = max(left for _, left in closed)
    if first > start + late_after:
        return LATE
    if last < end - early_before:
        return LEFT_EARLY
    return ATTENDED


@dataclass(frozen=True)
class Figures:
    """What progress records of one person's attendance (whole minutes, rounded down)."""

    outcome: str
    first_joined_at: dt.datetime | None
    last_left_at: dt.datetime | None
    minutes_present: int  # inside the session's scheduled time, overlapping stays counted once
    late_minutes: int  # first join after the start
    left_early_minutes: int  # last leave before the end


def attendance_figures(
    *,
    spans: Iterable[tuple[dt.datetime, dt.datetime | None]],
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
    late_after: dt.timedelta,
    early_before: dt.timedelta,
) -> Figures:
    """The outcome with its figures. Two tabs or a reconnect overlap: the stays are merged
    before counting, so nobody is present for more than the session's length."""
    closed = sorted((joined, left if left is not None else now) for joined, left in spans)
    outcome = attendance_outcome(
        spans=closed, start=start, end=end, now=now, late_after=late_after, early_before=early_before
    )
    if not closed:
        return Figures(outcome, None, None, 0, 0, 0)
    present = dt.timedelta()
    cursor = start
    for joined, left in closed:
        lower, upper = max(joined, cursor, start), min(left, end)
        if upper > lower:
            present += upper - lower
            cursor = upper
    first = closed[0][0]
    last = max(left for _, left in closed)
    return Figures(
        outcome=outcome,
        first_joined_at=first,
        last_left_at=last,
        minutes_present=int(present.total_seconds() // 60),
        late_minutes=int(max(first - start, dt.timedelta()).total_seconds() // 60),
        left_early_minutes=int(max(end - last, dt.timedelta()).total_seconds() // 60),
    )
