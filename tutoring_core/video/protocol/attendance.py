"""Attendance outcome from join/leave spans (issue 15): attended, late, left early, no-show."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

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
