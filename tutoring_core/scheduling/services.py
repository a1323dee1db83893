"""Writes: tutor profiles, availability, and bookings that never double-book (issue 12).

The guarantee lives in the database. On PostgreSQL the exclusion constraint
``session_no_double_booking`` refuses a second held/booked session whose blocked range
(session plus buffers) overlaps one of the same tutor's; the insert runs in a savepoint
so the IntegrityError becomes SlotTaken and the caller's transaction lives on. On SQLite
every write transaction begins IMMEDIATE (settings), so booking transactions run one at
a time and the overlap check inside the transaction is enough.

A student is never in two sessions at once either (any tutors, groups included): the
booking transaction locks the students' rows (PostgreSQL; SQLite's write is serialised)
and then looks for their other held or booked sessions, answering StudentBusy (409).
The student's own session times are what may not overlap, not the tutors' buffers:
a buffer is the tutor's time (preparing, writing notes), so a student may go straight
from one tutor's session to another's that starts when the first ends.
"""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo
from collections.abc import Mapping, Sequence
from itertools import islice, pairwise
from typing import Any

from dateutil.rrule import rrulestr
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from tutoring_core.accounts.api import audit_record, is_district_admin, role_assign
from tutoring_core.accounts.models import Role, User
from tutoring_core.classes.models import Class, School
from tutoring_core.payments import api as payments_api
from tutoring_core.progress import api as progress_api
from tutoring_core.rows import save_changed
from tutoring_core.scheduling import selectors
from tutoring_core.scheduling.data import OccurrenceResult, SeriesResult
from tutoring_core.scheduling.errors import (
    BookingRefused,
    InvalidInput,
    NotAllowed,
    NotFound,
    SchedulingError,
    SlotTaken,
    StudentBusy,
)
from tutoring_core.scheduling.models import (
    AvailabilityOverride,
    AvailabilityRule,
    SchedulingPolicy,
    Series,
    Session,
    SessionParticipant,
    TutorProfile,
)
from tutoring_core.scheduling.protocol import slots

UTC = dt.UTC
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MAX_SESSION_MIN = 8 * 60
MAX_SLOT_SEARCH_DAYS = 731
# Dates near year 1 or 9999 would overflow the arithmetic around them (days either side).
FIRST_DATE = dt.date(1970, 1, 1)
LAST_DATE = dt.date(2199, 12, 31)
DATE_RANGE_REASON = f"Give a date between {FIRST_DATE} and {LAST_DATE}."

# Who may book (issue 12): the reasons a person reads when they may not.
REFUSED_WHO = (
    "You may book only for yourself, for a student in a class you teach, for a child you are "
    "the guardian of, or (as a district admin) for any student of the district."
)
REFUSED_STUDENTS = "Your district does not let students book sessions themselves; ask a teacher or guardian."
REFUSED_TEACHERS = "Your district does not let teachers book sessions for students."
REFUSED_GUARDIANS = "Your district does not let guardians book sessions."
REFUSED_NOT_STUDENT = "This person is not a student."
REFUSED_NOT_TUTOR = "This person is not an active tutor."
REFUSED_NOT_SERVED = "This tutor does not serve this student's school or class."
REFUSED_NOT_IN_CLASS = "The student is not enrolled in this class."

PROFILE_FIELDS = {
    "subjects",
    "grade_levels",
    "languages",
    "bio",
    "time_zone",
    "session_lengths",
    "school_ids",
    "class_ids",
    "is_active",
    "buffer_before_min",
    "buffer_after_min",
    "min_notice_min",
    "window_days",
    "daily_cap",
    "cancel_notice_hours",
    "reschedule_notice_hours",
}


# --- small checks -------------------------------------------------------------------


def _aware_utc(value: dt.datetime, field: str) -> dt.datetime:
    if not isinstance(value, dt.datetime):
        raise InvalidInput("Give a date and time.", field)
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput("Give the time with its UTC offset (for example 2027-01-04T15:00:00Z).", field)
    try:
        value = value.astimezone(UTC)
    except OverflowError:  # year 1 with a positive offset has no UTC instant
        raise InvalidInput("Give a time between the years 1970 and 2199.", field) from None
    # Far-off years would overflow the date arithmetic around a search (days either side).
    if not selectors.EARLIEST <= value < selectors.LATEST:
        raise InvalidInput("Give a time between the years 1970 and 2199.", field)
    return value


def _check_zone(name: Any, field: str = "time_zone") -> str:
    if not isinstance(name, str) or not name:
        raise InvalidInput("Give an IANA time zone (for example America/Chicago).", field)
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"{name!r} is not an IANA time zone (for example America/Chicago).", field
        ) from None
    if name not in zoneinfo.available_timezones():
        raise InvalidInput(f"{name!r} is not an IANA time zone (for example America/Chicago).", field)
    return name


def _int(value: Any, field: str, *, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput("Give a whole number.", field)
    if value < low or (high is not None and value > high):
        bounds = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise InvalidInput(f"Give a number {bounds}.", field)
    return value


def _str_list(value: Any, field: str) -> list[str]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise InvalidInput("Give a list of text values.", field)
    cleaned = [v.strip() for v in value if v.strip()]
    if any(len(v) > 100 for v in cleaned):
        raise InvalidInput("Each value may be at most 100 characters.", field)
    return list(dict.fromkeys(cleaned))


def _same_tenant(actor: User, person: User, field: str) -> None:
    if actor.tenant_id is None or person.tenant_id != actor.tenant_id:
        raise NotFound("No such person.", field)


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _notify(session: Session, change: str, actor: User, *, person_id: uuid.UUID | None = None) -> None:
    # Imported here: messaging reads sessions through scheduling.api, so a module-level
    # import would be circular. It writes its outbox rows in this transaction.
    from tutoring_core.messaging import api as messaging_api

    if change in ("cancelled", "left"):
        from tutoring_core.video import api as video_api  # video reads sessions through scheduling.api

        video_api.session_cancelled(session_id=session.pk, person_id=person_id)  # a live room closes
    if person_id is None:
        messaging_api.session_changed(session_id=session.pk, change=change, actor_id=actor.pk)
    else:  # "joined"/"left": one student's place; the change concerns their side and the tutor
        messaging_api.session_changed(
            session_id=session.pk, change=change, actor_id=actor.pk, person_id=person_id
        )


def _policy(tenant_id: uuid.UUID) -> SchedulingPolicy:
    return selectors.policy_for(tenant_id)


def _active_profile(tutor: User) -> TutorProfile:
    profile = selectors.tutor_profile_of(tutor)
    if profile is None or not profile.is_active or not tutor.is_active:
        raise BookingRefused(REFUSED_NOT_TUTOR, "tutor")
    return profile


# --- tutor profiles and availability ---------------------------------------------------


@transaction.atomic
def tutor_profile_set(*, actor: User, person: User, **fields: Any) -> TutorProfile:
    """Make a person a tutor (or change their profile). District admins only.

    Fields not given keep their value. Also grants the tenant-wide tutor role.
    """
    _same_tenant(actor, person, "person_id")
    if not is_district_admin(actor):
        raise NotAllowed("Only a district admin may make a person a tutor.", "person_id")
    unknown = sorted(set(fields) - PROFILE_FIELDS)
    if unknown:
        raise InvalidInput(f"Unknown field {unknown[0]!r}.", unknown[0])
    values: dict[str, Any] = {}
    for name in ("subjects", "grade_levels", "languages"):
        if name in fields:
            values[name] = _str_list(fields[name], name)
    if "bio" in fields:
        if not isinstance(fields["bio"], str) or len(fields["bio"]) > 5000:
            raise InvalidInput("Give the bio as text of at most 5000 characters.", "bio")
        values["bio"] = fields["bio"]
    if "time_zone" in fields:
        values["time_zone"] = _check_zone(fields["time_zone"])
    if "session_lengths" in fields:
        lengths = fields["session_lengths"]
        if not isinstance(lengths, list | tuple) or not lengths:
            raise InvalidInput("Give at least one session length in minutes.", "session_lengths")
        values["session_lengths"] = sorted(
            {_int(v, "session_lengths", low=5, high=MAX_SESSION_MIN) for v in lengths}
        )
    if "is_active" in fields:
        if not isinstance(fields["is_active"], bool):
            raise InvalidInput("Give true or false.", "is_active")
        values["is_active"] = fields["is_active"]
    for name, low, high in (
        ("buffer_before_min", 0, 1440),
        ("buffer_after_min", 0, 1440),
        ("min_notice_min", 0, 60 * 24 * 365),
        ("window_days", 1, 730),
    ):
        if name in fields:
            values[name] = _int(fields[name], name, low=low, high=high)
    for name, low, high in (
        ("daily_cap", 1, 1000),
        ("cancel_notice_hours", 0, 24 * 60),
        ("reschedule_notice_hours", 0, 24 * 60),
    ):
        if name in fields:
            values[name] = None if fields[name] is None else _int(fields[name], name, low=low, high=high)
    schools = classes = None
    if "school_ids" in fields:
        schools = _rows_in_tenant(School, fields["school_ids"], actor.tenant_id, "school_ids")
    if "class_ids" in fields:
        classes = _rows_in_tenant(Class, fields["class_ids"], actor.tenant_id, "class_ids")

    tenant = person.tenant
    if tenant is None:
        raise NotFound("No such person.", "person_id")
    profile, created = TutorProfile.objects.select_for_update().get_or_create(
        user=person, defaults={"tenant": tenant, "time_zone": person.time_zone, **values}
    )
    if not created:
        save_changed(profile, values)  # only the columns that changed; none: no query
    if schools is not None:
        profile.schools.set(schools)
    if classes is not None:
        profile.classes.set(classes)
    role_assign(tenant=tenant, user=person, role=Role.TUTOR)
    audit_record(
        tenant=tenant,
        actor=actor,
        action="scheduling.tutor.create" if created else "scheduling.tutor.update",
        target=profile,
        details={"fields": sorted(fields)},
    )
    return profile


def _rows_in_tenant(model: Any, ids: Any, tenant_id: Any, field: str) -> list[Any]:
    if not isinstance(ids, list | tuple):
        raise InvalidInput("Give a list of ids.", field)
    wanted = []
    for raw in ids:
        try:
            wanted.append(raw if isinstance(raw, uuid.UUID) else uuid.UUID(str(raw)))
        except ValueError:
            raise InvalidInput(f"{raw!r} is not an id.", field) from None
    rows = list(model.objects.filter(tenant_id=tenant_id, pk__in=wanted))
    if len(rows) != len(set(wanted)):
        raise NotFound("No such school." if model is School else "No such class.", field)
    return rows


def _rule_value(item: Any, name: str) -> Any:
    if isinstance(item, Mapping):
        return item.get(name)
    return getattr(item, name, None)


@transaction.atomic
def availability_set(
    *,
    actor: User,
    tutor: User,
    time_zone: str,
    weekly: Sequence[Any],
    overrides: Sequence[Any] = (),
    buffer_before_min: int = 0,
    buffer_after_min: int = 0,
    min_notice_min: int = 0,
    window_days: int = 90,
    daily_cap: int | None = None,
) -> None:
    """Replace a tutor's weekly rules, date overrides and booking limits.

    ``weekly`` items have weekday (0 = Monday), start_minute, end_minute; ``overrides``
    items have date and start_minute/end_minute, or unavailable=True. Items may be
    mappings or objects (slots.WeeklyRule, data.WeeklyHours...). The tutor themself or a
    district admin.
    """
    _same_tenant(actor, tutor, "person_id")
    if actor.pk != tutor.pk and not is_district_admin(actor):
        raise NotAllowed("Only the tutor or a district admin may set this tutor's availability.", "person_id")
    profile = TutorProfile.objects.select_for_update().filter(user=tutor).first()
    if profile is None:
        raise NotFound("This person is not a tutor.", "person_id")
    zone = _check_zone(time_zone)
    rules = _clean_weekly(weekly)
    dated = _clean_overrides(overrides)
    save_changed(
        profile,
        {
            "time_zone": zone,
            "buffer_before_min": _int(buffer_before_min, "buffer_before_min", low=0, high=1440),
            "buffer_after_min": _int(buffer_after_min, "buffer_after_min", low=0, high=1440),
            "min_notice_min": _int(min_notice_min, "min_notice_min", low=0, high=60 * 24 * 365),
            "window_days": _int(window_days, "window_days", low=1, high=730),
            "daily_cap": None if daily_cap is None else _int(daily_cap, "daily_cap", low=1, high=1000),
        },
    )
    AvailabilityRule.objects.filter(tutor=profile).delete()
    AvailabilityOverride.objects.filter(tutor=profile).delete()
    AvailabilityRule.objects.bulk_create(
        AvailabilityRule(tenant_id=profile.tenant_id, tutor=profile, weekday=d, start_minute=s, end_minute=e)
        for d, s, e in rules
    )
    AvailabilityOverride.objects.bulk_create(
        AvailabilityOverride(
            tenant_id=profile.tenant_id,
            tutor=profile,
            date=day,
            start_minute=s,
            end_minute=e,
            unavailable=off,
        )
        for day, s, e, off in dated
    )
    audit_record(
        tenant=tutor.tenant,
        actor=actor,
        action="scheduling.availability.set",
        target=profile,
        details={"weekly": len(rules), "overrides": len(dated), "time_zone": zone},
    )


def _clean_weekly(weekly: Sequence[Any]) -> list[tuple[int, int, int]]:
    if not isinstance(weekly, list | tuple):
        raise InvalidInput("Give a list of weekly rules.", "weekly")
    rules = []
    for index, item in enumerate(weekly):
        field = f"weekly[{index}]"
        day = _int(_rule_value(item, "weekday"), f"{field}.weekday", low=0, high=6)
        start = _int(_rule_value(item, "start_minute"), f"{field}.start", low=0, high=1439)
        end = _int(_rule_value(item, "end_minute"), f"{field}.end", low=1, high=1440)
        if end <= start:
            raise InvalidInput(
                "A rule must end after it starts (an overnight rule is two rules).", f"{field}.end"
            )
        rules.append((day, start, end, field))
    by_day = sorted(rules)
    for (d1, _s1, e1, _f1), (d2, s2, e2, f2) in pairwise(by_day):
        if d1 == d2 and s2 < e1:
            raise InvalidInput(
                f"Rules on {WEEKDAYS[d1]} overlap ({_hhmm(s2)} to {_hhmm(e2)} starts before an earlier rule ends).",
                f2,
            )
    return [(d, s, e) for d, s, e, _f in by_day]


def _clean_overrides(overrides: Sequence[Any]) -> list[tuple[dt.date, int | None, int | None, bool]]:
    if not isinstance(overrides, list | tuple):
        raise InvalidInput("Give a list of date overrides.", "overrides")
    cleaned: list[tuple[dt.date, int | None, int | None, bool, str]] = []
    for index, item in enumerate(overrides):
        field = f"overrides[{index}]"
        day = _rule_value(item, "date")
        if not isinstance(day, dt.date) or isinstance(day, dt.datetime):
            raise InvalidInput("Give a date (YYYY-MM-DD).", f"{field}.date")
        if not FIRST_DATE <= day <= LAST_DATE:
            raise InvalidInput(DATE_RANGE_REASON, f"{field}.date")
        if _rule_value(item, "unavailable"):
            if _rule_value(item, "start_minute") is not None or _rule_value(item, "end_minute") is not None:
                raise InvalidInput("A day off has no hours.", f"{field}.start")
            cleaned.append((day, None, None, True, field))
            continue
        start = _int(_rule_value(item, "start_minute"), f"{field}.start", low=0, high=1439)
        end = _int(_rule_value(item, "end_minute"), f"{field}.end", low=1, high=1440)
        if end <= start:
            raise InvalidInput("Hours must end after they start.", f"{field}.end")
        cleaned.append((day, start, end, False, field))
    ordered = sorted(cleaned, key=lambda o: (o[0], o[1] if o[1] is not None else -1))
    for first, second in pairwise(ordered):
        if first[0] != second[0]:
            continue
        if first[3] or second[3]:
            raise InvalidInput(f"{second[0]} is both a day off and has hours.", second[4])
        if second[1] is not None and first[2] is not None and second[1] < first[2]:
            raise InvalidInput(f"Hours on {second[0]} overlap.", second[4])
    return [(d, s, e, off) for d, s, e, off, _f in ordered]


# --- slots -------------------------------------------------------------------------------


def slots_for(
    *, tutor: User, start: dt.datetime, end: dt.datetime, duration_min: int, now: dt.datetime | None = None
) -> list[tuple[dt.datetime, dt.datetime]]:
    """Free slots (aware UTC, ordered) of ``duration_min`` minutes in [start, end)."""
    profile = _active_profile(tutor)
    start = _aware_utc(start, "start")
    end = _aware_utc(end, "end")
    if end <= start:
        raise InvalidInput("The end must be after the start.", "end")
    if end - start > dt.timedelta(days=MAX_SLOT_SEARCH_DAYS):
        raise InvalidInput(f"Ask for at most {MAX_SLOT_SEARCH_DAYS} days at a time.", "end")
    duration = _duration(profile, duration_min)
    now = now or timezone.now()
    av = selectors.availability_of(profile)
    margin = av.buffer_before + av.buffer_after + duration
    busy = selectors.busy_blocks(tutor_id=tutor.pk, start=start - margin, end=end + margin, now=now)
    per_day = selectors.booked_per_day(
        tutor_id=tutor.pk, time_zone=profile.time_zone, start=start, end=end, now=now
    )
    return slots.free_slots(
        av, duration=duration, now=now, start=start, end=end, busy=busy, booked_per_day=per_day
    )


def tutors_slots(
    *,
    profiles: Sequence[TutorProfile],
    start: dt.datetime,
    end: dt.datetime,
    duration_min: int | None = None,
    now: dt.datetime | None = None,
) -> list[tuple[TutorProfile, int, list[tuple[dt.datetime, dt.datetime]]]]:
    """Free slots of many tutors at once: (profile, minutes, slots) in the profiles' order.

    Each tutor's slots are what ``slots_for`` gives, of ``duration_min`` minutes when the
    tutor offers that length, else of their first length. The reads are batched (see
    ``selectors.slot_inputs``): a constant number of queries however many tutors.
    Inactive tutors are left out.
    """
    start = _aware_utc(start, "start")
    end = _aware_utc(end, "end")
    if end <= start:
        raise InvalidInput("The end must be after the start.", "end")
    if end - start > dt.timedelta(days=MAX_SLOT_SEARCH_DAYS):
        raise InvalidInput(f"Ask for at most {MAX_SLOT_SEARCH_DAYS} days at a time.", "end")
    if duration_min is not None and (isinstance(duration_min, bool) or not isinstance(duration_min, int)):
        raise InvalidInput("Give a whole number.", "duration")
    now = now or timezone.now()
    active = [p for p in profiles if p.is_active and p.user.is_active]
    minutes: dict[uuid.UUID, int] = {
        p.pk: duration_min
        if duration_min is not None and duration_min in p.session_lengths
        else p.session_lengths[0]
        for p in active
    }
    margin = max(
        (dt.timedelta(minutes=p.buffer_before_min + p.buffer_after_min + minutes[p.pk]) for p in active),
        default=dt.timedelta(0),
    )
    inputs = selectors.slot_inputs(profiles=active, start=start, end=end, now=now, margin=margin)
    found = []
    for profile in active:
        given = inputs[profile.user_id]
        found.append(
            (
                profile,
                minutes[profile.pk],
                slots.free_slots(
                    given.availability,
                    duration=dt.timedelta(minutes=minutes[profile.pk]),
                    now=now,
                    start=start,
                    end=end,
                    busy=given.busy,
                    booked_per_day=given.booked_per_day,
                ),
            )
        )
    return found


def class_slots(
    *,
    klass: Class,
    start: dt.datetime,
    end: dt.datetime,
    duration_min: int | None = None,
    now: dt.datetime | None = None,
) -> list[tuple[TutorProfile, int, list[tuple[dt.datetime, dt.datetime]]]]:
    """Free slots of every active tutor serving the class (by name), in a constant number
    of queries: (profile, minutes, slots) as ``tutors_slots`` gives them."""
    profiles = list(selectors.tutor_profiles(tenant=klass.tenant, class_id=klass.pk))
    return tutors_slots(profiles=profiles, start=start, end=end, duration_min=duration_min, now=now)


def _duration(profile: TutorProfile, duration_min: Any) -> dt.timedelta:
    minutes = _int(duration_min, "duration", low=1, high=MAX_SESSION_MIN)
    if minutes not in profile.session_lengths:
        offered = ", ".join(str(m) for m in profile.session_lengths)
        raise InvalidInput(f"This tutor offers sessions of {offered} minutes.", "duration")
    return dt.timedelta(minutes=minutes)


# --- who may book ---------------------------------------------------------------------------


def _booking_refusal(
    *, actor: User, student: User, tutor: User, klass: Class | None, policy: SchedulingPolicy
) -> BookingRefused | None:
    """Why the actor may not book this student with this tutor, or None when they may."""
    profile = selectors.tutor_profile_of(tutor)
    if profile is None or not profile.is_active or not tutor.is_active:
        return BookingRefused(REFUSED_NOT_TUTOR, "tutor")
    if not selectors.is_student(student):
        return BookingRefused(REFUSED_NOT_STUDENT, "student")
    if klass is not None and klass.pk not in selectors.student_class_ids(student):
        return BookingRefused(REFUSED_NOT_IN_CLASS, "class_id")
    if not selectors.serves(profile=profile, student=student, klass=klass):
        return BookingRefused(REFUSED_NOT_SERVED, "tutor")
    if is_district_admin(actor):
        return None
    if actor.pk == student.pk:
        return None if policy.students_may_book else NotAllowed(REFUSED_STUDENTS, "student")
    if selectors.teaches_student(teacher=actor, student=student, klass=klass):
        return None if policy.teachers_may_book else NotAllowed(REFUSED_TEACHERS, "student")
    if selectors.is_guardian_of(guardian=actor, student=student):
        return None if policy.guardians_may_book else NotAllowed(REFUSED_GUARDIANS, "student")
    return NotAllowed(REFUSED_WHO, "student")


def may_book(*, actor: User, student: User, tutor: User, klass: Class | None = None) -> bool:
    """Whether the actor may book this student with this tutor (in that class)."""
    if actor.tenant_id is None or not (actor.tenant_id == student.tenant_id == tutor.tenant_id):
        return False
    if klass is not None and klass.tenant_id != actor.tenant_id:
        return False
    refusal = _booking_refusal(
        actor=actor, student=student, tutor=tutor, klass=klass, policy=_policy(actor.tenant_id)
    )
    return refusal is None


def _check_booking_parties(actor: User, tutor: User, student: User, klass: Class | None) -> SchedulingPolicy:
    _same_tenant(actor, tutor, "tutor")
    _same_tenant(actor, student, "student")
    if klass is not None and klass.tenant_id != actor.tenant_id:
        raise NotFound("No such class.", "class_id")
    policy = _policy(actor.tenant_id)  # type: ignore[arg-type]
    refusal = _booking_refusal(actor=actor, student=student, tutor=tutor, klass=klass, policy=policy)
    if refusal is not None:
        raise refusal
    return policy


# --- booking ---------------------------------------------------------------------------------


def _refuse_time(
    av: slots.Availability,
    *,
    start: dt.datetime,
    duration: dt.timedelta,
    now: dt.datetime,
    per_day: Mapping[dt.date, int],
) -> None:
    """Raise BookingRefused with the rule a time breaks, ignoring other sessions."""
    if start < now + av.min_notice:
        if start < now:
            raise BookingRefused("That time has passed.", "start")
        minutes = int(av.min_notice.total_seconds() // 60)
        raise BookingRefused(f"This tutor needs at least {minutes} minutes' notice.", "start")
    if start + duration > now + dt.timedelta(days=av.window_days):
        raise BookingRefused(f"This tutor takes bookings at most {av.window_days} days ahead.", "start")
    local_day = start.astimezone(zoneinfo.ZoneInfo(av.time_zone)).date()
    if av.daily_cap is not None and per_day.get(local_day, 0) >= av.daily_cap:
        raise BookingRefused(
            f"This tutor's limit of {av.daily_cap} sessions on {local_day} is reached.", "start"
        )
    if not slots.is_bookable(
        av, slot_start=start, duration=duration, now=now, busy=(), booked_per_day=per_day
    ):
        raise BookingRefused("That time is outside the tutor's available hours.", "start")


def _alternatives(
    av: slots.Availability,
    *,
    tutor_id: uuid.UUID,
    around: dt.datetime,
    duration: dt.timedelta,
    now: dt.datetime,
    exclude_id: uuid.UUID | None = None,
    student_ids: Sequence[uuid.UUID] = (),
) -> list[tuple[dt.datetime, dt.datetime]]:
    # Busy time over the whole booking window: nearest_free may look that far.
    horizon_end = now + dt.timedelta(days=av.window_days + 1)
    busy = selectors.busy_blocks(
        tutor_id=tutor_id, start=now - dt.timedelta(days=1), end=horizon_end, now=now, exclude_id=exclude_id
    )
    taken: list[tuple[dt.datetime, dt.datetime]] = []
    if student_ids:
        taken = list(
            selectors.students_sessions(
                student_ids=student_ids, start=now, end=horizon_end, now=now, exclude_id=exclude_id
            ).values_list("start", "end")
        )
    per_day = selectors.booked_per_day(
        tutor_id=tutor_id, time_zone=av.time_zone, start=now, end=horizon_end, now=now, exclude_id=exclude_id
    )
    if not taken:
        return slots.nearest_free(
            av, around=around, duration=duration, now=now, busy=busy, booked_per_day=per_day
        )
    # The tutor's nearest free slots that miss the students' other sessions (slot times, not
    # the tutor's buffers, must not overlap them): look further, keep the first five.
    nearest = slots.nearest_free(
        av, around=around, duration=duration, now=now, busy=busy, booked_per_day=per_day, limit=60
    )
    return [(s, e) for s, e in nearest if not any(s < b and e > a for a, b in taken)][:5]


def _is_overlap_violation(exc: IntegrityError) -> bool:
    cause = exc.__cause__
    # 23P01 exclusion_violation (PostgreSQL); other integrity errors are bugs, not conflicts.
    return getattr(cause, "sqlstate", None) == "23P01" or "session_no_double_booking" in str(exc)


def _lock_students(student_ids: Sequence[uuid.UUID]) -> None:
    """Hold the students' rows until the transaction ends (PostgreSQL), so two bookings of
    one student check for a clash one after the other; in primary-key order, so bookings
    of the same students cannot deadlock. On SQLite writes are serialised already.

    FOR NO KEY UPDATE, not FOR UPDATE: two bookings of a student still queue on it, but
    the FOR KEY SHARE lock PostgreSQL's foreign-key checks take (any row written meanwhile
    that names the student: an audit row, a notice, a session they booked for themself in
    another transaction) is not made to wait for the booking to commit.
    (tests/scheduling/test_student_busy.py, contention.py --mode student-lock)"""
    if connection.vendor == "sqlite" or not student_ids:
        return
    list(
        User.objects.select_for_update(no_key=True)
        .filter(pk__in=sorted(set(student_ids)))
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def _refuse_student_busy(
    *,
    av: slots.Availability,
    tutor_id: uuid.UUID,
    student_ids: Sequence[uuid.UUID],
    start: dt.datetime,
    duration: dt.timedelta,
    now: dt.datetime,
    exclude_id: uuid.UUID | None,
) -> None:
    """StudentBusy when a student already has a held or booked session (with any tutor,
    one-to-one or in a group) overlapping [start, start + duration). Session times only:
    buffers are the tutor's, and a session ending at ``start`` does not overlap. Call
    with the students' rows locked (``_lock_students``)."""
    end = start + duration
    clash = (
        SessionParticipant.objects.filter(
            student_id__in=student_ids,
            status=SessionParticipant.Status.BOOKED,
            session__in=selectors.students_sessions(
                student_ids=student_ids, start=start, end=end, now=now, exclude_id=exclude_id
            ),
        )
        .select_related("student", "session", "session__tutor")
        .order_by("session__start", "session_id")
        .first()
    )
    if clash is None:
        return
    student, other = clash.student, clash.session
    zone = zoneinfo.ZoneInfo(av.time_zone)
    first, last = other.start.astimezone(zone), other.end.astimezone(zone)
    raise StudentBusy(
        f"{student.full_name or student.username} already has a tutoring session then "
        f"({first:%Y-%m-%d %H:%M} to {last:%H:%M} {zone.key}, with "
        f"{other.tutor.full_name or other.tutor.username}); a student cannot be in two sessions at once.",
        alternatives=_alternatives(
            av,
            tutor_id=tutor_id,
            around=start,
            duration=duration,
            now=now,
            exclude_id=exclude_id,
            student_ids=student_ids,
        ),
        conflict_id=other.pk,
    )


def _claim_time(
    *,
    profile: TutorProfile,
    av: slots.Availability,
    start: dt.datetime,
    duration: dt.timedelta,
    now: dt.datetime,
    session: Session | None = None,
    new_row: dict[str, Any] | None = None,
    student_ids: Sequence[uuid.UUID] = (),
) -> Session:
    """Check the time and write the row (a new session, or ``session`` moved) in a savepoint.

    Must run inside the caller's transaction. Expired holds of the tutor are marked
    expired first, so they neither block the time nor trip the exclusion constraint.
    """
    tutor_id = profile.user_id
    _lock_students(student_ids)
    # Locked in primary-key order so two bookings expiring the same holds cannot deadlock.
    lapsed = list(
        Session.objects.select_for_update()
        .filter(tutor_id=tutor_id, status=Session.Status.HELD, hold_expires_at__lte=now)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    if lapsed:
        Session.objects.filter(pk__in=lapsed, status=Session.Status.HELD).update(
            status=Session.Status.EXPIRED, updated_at=now
        )
    exclude_id = session.pk if session is not None else None
    end = start + duration
    block_start = start - av.buffer_before
    block_end = end + av.buffer_after
    per_day = selectors.booked_per_day(
        tutor_id=tutor_id, time_zone=av.time_zone, start=start, end=end, now=now, exclude_id=exclude_id
    )
    _refuse_time(av, start=start, duration=duration, now=now, per_day=per_day)
    busy = selectors.busy_blocks(
        tutor_id=tutor_id, start=block_start, end=block_end, now=now, exclude_id=exclude_id
    )
    if busy:
        raise SlotTaken(
            alternatives=_alternatives(
                av, tutor_id=tutor_id, around=start, duration=duration, now=now, exclude_id=exclude_id
            )
        )
    _refuse_student_busy(
        av=av,
        tutor_id=tutor_id,
        student_ids=student_ids,
        start=start,
        duration=duration,
        now=now,
        exclude_id=exclude_id,
    )
    try:
        with transaction.atomic():
            if session is None:
                session = Session.objects.create(
                    tutor_id=tutor_id,
                    start=start,
                    end=end,
                    block_start=block_start,
                    block_end=block_end,
                    time_zone=av.time_zone,
                    **(new_row or {}),
                )
            else:
                session.start, session.end = start, end
                session.block_start, session.block_end = block_start, block_end
                session.time_zone = av.time_zone
                session.sequence += 1
                session.save(
                    update_fields=[
                        "start",
                        "end",
                        "block_start",
                        "block_end",
                        "time_zone",
                        "sequence",
                        "updated_at",
                    ]
                )
    except IntegrityError as exc:
        if not _is_overlap_violation(exc):
            raise
        # Another transaction took the time between our check and our write (PostgreSQL).
        taken = SlotTaken(
            alternatives=_alternatives(
                av, tutor_id=tutor_id, around=start, duration=duration, now=now, exclude_id=exclude_id
            )
        )
        taken.decided_by = "constraint"
        raise taken from None
    return session


def _book_one(
    *,
    actor: User,
    profile: TutorProfile,
    av: slots.Availability,
    student: User,
    start: dt.datetime,
    duration: dt.timedelta,
    now: dt.datetime,
    klass: Class | None,
    subject: str,
    hold: bool,
    capacity: int,
    policy: SchedulingPolicy,
    series: Series | None = None,
) -> Session:
    session = _claim_time(
        profile=profile,
        av=av,
        start=start,
        duration=duration,
        now=now,
        new_row={
            "tenant_id": profile.tenant_id,
            "status": Session.Status.HELD if hold else Session.Status.BOOKED,
            "hold_expires_at": now + dt.timedelta(minutes=policy.hold_minutes) if hold else None,
            "capacity": capacity,
            "subject": subject,
            "klass": klass,
            "series": series,
            "created_by": actor,
        },
        student_ids=[student.pk],
    )
    SessionParticipant.objects.create(
        tenant_id=profile.tenant_id, session=session, student=student, booked_by=actor
    )
    if not hold:  # [payments] credit or card by the tenant's policy; a refusal rolls back the booking
        payments_api.booking_reserve(
            tenant_id=profile.tenant_id,
            session_id=session.pk,
            student_id=student.pk,
            tutor_id=profile.user_id,
            subject=subject,
            duration_min=int(duration.total_seconds() // 60),
        )
    audit_record(
        tenant=actor.tenant,
        actor=actor,
        action="scheduling.session.hold" if hold else "scheduling.session.book",
        target=session,
        details={
            "student": str(student.pk),
            "start": start.isoformat(),
            "minutes": duration.total_seconds() // 60,
        },
    )
    if not hold:
        _notify(session, "booked", actor)
    return session


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
) -> Session:
    """Book (or, with hold=True, hold for confirming) a session of the tutor for the student.

    Raises NotFound (another tenant's people), NotAllowed / BookingRefused (who may book,
    availability, notice, window, daily cap) and SlotTaken with the nearest free slots.
    ``capacity`` > 1 makes a group session others join with group_join.
    """
    start = _aware_utc(start, "start")
    policy = _check_booking_parties(actor, tutor, student, klass)
    profile = _active_profile(tutor)
    duration = _duration(profile, duration_min)
    capacity = _int(capacity, "capacity", low=1, high=500)
    if not isinstance(subject, str) or len(subject) > 200:
        raise InvalidInput("Give the subject as text of at most 200 characters.", "subject")
    av = selectors.availability_of(profile)
    now = timezone.now()
    with transaction.atomic():
        return _book_one(
            actor=actor,
            profile=profile,
            av=av,
            student=student,
            start=start,
            duration=duration,
            now=now,
            klass=klass,
            subject=subject,
            hold=hold,
            capacity=capacity,
            policy=policy,
        )


def _actor_side(actor: User, session: Session) -> str:
    """'tutor' (the tutor or a district admin), 'student' (a participant or someone who
    may book for one, or who booked it), or '' (no business with this session)."""
    if actor.pk == session.tutor_id or is_district_admin(actor):
        return "tutor"
    if session.created_by_id == actor.pk:
        return "student"
    # Every participant, cancelled ones too: repeating a cancel must find the same people.
    for participant in session.participants.select_related("student"):
        student = participant.student
        if student.pk == actor.pk or participant.booked_by_id == actor.pk:
            return "student"
        if selectors.is_guardian_of(guardian=actor, student=student) or selectors.teaches_student(
            teacher=actor, student=student, klass=session.klass
        ):
            return "student"
    return ""


@transaction.atomic
def booking_confirm(*, actor: User, session_id: Any) -> Session:
    """A hold becomes a booking, if it has not expired."""
    session = selectors.session_in_tenant(tenant_id=actor.tenant_id, session_id=session_id, lock=True)
    if not _actor_side(actor, session):
        raise NotFound("No such session.", "session_id")
    if session.status == Session.Status.BOOKED:
        return session  # confirming twice changes nothing
    now = timezone.now()
    lapsed = (
        session.status == Session.Status.HELD and session.hold_expires_at and session.hold_expires_at <= now
    )
    if lapsed or session.status == Session.Status.EXPIRED:
        # No write: the refusal rolls back, and the next booking of this tutor marks it expired.
        raise BookingRefused("The hold has expired; choose the time again.", "session_id")
    if session.status != Session.Status.HELD:
        raise BookingRefused(f"The session is {session.status}; only a hold can be confirmed.", "session_id")
    session.status = Session.Status.BOOKED
    session.hold_expires_at = None
    session.save(update_fields=["status", "hold_expires_at", "updated_at"])
    for participant in session.participants.filter(status=SessionParticipant.Status.BOOKED):  # [payments]
        payments_api.booking_reserve(
            tenant_id=session.tenant_id,
            session_id=session.pk,
            student_id=participant.student_id,
            tutor_id=session.tutor_id,
            subject=session.subject,
            duration_min=int((session.end - session.start).total_seconds() // 60),
        )
    audit_record(tenant=actor.tenant, actor=actor, action="scheduling.session.confirm", target=session)
    _notify(session, "booked", actor)
    return session


@transaction.atomic
def group_join(*, actor: User, session_id: Any, student: User) -> Session:
    """Add a student to a group session with room left."""
    session = selectors.session_in_tenant(tenant_id=actor.tenant_id, session_id=session_id, lock=True)
    _same_tenant(actor, student, "student")
    tutor = session.tutor
    policy = _policy(session.tenant_id)
    refusal = _booking_refusal(actor=actor, student=student, tutor=tutor, klass=session.klass, policy=policy)
    if refusal is not None:
        raise refusal
    if session.status != Session.Status.BOOKED:
        raise BookingRefused("Only a booked session can be joined.", "session_id")
    if session.start <= timezone.now():
        raise BookingRefused("That session has already started.", "session_id")
    active = session.participants.filter(status=SessionParticipant.Status.BOOKED)
    if active.filter(student=student).exists():
        return session  # joining twice changes nothing
    if active.count() >= session.capacity:
        raise BookingRefused(f"The session is full ({session.capacity} places).", "session_id")
    _lock_students([student.pk])
    profile = _active_profile(tutor)
    _refuse_student_busy(
        av=selectors.availability_of(profile),
        tutor_id=tutor.pk,
        student_ids=[student.pk],
        start=session.start,
        duration=session.end - session.start,
        now=timezone.now(),
        exclude_id=session.pk,
    )
    SessionParticipant.objects.create(
        tenant_id=session.tenant_id, session=session, student=student, booked_by=actor
    )
    payments_api.booking_reserve(  # [payments]
        tenant_id=session.tenant_id,
        session_id=session.pk,
        student_id=student.pk,
        tutor_id=session.tutor_id,
        subject=session.subject,
        duration_min=int((session.end - session.start).total_seconds() // 60),
    )
    # The attendee list is part of the calendar event: a join is a new SEQUENCE, so its
    # notices (the tutor's, the joiner's side's) are new rows, never taken for the
    # first booking's under the (session, person, kind, sequence) key.
    session.sequence += 1
    session.save(update_fields=["sequence", "updated_at"])
    audit_record(
        tenant=actor.tenant,
        actor=actor,
        action="scheduling.session.join",
        target=session,
        details={"student": str(student.pk)},
    )
    _notify(session, "joined", actor, person_id=student.pk)
    return session


def _notice_hours(session: Session, policy: SchedulingPolicy, kind: str) -> int:
    profile = TutorProfile.objects.filter(user_id=session.tutor_id).first()
    own = getattr(profile, f"{kind}_notice_hours", None) if profile else None
    return own if own is not None else getattr(policy, f"{kind}_notice_hours")


@transaction.atomic
def booking_cancel(*, actor: User, session_id: Any, reason: str = "", student: User | None = None) -> Session:
    """Cancel a session, or one student's place in a group session.

    Inside the notice period (the tutor's, else the tenant's) a cancel by the student's
    side is recorded as a late cancel, or refused when the tenant's policy says so. The
    tutor and district admins may always cancel; theirs is recorded late too.
    """
    session = selectors.session_in_tenant(tenant_id=actor.tenant_id, session_id=session_id, lock=True)
    side = _actor_side(actor, session)
    if not side:
        raise NotFound("No such session.", "session_id")
    if session.status == Session.Status.CANCELLED:
        return session  # cancelling twice changes nothing
    if session.status not in (Session.Status.BOOKED, Session.Status.HELD):
        raise BookingRefused(f"The session is {session.get_status_display().lower()}.", "session_id")
    if not isinstance(reason, str) or len(reason) > 500:
        raise InvalidInput("Give the reason as text of at most 500 characters.", "reason")
    now = timezone.now()
    if session.start <= now:
        raise BookingRefused("The session has started; record its outcome instead.", "session_id")
    policy = _policy(session.tenant_id)
    hours = _notice_hours(session, policy, "cancel")
    late = session.status == Session.Status.BOOKED and session.start - now < dt.timedelta(hours=hours)
    if late and side == "student" and not policy.late_cancel_allowed:
        raise BookingRefused(
            f"Too late to cancel: cancel at least {hours} hours before the start.", "session_id"
        )
    outcome = Session.Outcome.LATE_CANCEL if late else Session.Outcome.NONE
    everyone = list(session.participants.all())
    active = [p for p in everyone if p.status == SessionParticipant.Status.BOOKED]
    if session.capacity > 1 and side == "student":
        leaver = student.pk if student is not None else actor.pk
        places = [p for p in everyone if leaver in (p.student_id, p.booked_by_id)]
        if places and all(p.status == SessionParticipant.Status.CANCELLED for p in places):
            return session  # leaving twice changes nothing
    leaving = _leaving(actor, session, side, active, student)
    if leaving is not None and len(active) > 1:
        leaving.status = SessionParticipant.Status.CANCELLED
        leaving.cancelled_at = now
        leaving.outcome = outcome
        leaving.save(update_fields=["status", "cancelled_at", "outcome", "updated_at"])
        payments_api.booking_release(
            session_id=session.pk, late=late, student_id=leaving.student_id
        )  # [payments]
        # The attendee list is part of the calendar event: a leave is a new SEQUENCE, so
        # its notices never collide with an earlier change's (session, person, kind, sequence).
        session.sequence += 1
        session.save(update_fields=["sequence", "updated_at"])
        audit_record(
            tenant=actor.tenant,
            actor=actor,
            action="scheduling.session.leave",
            target=session,
            details={"student": str(leaving.student_id), "late": late, "reason": reason},
        )
        _notify(session, "left", actor, person_id=leaving.student_id)
        return session
    was_held = session.status == Session.Status.HELD
    session.status = Session.Status.CANCELLED
    session.cancelled_at = now
    session.cancelled_by = actor
    session.cancel_reason = reason
    session.outcome = outcome
    session.sequence += 1
    session.save(
        update_fields=[
            "status",
            "cancelled_at",
            "cancelled_by",
            "cancel_reason",
            "outcome",
            "sequence",
            "updated_at",
        ]
    )
    session.participants.filter(status=SessionParticipant.Status.BOOKED).update(
        status=SessionParticipant.Status.CANCELLED, cancelled_at=now, outcome=outcome, updated_at=now
    )
    payments_api.booking_release(session_id=session.pk, late=late)  # [payments]
    audit_record(
        tenant=actor.tenant,
        actor=actor,
        action="scheduling.session.cancel",
        target=session,
        details={"late": late, "reason": reason},
    )
    if not was_held:  # a hold concerned nobody yet: nobody was told of it
        _notify(session, "cancelled", actor)
    return session


def _leaving(
    actor: User, session: Session, side: str, active: list[SessionParticipant], student: User | None
) -> SessionParticipant | None:
    """The one participant whose place a group cancel gives up, or None for the whole session."""
    if session.capacity <= 1:
        return None
    if student is not None:
        for participant in active:
            if participant.student_id == student.pk:
                return participant
        raise NotFound("That student is not booked in this session.", "student")
    if side == "tutor":
        return None
    mine = [p for p in active if actor.pk in (p.student_id, p.booked_by_id)]
    if len(mine) == 1:
        return mine[0]
    if session.created_by_id == actor.pk and not mine:
        return None
    raise InvalidInput("Say which student's place to cancel.", "student")


@transaction.atomic
def booking_reschedule(
    *, actor: User, session_id: Any, start: dt.datetime, duration_min: int | None = None
) -> Session:
    """Move a booked session to another free time (same tutor); SEQUENCE goes up."""
    start = _aware_utc(start, "start")
    session = selectors.session_in_tenant(tenant_id=actor.tenant_id, session_id=session_id, lock=True)
    side = _actor_side(actor, session)
    if not side:
        raise NotFound("No such session.", "session_id")
    if session.status != Session.Status.BOOKED:
        raise BookingRefused(
            f"Only a booked session can be moved; this one is {session.status}.", "session_id"
        )
    now = timezone.now()
    if session.start <= now:
        raise BookingRefused("The session has started and can no longer be moved.", "session_id")
    active = session.participants.filter(status=SessionParticipant.Status.BOOKED).count()
    if side != "tutor" and active > 1:
        raise NotAllowed("Only the tutor or a district admin may move a group session.", "session_id")
    policy = _policy(session.tenant_id)
    hours = _notice_hours(session, policy, "reschedule")
    if side != "tutor" and session.start - now < dt.timedelta(hours=hours):
        raise BookingRefused(
            f"Too late to reschedule: move at least {hours} hours before the start.", "session_id"
        )
    profile = _active_profile(session.tutor)
    if duration_min is None:
        duration = session.end - session.start
        if int(duration.total_seconds() // 60) not in profile.session_lengths:
            duration = _duration(profile, int(duration.total_seconds() // 60))
    else:
        duration = _duration(profile, duration_min)
    old_start = session.start
    av = selectors.availability_of(profile)
    students = list(
        session.participants.filter(status=SessionParticipant.Status.BOOKED).values_list(
            "student_id", flat=True
        )
    )
    _claim_time(
        profile=profile, av=av, start=start, duration=duration, now=now, session=session, student_ids=students
    )
    audit_record(
        tenant=actor.tenant,
        actor=actor,
        action="scheduling.session.reschedule",
        target=session,
        details={"from": old_start.astimezone(UTC).isoformat(), "to": start.isoformat()},
    )
    _notify(session, "rescheduled", actor)
    return session


OUTCOMES = (Session.Outcome.ATTENDED, Session.Outcome.NO_SHOW, Session.Outcome.TUTOR_NO_SHOW)


@transaction.atomic
def session_outcome_set(
    *,
    actor: User,
    session_id: Any,
    outcome: str,
    student: User | None = None,
    record_attendance: bool = True,
) -> Session:
    """Record how a session went (attended, no_show, tutor_no_show); the tutor or a district admin.

    Set from the outcome form or the API, it is also each student's attendance in progress, as a
    tutor's correction (versioned, audited once), so the reports agree with the session. The video
    room passes ``record_attendance=False``: it records its own finer figures in progress."""
    session = selectors.session_in_tenant(tenant_id=actor.tenant_id, session_id=session_id, lock=True)
    side = _actor_side(actor, session)
    if not side:
        raise NotFound("No such session.", "session_id")
    if side != "tutor":
        raise NotAllowed("Only the tutor or a district admin may record how a session went.", "outcome")
    if outcome not in OUTCOMES:
        raise InvalidInput(f"Give one of: {', '.join(OUTCOMES)}.", "outcome")
    if session.status not in (Session.Status.BOOKED, Session.Status.COMPLETED):
        raise BookingRefused(f"The session is {session.status}; there is no outcome to record.", "session_id")
    if session.start > timezone.now():
        raise BookingRefused("The session has not started yet.", "session_id")
    participants = session.participants.filter(status=SessionParticipant.Status.BOOKED)
    if student is not None:
        participants = participants.filter(student=student)
        if not participants.exists():
            raise NotFound("That student is not booked in this session.", "student")
    students = [p.student for p in participants.select_related("student").order_by("student_id")]
    participants.update(outcome=outcome, updated_at=timezone.now())
    if record_attendance:
        _attendance_correct(actor=actor, session=session, students=students, outcome=outcome)
    if student is None or session.capacity == 1:
        session.outcome = outcome
    session.status = Session.Status.COMPLETED
    session.save(update_fields=["status", "outcome", "updated_at"])
    payments_api.booking_settle(  # [payments]
        session_id=session.pk, outcome=outcome, student_id=student.pk if student is not None else None
    )
    audit_record(
        tenant=actor.tenant,
        actor=actor,
        action="scheduling.session.outcome",
        target=session,
        details={"outcome": outcome, "student": str(student.pk) if student else ""},
    )
    return session


# A session's outcome -> a student's attendance in progress. A tutor who did not come is no fault
# of the student's: their attendance record is left as the room had it (issue 15 point 4).
ATTENDANCE_OF_OUTCOME: dict[str, str] = {
    Session.Outcome.ATTENDED: "attended",
    Session.Outcome.NO_SHOW: "no_show",
}
# The room's finer outcomes that scheduling knows as attended: a form's "attended" agrees with them.
_ATTENDED_KINDS = {"attended", "late", "left_early"}


def _attendance_correct(*, actor: User, session: Session, students: list[User], outcome: str) -> None:
    wanted = ATTENDANCE_OF_OUTCOME.get(outcome)
    if wanted is None:
        return
    recorded = {r.person_id: r for r in progress_api.attendance_for_session(session_id=session.pk)}
    for person in students:
        now = recorded.get(person.pk)
        if now is not None and wanted == "attended" and now.outcome in _ATTENDED_KINDS:
            continue  # already what the session says (a room's "late" is an attendance too)
        facts = progress_api.AttendanceFacts(
            tenant_id=session.tenant_id,
            session_id=session.pk,
            class_id=session.klass_id,
            person_id=person.pk,
            session_start=session.start,
            session_end=session.end,
            outcome=now.outcome if now is not None else wanted,
            first_joined_at=now.first_joined_at if now is not None else None,
            last_left_at=now.last_left_at if now is not None else None,
            minutes_present=now.minutes_present if now is not None else 0,
            late_minutes=now.late_minutes if now is not None else 0,
            left_early_minutes=now.left_early_minutes if now is not None else 0,
            source=now.source if now is not None else progress_api.AttendanceSource.TUTOR_CORRECTION,
        )
        progress_api.attendance_correct(actor=actor, facts=facts, outcome=wanted)


# --- series ----------------------------------------------------------------------------------


RRULE_FREQS_REFUSED = {"SECONDLY", "MINUTELY", "HOURLY", "YEARLY"}
RRULE_PARTS_REFUSED = {"BYSECOND", "BYMINUTE", "BYHOUR", "BYYEARDAY", "BYWEEKNO", "BYMONTH", "BYSETPOS"}


def _occurrences(rule: str, first: dt.datetime, zone: zoneinfo.ZoneInfo, limit: int) -> list[dt.datetime]:
    """The series' starts (aware UTC), keeping the tutor's wall-clock time across DST."""
    if not isinstance(rule, str) or not rule.strip():
        raise InvalidInput("Give a recurrence rule (for example FREQ=WEEKLY;COUNT=10).", "rrule")
    text = rule.strip()
    if text.upper().startswith("RRULE:"):
        text = text[6:]
    if "DTSTART" in text.upper() or "\n" in text:
        raise InvalidInput("Give one RRULE without DTSTART; the start is given apart.", "rrule")
    pairs = [p.split("=", 1) for p in text.split(";") if p]
    parts = {pair[0].upper() for pair in pairs}
    if not ({"COUNT", "UNTIL"} & parts):
        raise InvalidInput("The rule must end: give COUNT or UNTIL.", "rrule")
    if "FREQ" not in parts:
        raise InvalidInput("Give FREQ=DAILY, WEEKLY or MONTHLY.", "rrule")
    # Tutoring repeats by day, week or month. Finer or narrower rules are refused before
    # dateutil sees them: one that can never match (FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30)
    # would have it step through every day to the year 9999, seconds of CPU per request.
    values = {pair[0].upper(): pair[1].upper() for pair in pairs if len(pair) == 2}
    if values.get("FREQ") in RRULE_FREQS_REFUSED:
        raise InvalidInput("A series repeats DAILY, WEEKLY or MONTHLY (FREQ).", "rrule")
    refused = sorted(parts & RRULE_PARTS_REFUSED)
    if refused:
        raise InvalidInput(
            f"{refused[0]} is not used in a series; give FREQ, INTERVAL, COUNT or UNTIL, BYDAY, BYMONTHDAY.",
            "rrule",
        )
    if "BYMONTHDAY" in values and any(
        day.strip()[:1] in "+-0123456789" for day in values.get("BYDAY", "").split(",") if day.strip()
    ):
        # "The fifth Monday that is the 1st" never happens: every month to the year 9999.
        raise InvalidInput("A numbered BYDAY (such as -1FR) cannot be combined with BYMONTHDAY.", "rrule")
    interval = values.get("INTERVAL", "1")
    if not interval.isdigit() or not 1 <= int(interval) <= 52:
        raise InvalidInput("INTERVAL must be a whole number from 1 to 52.", "rrule")
    local_first = first.astimezone(zone)
    try:
        recurrence = rrulestr(text, dtstart=local_first)
        starts = list(islice(iter(recurrence), limit + 1))  # type: ignore[call-overload]
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        raise InvalidInput(f"Not a valid RRULE: {exc}.", "rrule") from None
    if len(starts) > limit:
        raise InvalidInput(f"A series may have at most {limit} occurrences.", "rrule")
    if not starts:
        raise InvalidInput("The rule gives no occurrences.", "rrule")
    # dateutil steps wall-clock time in the start's zone; read each as that local time.
    return [s.replace(tzinfo=None).replace(tzinfo=zone).astimezone(UTC) for s in starts]


def series_create(
    *,
    actor: User,
    tutor: User,
    student: User,
    start: dt.datetime,
    duration_min: int,
    rrule: str,
    klass: Class | None = None,
    subject: str = "",
) -> SeriesResult:
    """Book every occurrence of a recurrence that is free; report each one that is not.

    Each occurrence is its own Session row, checked like a one-off booking in its own
    savepoint, so a conflict on one leaves the others booked.
    """
    start = _aware_utc(start, "start")
    policy = _check_booking_parties(actor, tutor, student, klass)
    profile = _active_profile(tutor)
    duration = _duration(profile, duration_min)
    zone = zoneinfo.ZoneInfo(profile.time_zone)
    starts = _occurrences(rrule, start, zone, policy.max_series_occurrences)
    av = selectors.availability_of(profile)
    now = timezone.now()
    results: list[OccurrenceResult] = []
    with transaction.atomic():
        series = Series.objects.create(
            tenant_id=profile.tenant_id,
            tutor=tutor,
            student=student,
            klass=klass,
            rrule=rrule.strip(),
            dtstart=start,
            duration_min=int(duration.total_seconds() // 60),
            time_zone=profile.time_zone,
            created_by=actor,
        )
        for occurrence in starts:
            end = occurrence + duration
            try:
                with transaction.atomic():
                    session = _book_one(
                        actor=actor,
                        profile=profile,
                        av=av,
                        student=student,
                        start=occurrence,
                        duration=duration,
                        now=now,
                        klass=klass,
                        subject=subject,
                        hold=False,
                        capacity=1,
                        policy=policy,
                        series=series,
                    )
            except SlotTaken as exc:
                results.append(
                    OccurrenceResult(
                        occurrence, end, "conflict", reason=exc.reason, alternatives=tuple(exc.alternatives)
                    )
                )
            except SchedulingError as exc:
                results.append(OccurrenceResult(occurrence, end, "refused", reason=exc.reason))
            else:
                results.append(OccurrenceResult(occurrence, end, "booked", session_id=session.pk))
        audit_record(
            tenant=actor.tenant,
            actor=actor,
            action="scheduling.series.create",
            target=series,
            details={"booked": sum(r.status == "booked" for r in results), "occurrences": len(results)},
        )
    return SeriesResult(series_id=series.pk, occurrences=tuple(results))


def database_guarantees_no_overlap() -> bool:
    """True where the exclusion constraint exists (PostgreSQL); SQLite relies on serialised writes."""
    return connection.vendor == "postgresql"
