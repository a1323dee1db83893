"""The door other apps use for tutors, availability and tutoring sessions (issue 12).

Writes raise the errors in ``errors`` (each with ``reason``, ``field`` and
``http_status``); reads hand out ``data`` values, never model instances.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from tutoring_core.accounts.models import User
from tutoring_core.classes.models import Class
from tutoring_core.scheduling import selectors, services
from tutoring_core.scheduling.data import (
    DateHours,
    OccurrenceResult,
    ParticipantInfo,
    SeriesResult,
    SessionInfo,
    TutorInfo,
    TutorSlots,
    WeeklyHours,
)
from tutoring_core.scheduling.errors import (
    BookingRefused,
    InvalidInput,
    NotAllowed,
    NotFound,
    SchedulingError,
    SlotTaken,
    StudentBusy,
)
from tutoring_core.scheduling.models import TutorProfile
from tutoring_core.scheduling.services import (
    availability_set,
    may_book,
    series_create,
    slots_for,
)

__all__ = [
    "BookingRefused",
    "DateHours",
    "InvalidInput",
    "NotAllowed",
    "NotFound",
    "OccurrenceResult",
    "ParticipantInfo",
    "SchedulingError",
    "SeriesResult",
    "SessionInfo",
    "SlotTaken",
    "StudentBusy",
    "TutorInfo",
    "TutorSlots",
    "WeeklyHours",
    "availability_set",
    "booking_cancel",
    "booking_confirm",
    "booking_create",
    "booking_reschedule",
    "class_slots",
    "group_join",
    "may_book",
    "series_create",
    "session_claim_unsettled",
    "session_info",
    "session_outcome_set",
    "sessions_for_person",
    "sessions_starting_between",
    "slots_for",
    "tutor_info",
    "tutor_profile_set",
    "tutors_for_class",
]


# --- Writes: each hands back the session (or tutor) as it stands afterwards ---------------


def booking_create(
    *,
    actor: User,
    tutor: User,
    student: User,
    start: dt.datetime,
    duration_min: int,
    klass: Class | None = None,
    subject: str = "",
    hold: bool = False,
    capacity: int = 1,
) -> SessionInfo:
    """Book (or, with ``hold``, hold) a session of ``tutor`` for ``student``; SlotTaken,
    StudentBusy, BookingRefused, NotAllowed or InvalidInput when it cannot be."""
    session = services.booking_create(
        actor=actor,
        tutor=tutor,
        student=student,
        start=start,
        duration_min=duration_min,
        klass=klass,
        subject=subject,
        hold=hold,
        capacity=capacity,
    )
    return selectors.session_info(session.pk)


def booking_confirm(*, actor: User, session_id: Any) -> SessionInfo:
    """A hold becomes a booking, if it has not expired (confirming twice changes nothing)."""
    return selectors.session_info(services.booking_confirm(actor=actor, session_id=session_id).pk)


def booking_cancel(
    *, actor: User, session_id: Any, reason: str = "", student: User | None = None
) -> SessionInfo:
    """Cancel a session, or (``student``) one place in a group session; cancelling twice
    changes nothing. The notice policy decides whether it is a late cancel or refused."""
    session = services.booking_cancel(actor=actor, session_id=session_id, reason=reason, student=student)
    return selectors.session_info(session.pk)


def booking_reschedule(
    *, actor: User, session_id: Any, start: dt.datetime, duration_min: int | None = None
) -> SessionInfo:
    """Move a booked session to another free time of the same tutor."""
    session = services.booking_reschedule(
        actor=actor, session_id=session_id, start=start, duration_min=duration_min
    )
    return selectors.session_info(session.pk)


def group_join(*, actor: User, session_id: Any, student: User) -> SessionInfo:
    """Give a student a place in a group session with room left (joining twice changes nothing)."""
    return selectors.session_info(services.group_join(actor=actor, session_id=session_id, student=student).pk)


def session_outcome_set(
    *,
    actor: User,
    session_id: Any,
    outcome: str,
    student: User | None = None,
    record_attendance: bool = True,
) -> SessionInfo:
    """Record how a session that has started went; the session is completed.
    ``record_attendance``: also write progress's attendance record as the tutor's
    correction (the video room, which records its own figures, says False)."""
    session = services.session_outcome_set(
        actor=actor,
        session_id=session_id,
        outcome=outcome,
        student=student,
        record_attendance=record_attendance,
    )
    return selectors.session_info(session.pk)


def tutor_profile_set(*, actor: User, person: User, **fields: Any) -> TutorInfo:
    """Make a person a tutor (or change their profile); district admins only. Fields not
    given keep their value."""
    services.tutor_profile_set(actor=actor, person=person, **fields)
    return tutor_info(person.pk)


def session_info(session_id: uuid.UUID) -> SessionInfo:
    """One session with its tutor and participants (any tenant: callers scope by tenant_id)."""
    return selectors.session_info(session_id)


def session_claim_unsettled(*, ended_before: dt.datetime, skip: list[uuid.UUID]) -> uuid.UUID | None:
    """Inside the caller's transaction: the earliest booked session that ended before
    ``ended_before`` with no outcome recorded, locked (one another worker holds is skipped);
    None when there is none left. For the attendance sweep of rooms nobody ended."""
    return selectors.session_claim_unsettled(ended_before=ended_before, skip=skip)


def sessions_for_person(person_id: uuid.UUID, start: dt.datetime, end: dt.datetime) -> list[SessionInfo]:
    """Sessions overlapping [start, end) that the person teaches, attends, or a ward of theirs attends."""
    return selectors.sessions_for_person(person_id, start, end)


def sessions_starting_between(start: dt.datetime, end: dt.datetime) -> list[SessionInfo]:
    """Booked sessions whose UTC start lies in [start, end) (for reminders)."""
    return selectors.sessions_starting_between(start, end)


def tutor_info(person_id: uuid.UUID) -> TutorInfo:
    """The tutor's profile and availability; NotFound when the person is not a tutor."""
    profile = TutorProfile.objects.select_related("user").filter(user_id=person_id).first()
    if profile is None:
        raise NotFound("This person is not a tutor.", "person_id")
    return selectors.tutor_info(profile)


def tutors_for_class(*, tenant_id: uuid.UUID, class_id: uuid.UUID) -> list[TutorInfo]:
    """Active tutors who serve the class (listed for it, its school, or the whole district),
    by name; [] for a class not in that tenant. For the LMS "Tutor's page" placements."""
    from tutoring_core.accounts.models import Tenant

    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is None:
        return []
    try:
        profiles = selectors.tutor_profiles(tenant=tenant, class_id=class_id)
    except NotFound:
        return []
    return [selectors.tutor_info(profile) for profile in profiles]


def class_slots(
    *,
    tenant_id: uuid.UUID,
    class_id: uuid.UUID,
    start: dt.datetime,
    end: dt.datetime,
    duration_min: int | None = None,
    now: dt.datetime | None = None,
) -> list[TutorSlots]:
    """Free slots of every active tutor serving the class, by name, read in a constant
    number of queries; each tutor's of ``duration_min`` minutes when offered, else of their
    first length. NotFound for a class not in that tenant; InvalidInput for bad times."""
    from tutoring_core.classes.models import Class
    from tutoring_core.scheduling import services

    klass = Class.objects.filter(tenant_id=tenant_id, pk=class_id).first()
    if klass is None:
        raise NotFound("No such class.", "class_id")
    return [
        TutorSlots(
            person_id=profile.user_id,
            name=profile.user.full_name,
            time_zone=profile.time_zone,
            duration_min=minutes,
            slots=tuple(found),
        )
        for profile, minutes, found in services.class_slots(
            klass=klass, start=start, end=end, duration_min=duration_min, now=now
        )
    ]
