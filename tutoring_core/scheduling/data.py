"""Values the scheduling door hands to other apps (frozen; no model instances)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class ParticipantInfo:
    person_id: uuid.UUID
    name: str
    email: str
    status: str  # "booked" | "cancelled"
    outcome: str = ""


@dataclass(frozen=True)
class SessionInfo:
    id: uuid.UUID
    tenant_id: uuid.UUID
    tutor_id: uuid.UUID
    tutor_name: str
    tutor_email: str
    start: dt.datetime  # aware UTC
    end: dt.datetime
    status: str  # "held" | "booked" | "cancelled" | "completed" | "expired"
    subject: str
    class_id: uuid.UUID | None
    class_title: str
    time_zone: str  # the tutor's zone when booked
    sequence: int
    participants: tuple[ParticipantInfo, ...]
    cancelled: bool
    updated_at: dt.datetime
    capacity: int = 1
    series_id: uuid.UUID | None = None
    outcome: str = ""
    hold_expires_at: dt.datetime | None = None


@dataclass(frozen=True)
class OccurrenceResult:
    """One occurrence of a series: booked, or why not."""

    start: dt.datetime
    end: dt.datetime
    status: str  # "booked" | "conflict" | "refused"
    session_id: uuid.UUID | None = None
    reason: str = ""
    alternatives: tuple[tuple[dt.datetime, dt.datetime], ...] = ()


@dataclass(frozen=True)
class SeriesResult:
    series_id: uuid.UUID
    occurrences: tuple[OccurrenceResult, ...]

    @property
    def booked(self) -> tuple[OccurrenceResult, ...]:
        return tuple(o for o in self.occurrences if o.status == "booked")

    @property
    def conflicts(self) -> tuple[OccurrenceResult, ...]:
        return tuple(o for o in self.occurrences if o.status != "booked")


@dataclass(frozen=True)
class WeeklyHours:
    weekday: int  # 0 = Monday
    start_minute: int
    end_minute: int  # 1440 = the next local midnight


@dataclass(frozen=True)
class DateHours:
    date: dt.date
    start_minute: int | None
    end_minute: int | None
    unavailable: bool = False


@dataclass(frozen=True)
class TutorInfo:
    person_id: uuid.UUID
    tenant_id: uuid.UUID
    name: str
    email: str
    subjects: tuple[str, ...]
    grade_levels: tuple[str, ...]
    languages: tuple[str, ...]
    bio: str
    time_zone: str
    session_lengths: tuple[int, ...]
    school_ids: tuple[uuid.UUID, ...]
    class_ids: tuple[uuid.UUID, ...]
    is_active: bool
    buffer_before_min: int
    buffer_after_min: int
    min_notice_min: int
    window_days: int
    daily_cap: int | None
    weekly: tuple[WeeklyHours, ...] = ()
    overrides: tuple[DateHours, ...] = ()


@dataclass(frozen=True)
class TutorSlots:
    """One tutor's free slots in a class-wide search (``api.class_slots``)."""

    person_id: uuid.UUID
    name: str
    time_zone: str
    duration_min: int
    slots: tuple[tuple[dt.datetime, dt.datetime], ...]  # aware UTC, in order
