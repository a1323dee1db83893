"""JSON API: tutors, availability, free slots and bookings (issue 12 point 7).

Mounted by config/api.py. Each operation finds its ids in the caller's tenant (another
district's ids answer 404), calls the one scheduling service the pages call, and turns
the service's SchedulingError into ``{"error", "field"}`` with its HTTP status. No
booking rule lives here.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Callable
from typing import Annotated, Any

from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from ninja import Body, Header, Query, Router, Schema
from ninja.responses import Status
from pydantic import AfterValidator, Field, model_validator

from tutoring_core.accounts.models import User
from tutoring_core.accounts.selectors import is_district_admin
from tutoring_core.apiauth.auth import request_person
from tutoring_core.apiauth.schemas import ErrorOut, errors, utc_text
from tutoring_core.apiauth.services import Answer, idempotency_key_problem, idempotent
from tutoring_core.classes.models import Class
from tutoring_core.scheduling import api as scheduling
from tutoring_core.scheduling import selectors
from tutoring_core.scheduling.data import SessionInfo, TutorInfo
from tutoring_core.scheduling.errors import InvalidInput, NotAllowed, NotFound, SchedulingError, SlotTaken
from tutoring_core.scheduling.models import TutorProfile

router = Router(tags=["scheduling"])

MAX_DURATION_MIN = 8 * 60
MAX_LIST_DAYS = 366
HHMM = re.compile(r"^(?:[01]\d|2[0-3]):[0-5]\d$|^24:00$")
IDEMPOTENCY_HEADER = "Idempotency-Key"


# --- shapes -----------------------------------------------------------------------------------

EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(2200, 1, 1, tzinfo=dt.UTC)


def _instant(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("Give the time with its UTC offset (for example 2027-01-04T15:00:00Z).")
    # Far-off years would overflow date arithmetic (a slot search runs days either side).
    if not EARLIEST <= value < LATEST:
        raise ValueError("Give a time between the years 1970 and 2199.")
    return value.astimezone(dt.UTC)


Instant = Annotated[dt.datetime, AfterValidator(_instant)]


class SlotOut(Schema):
    start: str = Field(description="UTC, ISO 8601 with Z.", examples=["2027-01-04T14:00:00Z"])
    end: str = Field(description="UTC, ISO 8601 with Z.", examples=["2027-01-04T15:00:00Z"])


class SlotsOut(Schema):
    slots: list[SlotOut]


class ConflictOut(Schema):
    error: str
    field: str | None = None
    alternatives: list[SlotOut] = Field(description="The nearest free slots of the same length.")


class WeeklyOut(Schema):
    weekday: int
    start: str
    end: str


class OverrideOut(Schema):
    date: dt.date
    start: str | None = None
    end: str | None = None
    unavailable: bool = False


class TutorOut(Schema):
    person_id: uuid.UUID
    name: str
    subjects: list[str]
    grade_levels: list[str]
    languages: list[str]
    bio: str
    time_zone: str
    session_lengths: list[int]
    school_ids: list[uuid.UUID]
    class_ids: list[uuid.UUID]
    is_active: bool


class TutorDetailOut(TutorOut):
    buffer_before_min: int
    buffer_after_min: int
    min_notice_min: int
    window_days: int
    daily_cap: int | None
    weekly: list[WeeklyOut]
    overrides: list[OverrideOut]


class TutorsPage(Schema):
    count: int
    limit: int
    offset: int
    items: list[TutorOut]


class ParticipantOut(Schema):
    person_id: uuid.UUID
    name: str
    status: str
    outcome: str


class SessionOut(Schema):
    id: uuid.UUID
    status: str = Field(description="held, booked, cancelled, completed or expired")
    tutor: uuid.UUID
    tutor_name: str
    start: str = Field(description="UTC, ISO 8601 with Z.")
    end: str = Field(description="UTC, ISO 8601 with Z.")
    duration: int = Field(description="Minutes.")
    time_zone: str = Field(description="The tutor's IANA time zone when booked.")
    subject: str
    class_id: uuid.UUID | None
    capacity: int
    participants: list[ParticipantOut]
    outcome: str
    sequence: int


class SessionsOut(Schema):
    bookings: list[SessionOut]


class TutorIn(Schema):
    """Fields not sent keep their value (a new tutor gets the defaults)."""

    subjects: list[str] | None = Field(None, max_length=100)
    grade_levels: list[str] | None = Field(None, max_length=100)
    languages: list[str] | None = Field(None, max_length=100)
    bio: str | None = Field(None, max_length=5000)
    time_zone: str | None = Field(None, max_length=64, examples=["America/Chicago"])
    session_lengths: list[int] | None = Field(None, min_length=1, max_length=50, description="Minutes.")
    school_ids: list[uuid.UUID] | None = Field(None, max_length=1000)
    class_ids: list[uuid.UUID] | None = Field(None, max_length=1000)
    is_active: bool | None = None
    buffer_before_min: int | None = Field(None, ge=0, le=1440)
    buffer_after_min: int | None = Field(None, ge=0, le=1440)
    min_notice_min: int | None = Field(None, ge=0, le=60 * 24 * 365)
    window_days: int | None = Field(None, ge=1, le=730)
    daily_cap: int | None = Field(None, ge=1, le=1000)
    cancel_notice_hours: int | None = Field(None, ge=0, le=24 * 60)
    reschedule_notice_hours: int | None = Field(None, ge=0, le=24 * 60)

    @model_validator(mode="after")
    def _not_null(self) -> TutorIn:
        # null means "no cap" for the caps; for the others it is no value at all.
        nullable = {"daily_cap", "cancel_notice_hours", "reschedule_notice_hours"}
        for name in self.model_fields_set - nullable:
            if getattr(self, name) is None:
                raise ValueError(f"{name} may not be null; leave it out to keep its value.")
        return self


def _minutes(text: str | None, field: str, *, end: bool) -> int | None:
    if text is None:
        return None
    if not HHMM.match(text) or (text == "24:00" and not end):
        raise ValueError(f"{field} must be a time HH:MM (00:00 to 23:59{', or 24:00' if end else ''}).")
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


class WeeklyIn(Schema):
    weekday: int = Field(ge=0, le=6, description="0 = Monday ... 6 = Sunday.")
    start: str = Field(pattern=r"^(?:[01]\d|2[0-3]):[0-5]\d$", examples=["09:00"])
    end: str = Field(
        pattern=r"^(?:(?:[01]\d|2[0-3]):[0-5]\d|24:00)$", examples=["12:00"], description="24:00 = midnight."
    )


class OverrideIn(Schema):
    date: dt.date
    start: str | None = Field(None, pattern=r"^(?:[01]\d|2[0-3]):[0-5]\d$")
    end: str | None = Field(None, pattern=r"^(?:(?:[01]\d|2[0-3]):[0-5]\d|24:00)$")
    unavailable: bool = False


class AvailabilityIn(Schema):
    time_zone: str = Field(max_length=64, examples=["Australia/Lord_Howe"])
    weekly: list[WeeklyIn] = Field(max_length=500)
    overrides: list[OverrideIn] = Field(default_factory=list, max_length=2000)
    buffer_before_min: int = Field(0, ge=0, le=1440)
    buffer_after_min: int = Field(0, ge=0, le=1440)
    min_notice_min: int = Field(0, ge=0, le=60 * 24 * 365)
    window_days: int = Field(90, ge=1, le=730)
    daily_cap: int | None = Field(None, ge=1, le=1000)


class SlotsQuery(Schema):
    start: Instant = Field(description="ISO 8601 with a UTC offset.")
    end: Instant = Field(description="ISO 8601 with a UTC offset.")
    duration: int = Field(ge=1, le=MAX_DURATION_MIN, description="Minutes.")


class BookingIn(Schema):
    tutor: uuid.UUID
    student: uuid.UUID
    start: Instant = Field(description="ISO 8601 with a UTC offset.")
    duration: int = Field(ge=1, le=MAX_DURATION_MIN, description="Minutes.")
    class_id: uuid.UUID | None = None
    subject: str = Field("", max_length=200)
    capacity: int = Field(
        1,
        ge=1,
        le=500,
        description="Places. More than 1 makes a group session; others join with POST /bookings/{id}/join.",
    )


class SeriesIn(Schema):
    tutor: uuid.UUID
    student: uuid.UUID
    start: Instant = Field(description="The first occurrence, ISO 8601 with a UTC offset.")
    duration: int = Field(ge=1, le=MAX_DURATION_MIN, description="Minutes.")
    rrule: str = Field(
        max_length=500,
        description=(
            "An RFC 5545 RRULE without DTSTART, in the tutor's wall-clock time: FREQ DAILY, WEEKLY or "
            "MONTHLY; COUNT or UNTIL; optional INTERVAL, BYDAY, BYMONTHDAY."
        ),
        examples=["FREQ=WEEKLY;COUNT=10"],
    )
    class_id: uuid.UUID | None = None
    subject: str = Field("", max_length=200)


class OccurrenceOut(Schema):
    start: str = Field(description="UTC, ISO 8601 with Z.")
    end: str = Field(description="UTC, ISO 8601 with Z.")
    status: str = Field(description="booked, conflict (the time is taken) or refused (a booking rule).")
    session_id: uuid.UUID | None = None
    reason: str = ""
    alternatives: list[SlotOut] = Field(description="For a conflict: the nearest free slots.")


class SeriesOut(Schema):
    series_id: uuid.UUID
    booked: int
    occurrences: list[OccurrenceOut]


class JoinIn(Schema):
    student: uuid.UUID


class OutcomeIn(Schema):
    outcome: str = Field(description="attended, no_show or tutor_no_show.", examples=["attended"])
    student: uuid.UUID | None = Field(None, description="In a group session: one student's outcome.")


class BookingsQuery(Schema):
    person: uuid.UUID | None = Field(None, description="Whose sessions (default: the caller's).")
    start: Instant | None = Field(None, description="Default: now.")
    end: Instant | None = Field(None, description="Default: 90 days after start.")


class CancelIn(Schema):
    reason: str = Field("", max_length=500)
    student: uuid.UUID | None = Field(None, description="In a group session: whose place to give up.")


class RescheduleIn(Schema):
    start: Instant = Field(description="ISO 8601 with a UTC offset.")
    duration: int | None = Field(None, ge=1, le=MAX_DURATION_MIN, description="Minutes; default: unchanged.")


# --- helpers ---------------------------------------------------------------------------------


def scheduling_error_body(exc: SchedulingError) -> dict[str, Any]:
    body: dict[str, Any] = {"error": exc.reason, "field": exc.field}
    if isinstance(exc, SlotTaken):
        body["alternatives"] = [{"start": utc_text(s), "end": utc_text(e)} for s, e in exc.alternatives]
    return body


def _hhmm(minute: int | None) -> str | None:
    return None if minute is None else f"{minute // 60:02d}:{minute % 60:02d}"


def _person(actor: User, person_id: Any, field: str) -> User:
    return selectors.person_in_tenant(tenant_id=actor.tenant_id, person_id=person_id, field=field)


def _tutor(actor: User, person_id: uuid.UUID) -> User:
    person = _person(actor, person_id, "person_id")
    profile = selectors.tutor_profile_of(person)
    if profile is None or not profile.is_active:
        raise NotFound("This person is not an active tutor.", "person_id")
    return person


def _tutor_body(profile: TutorProfile) -> dict[str, Any]:
    return {
        "person_id": profile.user_id,
        "name": profile.user.full_name or profile.user.username,
        "subjects": list(profile.subjects),
        "grade_levels": list(profile.grade_levels),
        "languages": list(profile.languages),
        "bio": profile.bio,
        "time_zone": profile.time_zone,
        "session_lengths": list(profile.session_lengths),
        "school_ids": sorted(school.pk for school in profile.schools.all()),
        "class_ids": sorted(klass.pk for klass in profile.classes.all()),
        "is_active": profile.is_active,
    }


def _tutor_detail(info: TutorInfo) -> dict[str, Any]:
    return {
        "person_id": info.person_id,
        "name": info.name,
        "subjects": list(info.subjects),
        "grade_levels": list(info.grade_levels),
        "languages": list(info.languages),
        "bio": info.bio,
        "time_zone": info.time_zone,
        "session_lengths": list(info.session_lengths),
        "school_ids": list(info.school_ids),
        "class_ids": list(info.class_ids),
        "is_active": info.is_active,
        "buffer_before_min": info.buffer_before_min,
        "buffer_after_min": info.buffer_after_min,
        "min_notice_min": info.min_notice_min,
        "window_days": info.window_days,
        "daily_cap": info.daily_cap,
        "weekly": [
            {"weekday": w.weekday, "start": _hhmm(w.start_minute), "end": _hhmm(w.end_minute)}
            for w in sorted(info.weekly, key=lambda w: (w.weekday, w.start_minute))
        ],
        "overrides": [
            {
                "date": o.date,
                "start": _hhmm(o.start_minute),
                "end": _hhmm(o.end_minute),
                "unavailable": o.unavailable,
            }
            for o in sorted(info.overrides, key=lambda o: (o.date, o.start_minute or 0))
        ],
    }


def session_body(info: SessionInfo) -> dict[str, Any]:
    """A session as the API shows it; plain JSON values (the idempotency record stores it)."""
    return {
        "id": str(info.id),
        "status": info.status,
        "tutor": str(info.tutor_id),
        "tutor_name": info.tutor_name,
        "start": utc_text(info.start),
        "end": utc_text(info.end),
        "duration": int((info.end - info.start).total_seconds() // 60),
        "time_zone": info.time_zone,
        "subject": info.subject,
        "class_id": str(info.class_id) if info.class_id else None,
        "capacity": info.capacity,
        "participants": [
            {"person_id": str(p.person_id), "name": p.name, "status": p.status, "outcome": p.outcome}
            for p in info.participants
        ],
        "outcome": info.outcome,
        "sequence": info.sequence,
    }


def _respond(response: HttpResponse, answer: Answer) -> Status:
    if answer.replayed:
        response["Idempotent-Replayed"] = "true"
    return Status(answer.status_code, answer.body)


def _once(
    request: HttpRequest, actor: User, key: str | None, body: Any, work: Callable[[], Answer]
) -> Answer:
    """Run ``work`` under the request's Idempotency-Key (if any); service refusals become answers."""
    if key is not None:
        problem = idempotency_key_problem(key)
        if problem:
            return Answer(400, {"error": problem, "field": IDEMPOTENCY_HEADER})

    def run() -> Answer:
        try:
            # A savepoint: a refusal after a failed write leaves the record's transaction usable.
            with transaction.atomic():
                return work()
        except SchedulingError as exc:
            return Answer(exc.http_status, scheduling_error_body(exc))

    return idempotent(
        person=actor, key=key, method=request.method or "POST", path=request.path, body=body, run=run
    )


def _class_in_tenant(actor: User, class_id: uuid.UUID | None) -> Class | None:
    if class_id is None:
        return None
    klass = Class.objects.filter(tenant=actor.tenant, pk=class_id).first()
    if klass is None:
        raise NotFound("No such class.", "class_id")
    return klass


CANCEL_BODY = Body(None, description="Optional; no body is the same as {}.")
IDEMPOTENCY_DOC = (
    "Optional. A unique value (a UUID) per intended change: a retry with the same key and body "
    "gets the first answer again (with the header Idempotent-Replayed: true) and changes nothing."
)


# --- tutors ----------------------------------------------------------------------------------


@router.get("/tutors", response={200: TutorsPage, **errors(404)}, url_name="api_tutors_list")
def tutors_list(
    request: HttpRequest,
    class_id: uuid.UUID | None = None,
    subject: str = Query("", max_length=100),  # type: ignore[type-arg]
    limit: int = Query(50, ge=1, le=500),  # type: ignore[type-arg]
    offset: int = Query(0, ge=0, le=10_000_000),  # type: ignore[type-arg]
) -> dict[str, Any]:
    """Active tutors of the district; with class_id, those who serve that class."""
    actor = request_person(request)
    profiles = selectors.tutor_profiles(tenant=actor.tenant, class_id=class_id, subject=subject.strip())  # type: ignore[arg-type]
    count = profiles.count()
    page = profiles.prefetch_related("schools", "classes")[offset : offset + limit]
    return {"count": count, "limit": limit, "offset": offset, "items": [_tutor_body(p) for p in page]}


@router.put(
    "/tutors/{person_id}", response={200: TutorDetailOut, **errors(403, 404)}, url_name="api_tutor_put"
)
def tutor_put(request: HttpRequest, person_id: uuid.UUID, payload: TutorIn) -> dict[str, Any]:
    """Make a person a tutor, or change their tutor profile (district admins)."""
    actor = request_person(request)
    person = _person(actor, person_id, "person_id")
    return _tutor_detail(
        scheduling.tutor_profile_set(actor=actor, person=person, **payload.model_dump(exclude_unset=True))
    )


@router.get("/tutors/{person_id}", response={200: TutorDetailOut, **errors(404)}, url_name="api_tutor_get")
def tutor_get(request: HttpRequest, person_id: uuid.UUID) -> dict[str, Any]:
    """A tutor's profile, availability and booking limits."""
    actor = request_person(request)
    return _tutor_detail(scheduling.tutor_info(_tutor(actor, person_id).pk))


@router.put(
    "/tutors/{person_id}/availability",
    response={200: TutorDetailOut, **errors(403, 404)},
    url_name="api_availability_put",
)
def availability_put(request: HttpRequest, person_id: uuid.UUID, payload: AvailabilityIn) -> dict[str, Any]:
    """Replace the tutor's weekly hours, date overrides and booking limits (the tutor or a district admin).

    Times are the tutor's local wall-clock time in ``time_zone``; weekday 0 is Monday; an
    override with ``unavailable: true`` is a day off, one with hours replaces that date's weekly hours.
    """
    actor = request_person(request)
    tutor = _person(actor, person_id, "person_id")
    weekly = [
        {
            "weekday": rule.weekday,
            "start_minute": _field_minutes(rule.start, f"weekly[{index}].start", end=False),
            "end_minute": _field_minutes(rule.end, f"weekly[{index}].end", end=True),
        }
        for index, rule in enumerate(payload.weekly)
    ]
    overrides = [
        {
            "date": item.date,
            "start_minute": _field_minutes(item.start, f"overrides[{index}].start", end=False),
            "end_minute": _field_minutes(item.end, f"overrides[{index}].end", end=True),
            "unavailable": item.unavailable,
        }
        for index, item in enumerate(payload.overrides)
    ]
    scheduling.availability_set(
        actor=actor,
        tutor=tutor,
        time_zone=payload.time_zone,
        weekly=weekly,
        overrides=overrides,
        buffer_before_min=payload.buffer_before_min,
        buffer_after_min=payload.buffer_after_min,
        min_notice_min=payload.min_notice_min,
        window_days=payload.window_days,
        daily_cap=payload.daily_cap,
    )
    return _tutor_detail(scheduling.tutor_info(tutor.pk))


def _field_minutes(text: str | None, field: str, *, end: bool) -> int | None:
    try:
        return _minutes(text, field, end=end)
    except ValueError as exc:
        raise InvalidInput(str(exc), field) from None


@router.get("/tutors/{person_id}/slots", response={200: SlotsOut, **errors(404)}, url_name="api_tutor_slots")
def tutor_slots(request: HttpRequest, person_id: uuid.UUID, query: Query[SlotsQuery]) -> dict[str, Any]:
    """Free slots of ``duration`` minutes starting in [start, end), in UTC, in order."""
    actor = request_person(request)
    tutor = _tutor(actor, person_id)
    found = scheduling.slots_for(tutor=tutor, start=query.start, end=query.end, duration_min=query.duration)
    return {"slots": [{"start": utc_text(start), "end": utc_text(end)} for start, end in found]}


# --- bookings --------------------------------------------------------------------------------


@router.post(
    "/bookings",
    response={201: SessionOut, 409: ConflictOut, **errors(403, 404, 422)},
    url_name="api_bookings_create",
)
def booking_create(
    request: HttpRequest,
    payload: BookingIn,
    response: HttpResponse,
    idempotency_key: str | None = Header(None, alias=IDEMPOTENCY_HEADER, description=IDEMPOTENCY_DOC),  # type: ignore[type-arg]
) -> Status:
    """Book a session of the tutor for the student: 201 with the session, or 409 with the nearest free slots."""
    actor = request_person(request)

    def work() -> Answer:
        tutor = _person(actor, payload.tutor, "tutor")
        student = _person(actor, payload.student, "student")
        klass = _class_in_tenant(actor, payload.class_id)
        session = scheduling.booking_create(
            actor=actor,
            tutor=tutor,
            student=student,
            start=payload.start,
            duration_min=payload.duration,
            klass=klass,
            subject=payload.subject,
            capacity=payload.capacity,
        )
        return Answer(201, session_body(session))

    return _respond(response, _once(request, actor, idempotency_key, payload.model_dump(mode="json"), work))


@router.get("/bookings", response={200: SessionsOut, **errors(403, 404)}, url_name="api_bookings_list")
def bookings_list(request: HttpRequest, query: Query[BookingsQuery]) -> dict[str, Any]:
    """Sessions overlapping [start, end) that the person tutors, attends, or a ward of theirs attends.

    The caller may ask for themselves, a ward, a student in a class they teach, or (as a
    district admin) anyone in the district.
    """
    actor = request_person(request)
    person = actor if query.person is None else _person(actor, query.person, "person")
    if person.pk != actor.pk and not (
        is_district_admin(actor)
        or selectors.is_guardian_of(guardian=actor, student=person)
        or selectors.teaches_student(teacher=actor, student=person, klass=None)
    ):
        raise NotAllowed(
            "You may list your own sessions, your wards', your students' or (as a district admin) anyone's.",
            "person",
        )
    start = query.start or timezone.now()
    end = query.end or start + dt.timedelta(days=90)
    if end <= start:
        raise InvalidInput("The end must be after the start.", "end")
    if end - start > dt.timedelta(days=MAX_LIST_DAYS):
        raise InvalidInput(f"Ask for at most {MAX_LIST_DAYS} days at a time.", "end")
    return {
        "bookings": [session_body(info) for info in scheduling.sessions_for_person(person.pk, start, end)]
    }


@router.post(
    "/bookings/{session_id}/cancel",
    response={200: SessionOut, **errors(403, 404, 422)},
    url_name="api_booking_cancel",
)
def booking_cancel(
    request: HttpRequest,
    session_id: uuid.UUID,
    response: HttpResponse,
    payload: CancelIn | None = CANCEL_BODY,
    idempotency_key: str | None = Header(None, alias=IDEMPOTENCY_HEADER, description=IDEMPOTENCY_DOC),  # type: ignore[type-arg]
) -> Status:
    """Cancel a session (or, with ``student``, one place in a group session). Cancelling twice changes nothing."""
    actor = request_person(request)
    # ninja reads an optional body field by field, so it would take [1, 2] for "no body".
    if request.body.strip() and not isinstance(json.loads(request.body), dict | None):
        raise InvalidInput("Send a JSON object as the request body, or no body.", "body")
    payload = payload or CancelIn.model_validate({})

    def work() -> Answer:
        student = None if payload.student is None else _person(actor, payload.student, "student")
        session = scheduling.booking_cancel(
            actor=actor, session_id=session_id, reason=payload.reason, student=student
        )
        return Answer(200, session_body(session))

    return _respond(response, _once(request, actor, idempotency_key, payload.model_dump(mode="json"), work))


@router.post(
    "/bookings/{session_id}/reschedule",
    response={200: SessionOut, 409: ConflictOut, **errors(403, 404, 422)},
    url_name="api_booking_reschedule",
)
def booking_reschedule(
    request: HttpRequest,
    session_id: uuid.UUID,
    payload: RescheduleIn,
    response: HttpResponse,
    idempotency_key: str | None = Header(None, alias=IDEMPOTENCY_HEADER, description=IDEMPOTENCY_DOC),  # type: ignore[type-arg]
) -> Status:
    """Move a booked session to another free time of the same tutor; 409 with alternatives if taken."""
    actor = request_person(request)

    def work() -> Answer:
        session = scheduling.booking_reschedule(
            actor=actor, session_id=session_id, start=payload.start, duration_min=payload.duration
        )
        return Answer(200, session_body(session))

    return _respond(response, _once(request, actor, idempotency_key, payload.model_dump(mode="json"), work))


@router.post(
    "/bookings/{session_id}/join",
    response={200: SessionOut, 409: ConflictOut, **errors(403, 404, 422)},
    url_name="api_booking_join",
)
def booking_join(
    request: HttpRequest,
    session_id: uuid.UUID,
    payload: JoinIn,
    response: HttpResponse,
    idempotency_key: str | None = Header(None, alias=IDEMPOTENCY_HEADER, description=IDEMPOTENCY_DOC),  # type: ignore[type-arg]
) -> Status:
    """Give a student a place in a group session with room left (whoever may book for them).

    Joining twice changes nothing; 409 when the student has another session then.
    """
    actor = request_person(request)

    def work() -> Answer:
        student = _person(actor, payload.student, "student")
        session = scheduling.group_join(actor=actor, session_id=session_id, student=student)
        return Answer(200, session_body(session))

    return _respond(response, _once(request, actor, idempotency_key, payload.model_dump(mode="json"), work))


@router.post(
    "/bookings/{session_id}/outcome",
    response={200: SessionOut, **errors(403, 404, 422)},
    url_name="api_booking_outcome",
)
def booking_outcome(
    request: HttpRequest,
    session_id: uuid.UUID,
    payload: OutcomeIn,
    response: HttpResponse,
    idempotency_key: str | None = Header(None, alias=IDEMPOTENCY_HEADER, description=IDEMPOTENCY_DOC),  # type: ignore[type-arg]
) -> Status:
    """Record how a session that has started went (the tutor or a district admin); the session is completed."""
    actor = request_person(request)

    def work() -> Answer:
        student = None if payload.student is None else _person(actor, payload.student, "student")
        session = scheduling.session_outcome_set(
            actor=actor, session_id=session_id, outcome=payload.outcome, student=student
        )
        return Answer(200, session_body(session))

    return _respond(response, _once(request, actor, idempotency_key, payload.model_dump(mode="json"), work))


@router.post(
    "/series",
    response={201: SeriesOut, **errors(403, 404, 422)},
    url_name="api_series_create",
)
def series_create(
    request: HttpRequest,
    payload: SeriesIn,
    response: HttpResponse,
    idempotency_key: str | None = Header(None, alias=IDEMPOTENCY_HEADER, description=IDEMPOTENCY_DOC),  # type: ignore[type-arg]
) -> Status:
    """Book a recurring series: each occurrence is its own session, checked like a one-off booking.

    201 with every occurrence: booked (with its session id), conflict (with the nearest
    free slots) or refused (with the rule it breaks). A refusal of the whole request (who
    may book, a bad RRULE) is a 4xx and books nothing.
    """
    actor = request_person(request)

    def work() -> Answer:
        tutor = _person(actor, payload.tutor, "tutor")
        student = _person(actor, payload.student, "student")
        klass = _class_in_tenant(actor, payload.class_id)
        result = scheduling.series_create(
            actor=actor,
            tutor=tutor,
            student=student,
            start=payload.start,
            duration_min=payload.duration,
            rrule=payload.rrule,
            klass=klass,
            subject=payload.subject,
        )
        return Answer(
            201,
            {
                "series_id": str(result.series_id),
                "booked": len(result.booked),
                "occurrences": [
                    {
                        "start": utc_text(o.start),
                        "end": utc_text(o.end),
                        "status": o.status,
                        "session_id": str(o.session_id) if o.session_id else None,
                        "reason": o.reason,
                        "alternatives": [
                            {"start": utc_text(s), "end": utc_text(e)} for s, e in o.alternatives
                        ],
                    }
                    for o in result.occurrences
                ],
            },
        )

    return _respond(response, _once(request, actor, idempotency_key, payload.model_dump(mode="json"), work))


__all__ = ["ErrorOut", "router", "scheduling_error_body", "session_body"]
