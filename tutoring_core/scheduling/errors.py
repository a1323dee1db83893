"""Errors the scheduling door raises, each with a reason a person can act on.

``http_status`` is what the JSON API answers with; ``field`` names the input at fault
(None when the request as a whole is refused).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence


class SchedulingError(Exception):
    http_status = 400

    def __init__(self, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


class InvalidInput(SchedulingError):
    """A value that cannot be used (an unknown time zone, a rule that ends before it starts)."""

    http_status = 400


class BookingRefused(SchedulingError):
    """The request is understood and refused: outside availability, too late to cancel..."""

    http_status = 400


class NotAllowed(BookingRefused):
    """The person acting may not do this (they may not book for that student...)."""

    http_status = 403


class NotFound(SchedulingError):
    """No such row in the actor's tenant (other tenants' rows look like nothing at all)."""

    http_status = 404


class SlotTaken(SchedulingError):
    """The time is no longer free; ``alternatives`` are the nearest free slots (aware UTC)."""

    http_status = 409

    def __init__(
        self,
        reason: str = "That time is no longer free.",
        field: str | None = "start",
        *,
        alternatives: Sequence[tuple[dt.datetime, dt.datetime]] = (),
    ) -> None:
        super().__init__(reason, field)
        self.alternatives = list(alternatives)
        # "check": seen before writing; "constraint": the database refused the write
        # (another transaction took the time first; PostgreSQL's exclusion constraint).
        self.decided_by = "check"


class StudentBusy(SlotTaken):
    """The tutor is free but the student is not: they have another session (with any tutor,
    one-to-one or in a group) overlapping that time. ``alternatives`` are the tutor's nearest
    free slots that the student is free at too; ``conflict_id`` is the other session's id."""

    def __init__(
        self,
        reason: str,
        field: str | None = "student",
        *,
        alternatives: Sequence[tuple[dt.datetime, dt.datetime]] = (),
        conflict_id: object = None,
    ) -> None:
        super().__init__(reason, field, alternatives=alternatives)
        self.conflict_id = conflict_id
