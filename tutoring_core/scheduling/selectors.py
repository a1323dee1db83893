"""Reads that services, the API and pages share."""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Prefetch, Q, QuerySet

from tutoring_core.accounts.models import GuardianLink, Role, RoleAssignment, Tenant, User
from tutoring_core.classes.models import Class, Enrollment
from tutoring_core.scheduling.data import (
    DateHours,
    ParticipantInfo,
    SessionInfo,
    TutorInfo,
    WeeklyHours,
)
from tutoring_core.scheduling.errors import NotFound
from tutoring_core.scheduling.models import (
    AvailabilityOverride,
    AvailabilityRule,
    SchedulingPolicy,
    Session,
    SessionParticipant,
    TutorProfile,
)
from tutoring_core.scheduling.protocol import slots

UTC = dt.UTC


def policy_for(tenant: Tenant | uuid.UUID) -> SchedulingPolicy:
    """The tenant's policy, or an unsaved one with the defaults."""
    tenant_id = tenant.pk if isinstance(tenant, Tenant) else tenant
    policy = SchedulingPolicy.objects.filter(tenant_id=tenant_id).first()
    return policy or SchedulingPolicy(tenant_id=tenant_id)


def person_in_tenant(*, tenant_id: uuid.UUID | None, person_id: Any, field: str) -> User:
    """The person in that tenant, or NotFound: another tenant's people do not exist here."""
    if tenant_id is None:
        raise NotFound("No such person.", field)
    try:
        return User.objects.get(pk=person_id, tenant_id=tenant_id, is_active=True)
    except (User.DoesNotExist, ValueError, TypeError, ValidationError):
        raise NotFound("No such person.", field) from None


def tutor_profile_of(user: User) -> TutorProfile | None:
    return TutorProfile.objects.filter(user=user).first()


def tutor_profiles(
    *, tenant: Tenant, class_id: uuid.UUID | None = None, subject: str = ""
) -> QuerySet[TutorProfile]:
    """Active tutors of the tenant; with class_id those who serve that class."""
    profiles = TutorProfile.objects.filter(tenant=tenant, is_active=True, user__is_active=True)
    if class_id is not None:
        klass = Class.objects.filter(tenant=tenant, pk=class_id).first()
        if klass is None:
            raise NotFound("No such class.", "class_id")
        serves_all = Q(schools__isnull=True, classes__isnull=True)
        serves = serves_all | Q(classes=klass)
        if klass.school_id:
            serves |= Q(schools=klass.school_id)
        profiles = profiles.filter(serves)
    if subject:
        # JSON lists: compare in Python below would page badly; subjects are few per tutor.
        ids = [p.pk for p in profiles if subject.casefold() in {s.casefold() for s in p.subjects}]
        profiles = TutorProfile.objects.filter(pk__in=ids)
    return profiles.select_related("user").distinct().order_by("user__last_name", "user__first_name", "pk")


def availability_of(profile: TutorProfile) -> slots.Availability:
    return _availability(
        profile,
        tuple(
            slots.WeeklyRule(weekday=r.weekday, start_minute=r.start_minute, end_minute=r.end_minute)
            for r in profile.rules.all()
        ),
        tuple(
            slots.DateOverride(
                date=o.date, start_minute=o.start_minute, end_minute=o.end_minute, unavailable=o.unavailable
            )
            for o in profile.overrides.all()
        ),
    )


def _availability(
    profile: TutorProfile, weekly: tuple[slots.WeeklyRule, ...], overrides: tuple[slots.DateOverride, ...]
) -> slots.Availability:
    return slots.Availability(
        time_zone=profile.time_zone,
        weekly=weekly,
        overrides=overrides,
        buffer_before=dt.timedelta(minutes=profile.buffer_before_min),
        buffer_after=dt.timedelta(minutes=profile.buffer_after_min),
        min_notice=dt.timedelta(minutes=profile.min_notice_min),
        window_days=profile.window_days,
        daily_cap=profile.daily_cap,
    )


def busy_blocks(
    *,
    tutor_id: uuid.UUID,
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
    exclude_id: uuid.UUID | None = None,
) -> list[tuple[dt.datetime, dt.datetime]]:
    """Blocked ranges (session plus buffers) of the tutor's held and booked sessions near [start, end)."""
    rows = Session.objects.blocking(now).filter(
        tutor_id=tutor_id, block_end__gt=_clamped(start), block_start__lt=_clamped(end)
    )
    if exclude_id is not None:
        rows = rows.exclude(pk=exclude_id)
    return [
        (b_start.astimezone(UTC), b_end.astimezone(UTC))
        for b_start, b_end in rows.order_by("block_start").values_list("block_start", "block_end")
    ]


def booked_per_day(
    *,
    tutor_id: uuid.UUID,
    time_zone: str,
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
    exclude_id: uuid.UUID | None = None,
) -> dict[dt.date, int]:
    """Held and booked sessions per tutor-local date, for dates touching [start, end)."""
    zone = zoneinfo.ZoneInfo(time_zone)
    rows = Session.objects.blocking(now).filter(
        tutor_id=tutor_id,
        start__gte=_clamped(start, -dt.timedelta(days=2)),
        start__lt=_clamped(end, dt.timedelta(days=2)),
    )
    if exclude_id is not None:
        rows = rows.exclude(pk=exclude_id)
    return dict(Counter(s.astimezone(zone).date() for s in rows.values_list("start", flat=True)))


# Far-off dates (year 1, year 9999) would overflow the days added either side of a search.
EARLIEST = dt.datetime(1970, 1, 1, tzinfo=UTC)
LATEST = dt.datetime(2200, 1, 1, tzinfo=UTC)


def _clamped(value: dt.datetime, shift: dt.timedelta = dt.timedelta(0)) -> dt.datetime:
    """``value + shift`` kept within [EARLIEST, LATEST], never overflowing."""
    return min(max(min(max(value, EARLIEST), LATEST) + shift, EARLIEST), LATEST)


@dataclass(frozen=True)
class SlotInputs:
    """What the slot engine needs for one tutor, read for many tutors at once."""

    availability: slots.Availability
    busy: list[tuple[dt.datetime, dt.datetime]]
    booked_per_day: dict[dt.date, int]


def slot_inputs(
    *,
    profiles: Sequence[TutorProfile],
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
    margin: dt.timedelta,
) -> dict[uuid.UUID, SlotInputs]:
    """Availability, busy blocks and per-day counts of many tutors (keyed by the tutor's
    person id) in four queries, whatever their number: the same values ``availability_of``,
    ``busy_blocks`` and ``booked_per_day`` give one tutor at a time.

    ``margin`` widens the busy read either side of [start, end) (a slot near the edge blocks
    its buffers and length); a wider one only reads blocks no slot can touch.
    """
    if not profiles:
        return {}
    profile_ids = [p.pk for p in profiles]
    tutor_ids = [p.user_id for p in profiles]
    rules: dict[uuid.UUID, list[slots.WeeklyRule]] = defaultdict(list)
    for tutor_id, weekday, first, last in AvailabilityRule.objects.filter(
        tutor_id__in=profile_ids
    ).values_list("tutor_id", "weekday", "start_minute", "end_minute"):
        rules[tutor_id].append(slots.WeeklyRule(weekday=weekday, start_minute=first, end_minute=last))
    overrides: dict[uuid.UUID, list[slots.DateOverride]] = defaultdict(list)
    # Every override, not only those near the search: an old day off can end a round-the-clock chain.
    for tutor_id, day, opens, closes, off in AvailabilityOverride.objects.filter(
        tutor_id__in=profile_ids
    ).values_list("tutor_id", "date", "start_minute", "end_minute", "unavailable"):
        overrides[tutor_id].append(
            slots.DateOverride(date=day, start_minute=opens, end_minute=closes, unavailable=off)
        )
    blocking = Session.objects.blocking(now).filter(tutor_id__in=tutor_ids)
    busy: dict[uuid.UUID, list[tuple[dt.datetime, dt.datetime]]] = defaultdict(list)
    for tutor_id, b_start, b_end in (
        blocking.filter(block_end__gt=_clamped(start, -margin), block_start__lt=_clamped(end, margin))
        .order_by("block_start")
        .values_list("tutor_id", "block_start", "block_end")
    ):
        busy[tutor_id].append((b_start.astimezone(UTC), b_end.astimezone(UTC)))
    starts: dict[uuid.UUID, list[dt.datetime]] = defaultdict(list)
    for tutor_id, s_start in blocking.filter(
        start__gte=_clamped(start, -dt.timedelta(days=2)), start__lt=_clamped(end, dt.timedelta(days=2))
    ).values_list("tutor_id", "start"):
        starts[tutor_id].append(s_start)
    found = {}
    for profile in profiles:
        # The rules in the order profile.rules.all() gives them (the model's ordering).
        weekly = sorted(rules[profile.pk], key=lambda r: (r.weekday, r.start_minute))
        dated = sorted(overrides[profile.pk], key=lambda o: (o.date, o.start_minute or 0))
        zone = zoneinfo.ZoneInfo(profile.time_zone)
        found[profile.user_id] = SlotInputs(
            availability=_availability(profile, tuple(weekly), tuple(dated)),
            busy=busy[profile.user_id],
            booked_per_day=dict(Counter(s.astimezone(zone).date() for s in starts[profile.user_id])),
        )
    return found


def students_sessions(
    *,
    student_ids: Sequence[uuid.UUID],
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
    exclude_id: uuid.UUID | None = None,
) -> QuerySet[Session]:
    """Held and booked sessions (any tutor) overlapping [start, end) in which one of the
    students has a booked place: the times those students are not free."""
    rows = Session.objects.blocking(now).filter(
        start__lt=_clamped(end),
        end__gt=_clamped(start),
        pk__in=SessionParticipant.objects.filter(
            student_id__in=list(student_ids), status=SessionParticipant.Status.BOOKED
        ).values("session_id"),
    )
    if exclude_id is not None:
        rows = rows.exclude(pk=exclude_id)
    return rows.order_by("start", "id")


def is_student(person: User) -> bool:
    if Enrollment.objects.filter(user=person, role=Role.STUDENT, status=Enrollment.Status.ACTIVE).exists():
        return True
    return RoleAssignment.objects.active().filter(user=person, role=Role.STUDENT).exists()


def student_class_ids(student: User) -> set[uuid.UUID]:
    return set(
        Enrollment.objects.filter(
            user=student, role=Role.STUDENT, status=Enrollment.Status.ACTIVE, klass__is_active=True
        ).values_list("klass_id", flat=True)
    )


def teaches_student(*, teacher: User, student: User, klass: Class | None) -> bool:
    """A teacher of (one of) the student's classes; of that class when one is named."""
    classes = student_class_ids(student)
    if klass is not None:
        classes &= {klass.pk}
    return Enrollment.objects.filter(
        user=teacher, role=Role.TEACHER, status=Enrollment.Status.ACTIVE, klass_id__in=classes
    ).exists()


def is_guardian_of(*, guardian: User, student: User) -> bool:
    return GuardianLink.objects.filter(guardian=guardian, student=student, is_active=True).exists()


def serves(*, profile: TutorProfile, student: User, klass: Class | None) -> bool:
    """Whether the tutor serves the student (in that class, when one is named)."""
    school_ids = set(profile.schools.values_list("pk", flat=True))
    class_ids = set(profile.classes.values_list("pk", flat=True))
    if not school_ids and not class_ids:
        return True
    candidates: Iterable[Class]
    if klass is not None:
        candidates = [klass]
    else:
        candidates = Class.objects.filter(pk__in=student_class_ids(student))
    return any(
        c.pk in class_ids or (c.school_id is not None and c.school_id in school_ids) for c in candidates
    )


def session_in_tenant(*, tenant_id: uuid.UUID | None, session_id: Any, lock: bool = False) -> Session:
    if tenant_id is None:
        raise NotFound("No such session.", "session_id")
    rows = Session.objects.filter(tenant_id=tenant_id)
    if lock:
        rows = rows.select_for_update()
    try:
        return rows.get(pk=session_id)
    except (Session.DoesNotExist, ValueError, TypeError, ValidationError):
        # A malformed id is no id at all.
        raise NotFound("No such session.", "session_id") from None


def _info(session: Session) -> SessionInfo:
    participants = tuple(
        ParticipantInfo(
            person_id=p.student_id,
            name=p.student.full_name,
            email=p.student.email,
            status=p.status,
            outcome=p.outcome,
        )
        for p in session.participants.all()
    )
    return SessionInfo(
        id=session.pk,
        tenant_id=session.tenant_id,
        tutor_id=session.tutor_id,
        tutor_name=session.tutor.full_name,
        tutor_email=session.tutor.email,
        start=session.start.astimezone(UTC),
        end=session.end.astimezone(UTC),
        status=session.status,
        subject=session.subject,
        class_id=session.klass_id,
        class_title=session.klass.title if session.klass else "",
        time_zone=session.time_zone,
        sequence=session.sequence,
        participants=participants,
        cancelled=session.status == Session.Status.CANCELLED,
        updated_at=session.updated_at,
        capacity=session.capacity,
        series_id=session.series_id,
        outcome=session.outcome,
        hold_expires_at=session.hold_expires_at,
    )


def _with_related(rows: QuerySet[Session]) -> QuerySet[Session]:
    return rows.select_related("tutor", "klass").prefetch_related(
        # Participants in a stable order, their people with them.
        _participants_prefetch()
    )


def _participants_prefetch() -> Prefetch:
    return Prefetch(
        "participants",
        queryset=SessionParticipant.objects.select_related("student").order_by("created_at", "id"),
    )


def session_info(session_id: uuid.UUID) -> SessionInfo:
    session = _with_related(Session.objects.filter(pk=session_id)).first()
    if session is None:
        raise NotFound("No such session.", "session_id")
    return _info(session)


def session_claim_unsettled(*, ended_before: dt.datetime, skip: Iterable[uuid.UUID] = ()) -> uuid.UUID | None:
    """The earliest booked session (no outcome recorded: nobody ended its room or set how it
    went) that ended before ``ended_before``, locked for the caller's transaction; a session
    another worker holds is skipped, not waited for. Reads by session_status_start."""
    row = (
        Session.objects.select_for_update(skip_locked=True)
        .filter(status=Session.Status.BOOKED, start__lt=ended_before, end__lt=ended_before)
        .exclude(pk__in=list(skip))
        .order_by("start", "id")
        .values_list("pk", flat=True)
        .first()
    )
    return row


def sessions_info(rows: QuerySet[Session]) -> list[SessionInfo]:
    return [_info(s) for s in _with_related(rows).order_by("start", "id")]


def sessions_for_person(
    person_id: uuid.UUID, start: dt.datetime, end: dt.datetime, *, include_expired: bool = False
) -> list[SessionInfo]:
    """Sessions overlapping [start, end) that the person teaches, attends, or a ward of theirs attends.

    Cancelled sessions are included (calendars show them cancelled); expired holds are not.
    """
    person = User.objects.filter(pk=person_id).only("pk", "tenant_id").first()
    if person is None or person.tenant_id is None:
        return []
    wards = GuardianLink.objects.filter(guardian_id=person_id, is_active=True).values("student_id")
    rows = Session.objects.filter(tenant_id=person.tenant_id, start__lt=end, end__gt=start).filter(
        Q(tutor_id=person_id) | Q(participants__student_id=person_id) | Q(participants__student_id__in=wards)
    )
    if not include_expired:
        rows = rows.exclude(status=Session.Status.EXPIRED)
    return sessions_info(Session.objects.filter(pk__in=rows.values("pk")))


def sessions_starting_between(start: dt.datetime, end: dt.datetime) -> list[SessionInfo]:
    """Booked sessions (all tenants) whose UTC start is in [start, end): what reminders look at."""
    return sessions_info(
        Session.objects.filter(status=Session.Status.BOOKED, start__gte=start, start__lt=end)
    )


def tutor_info(profile: TutorProfile) -> TutorInfo:
    return TutorInfo(
        person_id=profile.user_id,
        tenant_id=profile.tenant_id,
        name=profile.user.full_name,
        email=profile.user.email,
        subjects=tuple(profile.subjects),
        grade_levels=tuple(profile.grade_levels),
        languages=tuple(profile.languages),
        bio=profile.bio,
        time_zone=profile.time_zone,
        session_lengths=tuple(profile.session_lengths),
        school_ids=tuple(sorted(profile.schools.values_list("pk", flat=True))),
        class_ids=tuple(sorted(profile.classes.values_list("pk", flat=True))),
        is_active=profile.is_active,
        buffer_before_min=profile.buffer_before_min,
        buffer_after_min=profile.buffer_after_min,
        min_notice_min=profile.min_notice_min,
        window_days=profile.window_days,
        daily_cap=profile.daily_cap,
        weekly=tuple(WeeklyHours(r.weekday, r.start_minute, r.end_minute) for r in profile.rules.all()),
        overrides=tuple(
            DateHours(o.date, o.start_minute, o.end_minute, o.unavailable) for o in profile.overrides.all()
        ),
    )


# --- added by helper "notify" (messaging): a minimal read the contract's SessionInfo lacks ---
def session_booker_ids(session_id: uuid.UUID) -> set[uuid.UUID]:
    """Who booked the session or a place in it (its creator and each participant's booker)."""
    bookers = set(
        SessionParticipant.objects.filter(session_id=session_id, booked_by__isnull=False).values_list(
            "booked_by_id", flat=True
        )
    )
    created_by = Session.objects.filter(pk=session_id).values_list("created_by_id", flat=True).first()
    if created_by is not None:
        bookers.add(created_by)
    return bookers


def session_place_booker_ids(session_id: uuid.UUID, *, student_id: uuid.UUID) -> set[uuid.UUID]:
    """Who booked that student's place in the session (for the notice of their leaving)."""
    return set(
        SessionParticipant.objects.filter(
            session_id=session_id, student_id=student_id, booked_by__isnull=False
        ).values_list("booked_by_id", flat=True)
    )


# --- added by helper "notify" (messaging): how far ahead reminders must look ---
def reminder_offsets_max() -> int:
    """The largest reminder offset (minutes) of any tenant's policy, or of the default."""
    largest = max(_default_reminder_offsets_for_notify())
    for offsets in SchedulingPolicy.objects.values_list("reminder_offsets_min", flat=True):
        for offset in offsets or ():
            if isinstance(offset, int) and offset > largest:
                largest = offset
    return largest


def _default_reminder_offsets_for_notify() -> list[int]:
    return list(SchedulingPolicy._meta.get_field("reminder_offsets_min").get_default())
