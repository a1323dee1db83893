"""The scheduling pages (issue 12): the class's booking page, a tutor's week and
availability, upcoming sessions, and the district admin's tutor list.

Views authorise through the get_<thing>_for_user helpers (404 for anything outside
the viewer's tenant or business), call one scheduling service, and show its refusal
next to the field it names. The pages and the JSON API are two faces of these
services: no booking rule lives here.
"""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo
from collections.abc import Iterable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods

from tutoring_core.accounts.api import is_district_admin
from tutoring_core.accounts.models import Role, User
from tutoring_core.accounts.selectors import user_roles, wards_of
from tutoring_core.classes.models import Class, Enrollment, School
from tutoring_core.scheduling import selectors, services
from tutoring_core.scheduling.data import SessionInfo
from tutoring_core.scheduling.errors import InvalidInput, NotFound, SchedulingError, SlotTaken, StudentBusy
from tutoring_core.scheduling.forms import (
    AvailabilitySettingsForm,
    MakeTutorForm,
    OverrideFormSet,
    TutorProfileForm,
    WeeklyRuleFormSet,
    hhmm,
)
from tutoring_core.scheduling.models import Session, TutorProfile
from tutoring_core.web.views import get_class_for_user

UTC = dt.UTC
WEEKS_AHEAD = 2  # the booking page shows the next two weeks, a week at a time
TUTORS_PER_PAGE = 10


# --- lookups that 404 outside the viewer's tenant or business -------------------------------


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def _tenant_id(user: User) -> uuid.UUID:
    if user.tenant_id is None:
        raise Http404("Not found.")  # the pages are a tenant's; a tenant-less account has none
    return user.tenant_id


def get_tutor_for_user(request: HttpRequest, tutor_id: uuid.UUID, *, manage: bool = False) -> TutorProfile:
    """The tutor's profile in the viewer's tenant; with manage=True only for the tutor
    themself or a district admin. 404 otherwise."""
    user = _user(request)
    profile = (
        TutorProfile.objects.select_related("user")
        .filter(user_id=tutor_id, tenant_id=user.tenant_id, user__tenant_id=user.tenant_id)
        .first()
        if user.tenant_id
        else None
    )
    if profile is None:
        raise Http404("No such tutor.")
    if manage and profile.user_id != user.pk and not is_district_admin(user):
        raise Http404("No such tutor.")
    return profile


def get_booking_for_user(request: HttpRequest, booking_id: uuid.UUID) -> Session:
    """The session, if the viewer teaches it, attends it, booked it, is a guardian of a
    participant, teaches a participant's class, or is a district admin; 404 otherwise."""
    user = _user(request)
    try:
        session = selectors.session_in_tenant(tenant_id=user.tenant_id, session_id=booking_id)
    except NotFound:
        raise Http404("No such session.") from None
    if user.pk in (session.tutor_id, session.created_by_id) or is_district_admin(user):
        return session
    students = list(session.participants.values_list("student_id", "booked_by_id"))
    if any(user.pk in pair for pair in students):
        return session
    student_ids = [s for s, _ in students]
    if wards_of(guardian=user).filter(pk__in=student_ids).exists():
        return session
    if (
        session.klass_id
        and Enrollment.objects.active()
        .filter(klass_id=session.klass_id, user=user, role=Role.TEACHER)
        .exists()
    ):
        return session
    raise Http404("No such session.")


# --- small helpers -----------------------------------------------------------------------


def _zone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def _render(
    request: HttpRequest, template: str, context: dict[str, Any], zone: zoneinfo.ZoneInfo, status: int = 200
) -> HttpResponse:
    # Templates show times in ``zone`` (the |date filter converts to the active zone).
    with timezone.override(zone):
        return render(request, template, {**context, "zone_name": str(zone)}, status=status)


def _refused(request: HttpRequest, exc: SchedulingError, back: str) -> HttpResponse:
    if exc.http_status == 404:
        raise Http404(exc.reason)
    return render(
        request, "scheduling/refused.html", {"reason": exc.reason, "back": back}, status=exc.http_status
    )


def _safe_next(request: HttpRequest, default: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return target
    return default


def _int_param(value: str | None, default: int, low: int, high: int) -> int:
    try:
        number = int(value or default)
    except ValueError:
        return default
    return min(max(number, low), high)


def _week_bounds(zone: zoneinfo.ZoneInfo, first_day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(first_day, dt.time(0), zone).astimezone(UTC)
    end = dt.datetime.combine(first_day + dt.timedelta(days=7), dt.time(0), zone).astimezone(UTC)
    return start, end


def _by_day(
    slots: Iterable[tuple[dt.datetime, dt.datetime]], zone: zoneinfo.ZoneInfo
) -> list[tuple[dt.date, list[tuple[dt.datetime, dt.datetime]]]]:
    days: dict[dt.date, list[tuple[dt.datetime, dt.datetime]]] = {}
    for start, end in slots:
        days.setdefault(start.astimezone(zone).date(), []).append((start, end))
    return sorted(days.items())


def _slot_value(tutor_id: uuid.UUID, start: dt.datetime, minutes: int) -> str:
    return f"{tutor_id}|{start.astimezone(UTC).isoformat()}|{minutes}"


def _parse_slot(value: str) -> tuple[uuid.UUID, dt.datetime, int] | None:
    try:
        tutor, start, minutes = value.split("|")
        when = dt.datetime.fromisoformat(start)
        if when.tzinfo is None:
            return None
        return uuid.UUID(tutor), when, int(minutes)
    except ValueError:
        return None


def _policy_text(session: Session) -> dict[str, Any]:
    policy = selectors.policy_for(session.tenant_id)
    profile = TutorProfile.objects.filter(user_id=session.tutor_id).first()
    cancel = profile.cancel_notice_hours if profile and profile.cancel_notice_hours is not None else None
    move = (
        profile.reschedule_notice_hours if profile and profile.reschedule_notice_hours is not None else None
    )
    return {
        "cancel_hours": policy.cancel_notice_hours if cancel is None else cancel,
        "reschedule_hours": policy.reschedule_notice_hours if move is None else move,
        "late_cancel_allowed": policy.late_cancel_allowed,
    }


# --- the class's booking page ---------------------------------------------------------------


def _bookable_students(user: User, klass: Class) -> list[User]:
    """Students of the class the viewer may pick: themself, their wards, or (teacher of the
    class, district admin) every student. The service still decides each booking."""
    students = User.objects.filter(
        enrollments__klass=klass,
        enrollments__role=Role.STUDENT,
        enrollments__status=Enrollment.Status.ACTIVE,
        is_active=True,
    ).order_by("last_name", "first_name", "pk")
    teaches = Enrollment.objects.active().filter(klass=klass, user=user, role=Role.TEACHER).exists()
    if teaches or is_district_admin(user):
        return list(students.distinct())
    return list(students.filter(Q(pk=user.pk) | Q(pk__in=wards_of(guardian=user).values("pk"))).distinct())


def _booking_context(
    request: HttpRequest, klass: Class, tutor_id: uuid.UUID | None, source: Any
) -> dict[str, Any]:
    user = _user(request)
    zone = _zone(user.time_zone)
    week = _int_param(source.get("week"), 0, 0, WEEKS_AHEAD - 1)
    wanted = _int_param(source.get("duration"), 0, 0, 24 * 60)
    serving = selectors.tutor_profiles(tenant=user.tenant, class_id=klass.pk)  # type: ignore[arg-type]
    if tutor_id is not None:
        serving = serving.filter(user_id=tutor_id)
    # A page of tutors at a time; their free slots are read together (a few queries per page).
    tutor_page = Paginator(serving, TUTORS_PER_PAGE).get_page(source.get("page"))
    profiles = list(tutor_page.object_list)
    if tutor_id is not None and not profiles:
        raise Http404("No such tutor.")
    now = timezone.now()
    first_day = now.astimezone(zone).date() + dt.timedelta(days=7 * week)
    start, end = _week_bounds(zone, first_day)
    start = max(start, now)
    lengths = sorted({m for p in profiles for m in p.session_lengths})
    tutors = []
    for profile, minutes, free in services.tutors_slots(
        profiles=profiles, start=start, end=end, duration_min=wanted or None, now=now
    ):
        tutors.append(
            {
                "profile": profile,
                "minutes": minutes,
                "days": [
                    (day, [(s, e, _slot_value(profile.user_id, s, minutes)) for s, e in items])
                    for day, items in _by_day(free, zone)
                ],
            }
        )
    students = _bookable_students(user, klass)
    books_for_self = len(students) == 1 and students[0].pk == user.pk
    chosen = source.get("student") or (str(user.pk) if books_for_self else "")
    return {
        "klass": klass,
        "tutors": tutors,
        "students": students,
        "chosen_student": chosen,
        "picks_student": bool(students) and not books_for_self,
        "lengths": lengths,
        "duration": wanted,
        "week": week,
        "weeks": range(WEEKS_AHEAD),
        "week_start": first_day,
        "week_end": first_day + dt.timedelta(days=6),
        "one_tutor": tutor_id,
        "zone": zone,
        "tutor_page": tutor_page,
    }


@login_required
def class_booking(
    request: HttpRequest, class_id: uuid.UUID, tutor_id: uuid.UUID | None = None
) -> HttpResponse:
    klass = get_class_for_user(request, class_id)
    context = _booking_context(request, klass, tutor_id, request.GET)
    return _render(request, "scheduling/booking.html", context, context["zone"])


def _own_hold(*, user: User, tutor: User, student: User, start: dt.datetime) -> Session | None:
    return (
        Session.objects.blocking(timezone.now())
        .filter(
            tenant_id=_tenant_id(user),
            tutor=tutor,
            start=start,
            status=Session.Status.HELD,
            created_by=user,
            participants__student=student,
        )
        .first()
    )


@login_required
@require_http_methods(["GET", "POST"])
def class_booking_hold(
    request: HttpRequest, class_id: uuid.UUID, tutor_id: uuid.UUID | None = None
) -> HttpResponse:
    """First click: hold the chosen slot for a few minutes, then show the confirm step."""
    klass = get_class_for_user(request, class_id)
    if request.method != "POST":  # a reload of this address: back to the page it came from
        if tutor_id is not None:
            return redirect("scheduling:tutor_booking", class_id=klass.pk, tutor_id=tutor_id)
        return redirect("scheduling:class_booking", class_id=klass.pk)
    user = _user(request)
    parsed = _parse_slot(request.POST.get("slot", ""))
    students = {str(s.pk): s for s in _bookable_students(user, klass)}
    wanted = request.POST.get("student") or (str(user.pk) if list(students) == [str(user.pk)] else "")
    student = students.get(wanted)
    taken = None
    status = 400
    if parsed is None:
        error = "Choose a time from the list."
    elif student is None:
        error = (
            "Choose the student the session is for."
            if students
            else "You cannot book sessions for anyone in this class."
        )
    else:
        tutor_pk, start, minutes = parsed
        tutor = get_tutor_for_user(request, tutor_pk).user
        try:
            session = services.booking_create(
                actor=user,
                tutor=tutor,
                student=student,
                start=start,
                duration_min=minutes,
                klass=klass,
                hold=True,
            )
        except SlotTaken as exc:
            mine = _own_hold(user=user, tutor=tutor, student=student, start=start)
            if mine is not None:  # a double click: the first click's hold is this one
                return redirect("scheduling:booking_confirm", booking_id=mine.pk)
            taken = {
                "tutor": tutor,
                "alternatives": [(s, e, _slot_value(tutor.pk, s, minutes)) for s, e in exc.alternatives],
            }
            error = (
                exc.reason  # the student has another session then
                if isinstance(exc, StudentBusy)
                else "Someone has just booked that time. Choose one of the nearest free times below, or another time."
            )
            status = 409
        except SchedulingError as exc:
            if exc.http_status == 404:
                raise Http404(exc.reason) from None
            error, status = exc.reason, exc.http_status
        else:
            return redirect("scheduling:booking_confirm", booking_id=session.pk)
    # Shown again with the free times as they are now, the refusal on top.
    context = _booking_context(request, klass, tutor_id, request.POST)
    context.update(error=error, taken=taken)
    return _render(request, "scheduling/booking.html", context, context["zone"], status=status)


@login_required
@require_http_methods(["GET", "POST"])
def booking_confirm(request: HttpRequest, booking_id: uuid.UUID) -> HttpResponse:
    """Second click: the details and the cancellation policy, then Confirm."""
    session = get_booking_for_user(request, booking_id)
    user = _user(request)
    error = ""
    if request.method == "POST":
        try:
            services.booking_confirm(actor=user, session_id=session.pk)
        except SchedulingError as exc:
            if exc.http_status == 404:
                raise Http404(exc.reason) from None
            error = exc.reason
        else:
            messages.success(request, "Your session is booked.")
            return redirect("scheduling:my_sessions")
    info = selectors.session_info(session.pk)
    context = {"info": info, "error": error, "now": timezone.now(), **_policy_text(session)}
    if session.klass_id:
        context["back"] = reverse("scheduling:class_booking", kwargs={"class_id": session.klass_id})
    return _render(
        request, "scheduling/confirm.html", context, _zone(user.time_zone), status=400 if error else 200
    )


# --- upcoming sessions, cancel, reschedule ---------------------------------------------------


def _upcoming_for(user: User, now: dt.datetime) -> list[SessionInfo]:
    horizon = now + dt.timedelta(days=730)
    seen = {s.id: s for s in selectors.sessions_for_person(user.pk, now, horizon)}
    # A teacher or admin who booked for a student sees those sessions too.
    booked = Session.objects.filter(tenant_id=_tenant_id(user), end__gt=now).filter(
        Q(created_by=user) | Q(participants__booked_by=user)
    )
    for info in selectors.sessions_info(Session.objects.filter(pk__in=booked.values("pk"))):
        seen.setdefault(info.id, info)
    active = [s for s in seen.values() if s.status in (Session.Status.BOOKED, Session.Status.HELD)]
    return sorted(active, key=lambda s: (s.start, str(s.id)))


@login_required
def my_sessions(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    now = timezone.now()
    sessions = _upcoming_for(user, now)
    wards = list(wards_of(guardian=user))
    groups = []
    own = [
        s for s in sessions if s.tutor_id == user.pk or any(p.person_id == user.pk for p in s.participants)
    ]
    groups.append({"title": "Your sessions", "sessions": own})
    shown = {s.id for s in own}
    for ward in wards:
        theirs = [s for s in sessions if any(p.person_id == ward.pk for p in s.participants)]
        groups.append({"title": f"{ward.full_name}'s sessions", "sessions": theirs})
        shown |= {s.id for s in theirs}
    rest = [s for s in sessions if s.id not in shown]
    if rest:
        groups.append({"title": "Sessions you booked for others", "sessions": rest})
    feed = reverse("calendars:settings")  # the person's secret iCal feed lives there
    return _render(
        request,
        "scheduling/my_sessions.html",
        {"groups": groups, "now": now, "feed_url": feed},
        _zone(user.time_zone),
    )


@login_required
def booking_cancel(request: HttpRequest, booking_id: uuid.UUID) -> HttpResponse:
    session = get_booking_for_user(request, booking_id)  # 404 first: the method tells nothing
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    back = _safe_next(request, reverse("scheduling:my_sessions"))
    try:
        services.booking_cancel(
            actor=_user(request), session_id=session.pk, reason=request.POST.get("reason", "")
        )
    except SchedulingError as exc:
        return _refused(request, exc, back)
    messages.success(
        request, "The session is cancelled." if session.status != "held" else "The time is released."
    )
    return redirect(back)


@login_required
@require_http_methods(["GET", "POST"])
def booking_reschedule(request: HttpRequest, booking_id: uuid.UUID) -> HttpResponse:
    session = get_booking_for_user(request, booking_id)
    user = _user(request)
    zone = _zone(user.time_zone)
    minutes = int((session.end - session.start).total_seconds() // 60)
    source = request.POST if request.method == "POST" else request.GET
    week = _int_param(source.get("week"), 0, 0, WEEKS_AHEAD - 1)
    error = ""
    status = 200
    taken: list[tuple[dt.datetime, dt.datetime, str]] = []
    if request.method == "POST":
        parsed = _parse_slot(request.POST.get("slot", ""))
        if parsed is None or parsed[0] != session.tutor_id:
            error, status = "Choose a new time from the list.", 400
        else:
            try:
                services.booking_reschedule(actor=user, session_id=session.pk, start=parsed[1])
            except SlotTaken as exc:
                taken = [(s, e, _slot_value(session.tutor_id, s, minutes)) for s, e in exc.alternatives]
                error, status = (
                    exc.reason
                    if isinstance(exc, StudentBusy)
                    else "Someone has just booked that time. Choose one of the nearest free times.",
                    409,
                )
            except SchedulingError as exc:
                if exc.http_status == 404:
                    raise Http404(exc.reason) from None
                error, status = exc.reason, exc.http_status
            else:
                messages.success(request, "The session has moved.")
                return redirect(_safe_next(request, reverse("scheduling:my_sessions")))
    now = timezone.now()
    first_day = now.astimezone(zone).date() + dt.timedelta(days=7 * week)
    start, end = _week_bounds(zone, first_day)
    try:
        free = services.slots_for(
            tutor=session.tutor, start=max(start, now), end=end, duration_min=minutes, now=now
        )
    except SchedulingError as exc:
        free = []
        error, status = error or exc.reason, status if error else 400
    days = [
        (day, [(s, e, _slot_value(session.tutor_id, s, minutes)) for s, e in items])
        for day, items in _by_day(free, zone)
    ]
    context = {
        "info": selectors.session_info(session.pk),
        "days": days,
        "taken": taken,
        "error": error,
        "week": week,
        "weeks": range(WEEKS_AHEAD),
        "week_start": first_day,
        **_policy_text(session),
    }
    return _render(request, "scheduling/reschedule.html", context, zone, status=status)


# --- the tutor's week and outcomes -------------------------------------------------------------


class NoTutorProfile(Exception):
    """The person holds the tutor role (from the roster or a launch) but no district admin
    has set up their tutor profile yet: the home page's tutor steps lead here."""


def _own_profile(request: HttpRequest) -> TutorProfile:
    user = _user(request)
    profile = (
        TutorProfile.objects.select_related("user").filter(user=user, tenant_id=_tenant_id(user)).first()
    )
    if profile is None:
        if Role.TUTOR in user_roles(user=user):
            raise NoTutorProfile
        raise Http404("You are not a tutor here.")
    return profile


def _not_set_up(request: HttpRequest) -> HttpResponse:
    return _render(
        request,
        "scheduling/not_set_up.html",
        {"admins_page": reverse("scheduling:tutor_list") if is_district_admin(_user(request)) else ""},
        _zone(_user(request).time_zone),
    )


@login_required
def my_week(request: HttpRequest) -> HttpResponse:
    try:
        return _week(request, _own_profile(request))
    except NoTutorProfile:
        return _not_set_up(request)


@login_required
def tutor_week(request: HttpRequest, tutor_id: uuid.UUID) -> HttpResponse:
    return _week(request, get_tutor_for_user(request, tutor_id, manage=True))


def _week(request: HttpRequest, profile: TutorProfile) -> HttpResponse:
    zone = _zone(profile.time_zone)
    now = timezone.now()
    today = now.astimezone(zone).date()
    try:
        picked = dt.date.fromisoformat(request.GET.get("week", ""))
    except ValueError:
        picked = today
    if not services.FIRST_DATE <= picked <= services.LAST_DATE:  # year 1 or 9999 would overflow
        back = reverse("scheduling:my_week") if profile.user_id == _user(request).pk else request.path
        return _refused(request, InvalidInput(services.DATE_RANGE_REASON, "week"), back)
    monday = picked - dt.timedelta(days=picked.weekday())
    start, end = _week_bounds(zone, monday)
    rows = Session.objects.filter(
        tenant_id=profile.tenant_id, tutor_id=profile.user_id, start__lt=end, end__gt=start
    ).exclude(status=Session.Status.EXPIRED)
    sessions = selectors.sessions_info(rows)
    days = []
    for offset in range(7):
        day = monday + dt.timedelta(days=offset)
        days.append((day, [s for s in sessions if s.start.astimezone(zone).date() == day]))
    own = profile.user_id == _user(request).pk
    return _render(
        request,
        "scheduling/week.html",
        {
            "profile": profile,
            "own": own,
            "days": days,
            "now": now,
            "monday": monday,
            "prev_week": (monday - dt.timedelta(days=7)).isoformat(),
            "next_week": (monday + dt.timedelta(days=7)).isoformat(),
            "availability_url": reverse("scheduling:my_availability")
            if own
            else reverse("scheduling:tutor_availability", kwargs={"tutor_id": profile.user_id}),
            "outcomes": services.OUTCOMES,
        },
        zone,
    )


@login_required
def booking_outcome(request: HttpRequest, booking_id: uuid.UUID) -> HttpResponse:
    session = get_booking_for_user(request, booking_id)  # 404 first: the method tells nothing
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    back = _safe_next(request, reverse("scheduling:my_week"))
    try:
        services.session_outcome_set(
            actor=_user(request), session_id=session.pk, outcome=request.POST.get("outcome", "")
        )
    except SchedulingError as exc:
        return _refused(request, exc, back)
    messages.success(request, "Recorded.")
    return redirect(back)


# --- availability editor -------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def my_availability(request: HttpRequest) -> HttpResponse:
    try:
        return _availability(request, _own_profile(request))
    except NoTutorProfile:
        return _not_set_up(request)


@login_required
@require_http_methods(["GET", "POST"])
def tutor_availability(request: HttpRequest, tutor_id: uuid.UUID) -> HttpResponse:
    return _availability(request, get_tutor_for_user(request, tutor_id, manage=True))


def _availability_initial(
    profile: TutorProfile,
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    settings_initial = {
        "time_zone": profile.time_zone,
        "buffer_before_min": profile.buffer_before_min,
        "buffer_after_min": profile.buffer_after_min,
        "min_notice_min": profile.min_notice_min,
        "window_days": profile.window_days,
        "daily_cap": profile.daily_cap,
    }
    weekly = [
        {"weekday": r.weekday, "start": hhmm(r.start_minute), "end": hhmm(r.end_minute)}
        for r in profile.rules.all()
    ]
    overrides = [
        {
            "date": o.date,
            "unavailable": o.unavailable,
            "start": hhmm(o.start_minute),
            "end": hhmm(o.end_minute),
        }
        for o in profile.overrides.all()
    ]
    return settings_initial, weekly, overrides


def _place_error(
    field: str | None, reason: str, form: Any, weekly: Any, overrides: Any, mapping: dict[str, Any]
) -> None:
    """Put a service refusal next to the input it names ("weekly[2].end" -> that row's end)."""
    if field and field.startswith(("weekly[", "overrides[")):
        kind, _, rest = field.partition("[")
        index_text, _, name = rest.partition("]")
        row = mapping[kind][int(index_text)]
        target = weekly if kind == "weekly" else overrides
        name = name.lstrip(".") or "start"
        target.forms[row].add_error(name if name in target.forms[row].fields else None, reason)
    elif field and field in form.fields:
        form.add_error(field, reason)
    else:
        form.add_error(None, reason)


def _availability(request: HttpRequest, profile: TutorProfile) -> HttpResponse:
    user = _user(request)
    zone = _zone(profile.time_zone)
    settings_initial, weekly_initial, overrides_initial = _availability_initial(profile)
    status = 200
    if request.method == "POST":
        form = AvailabilitySettingsForm(request.POST)
        weekly = WeeklyRuleFormSet(request.POST, prefix="weekly")
        overrides = OverrideFormSet(request.POST, prefix="overrides")
        if form.is_valid() and weekly.is_valid() and overrides.is_valid():
            mapping: dict[str, list[int]] = {"weekly": [], "overrides": []}
            rules = []
            for index, row in enumerate(weekly.forms):
                data = row.cleaned_data
                if not data or data.get("DELETE") or data.get("start") is None:
                    continue
                mapping["weekly"].append(index)
                rules.append(
                    {"weekday": data["weekday"], "start_minute": data["start"], "end_minute": data["end"]}
                )
            dated = []
            for index, row in enumerate(overrides.forms):
                data = row.cleaned_data
                if not data or data.get("DELETE") or not data.get("date"):
                    continue
                mapping["overrides"].append(index)
                if data["unavailable"]:
                    dated.append({"date": data["date"], "unavailable": True})
                else:
                    dated.append(
                        {"date": data["date"], "start_minute": data["start"], "end_minute": data["end"]}
                    )
            try:
                services.availability_set(
                    actor=user,
                    tutor=profile.user,
                    time_zone=form.cleaned_data["time_zone"],
                    weekly=rules,
                    overrides=dated,
                    buffer_before_min=form.cleaned_data["buffer_before_min"],
                    buffer_after_min=form.cleaned_data["buffer_after_min"],
                    min_notice_min=form.cleaned_data["min_notice_min"],
                    window_days=form.cleaned_data["window_days"],
                    daily_cap=form.cleaned_data["daily_cap"],
                )
            except SchedulingError as exc:
                if exc.http_status == 404:
                    raise Http404(exc.reason) from None
                _place_error(exc.field, exc.reason, form, weekly, overrides, mapping)
            else:
                messages.success(
                    request, "Your availability is saved." if profile.user_id == user.pk else "Saved."
                )
                return redirect(request.path)
        status = 400
    else:
        form = AvailabilitySettingsForm(initial=settings_initial)
        weekly = WeeklyRuleFormSet(initial=weekly_initial, prefix="weekly")
        overrides = OverrideFormSet(initial=overrides_initial, prefix="overrides")
    return _render(
        request,
        "scheduling/availability.html",
        {"profile": profile, "form": form, "weekly": weekly, "overrides": overrides},
        zone,
        status=status,
    )


# --- district admin: tutors -----------------------------------------------------------------------


def _require_admin(request: HttpRequest) -> User:
    user = _user(request)
    if not is_district_admin(user):
        raise Http404("Not found.")
    return user


STUDENT_SEARCH_LIMIT = 20


def _students_to_book(admin: User, query: str) -> list[dict[str, Any]] | None:
    """A district admin books any student of the district: students whose name, email or
    username contains ``query``, each with their classes (whose booking pages list the
    tutors who serve them). None when nothing was asked."""
    if len(query) < 2:
        return None
    students = (
        User.objects.filter(
            tenant_id=_tenant_id(admin),
            is_active=True,
            enrollments__role=Role.STUDENT,
            enrollments__status=Enrollment.Status.ACTIVE,
        )
        .filter(
            Q(first_name__icontains=query)
            | Q(last_name__icontains=query)
            | Q(email__icontains=query)
            | Q(username__icontains=query)
        )
        .distinct()
        .order_by("last_name", "first_name", "pk")[:STUDENT_SEARCH_LIMIT]
    )
    found = []
    for student in students:
        classes = Class.objects.filter(
            tenant_id=student.tenant_id,
            enrollments__user=student,
            enrollments__role=Role.STUDENT,
            enrollments__status=Enrollment.Status.ACTIVE,
        ).order_by("title", "pk")
        found.append({"student": student, "classes": list(classes.distinct())})
    return found


@login_required
@require_http_methods(["GET", "POST"])
def tutor_list(request: HttpRequest) -> HttpResponse:
    user = _require_admin(request)
    form = MakeTutorForm(request.POST or None)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            wanted = form.cleaned_data["person"].strip()
            person = User.objects.filter(
                Q(email__iexact=wanted) | Q(username=wanted), tenant_id=_tenant_id(user), is_active=True
            ).first()
            if person is None:
                form.add_error("person", "Nobody in your district has that email or username.")
            else:
                try:
                    services.tutor_profile_set(actor=user, person=person)
                except SchedulingError as exc:
                    form.add_error("person", exc.reason)
                else:
                    messages.success(request, f"{person.full_name or person.username} is a tutor now.")
                    return redirect("scheduling:tutor_profile", tutor_id=person.pk)
    profiles = (
        TutorProfile.objects.filter(tenant_id=_tenant_id(user))
        .select_related("user")
        .order_by("user__last_name", "user__first_name", "pk")
    )
    query = request.GET.get("q", "").strip()[:100]
    return _render(
        request,
        "scheduling/tutors.html",
        {"profiles": profiles, "form": form, "q": query, "found": _students_to_book(user, query)},
        _zone(user.time_zone),
        status=status,
    )


@login_required
@require_http_methods(["GET", "POST"])
def tutor_profile(request: HttpRequest, tutor_id: uuid.UUID) -> HttpResponse:
    user = _require_admin(request)
    profile = get_tutor_for_user(request, tutor_id)
    schools = [
        (str(s.pk), s.name) for s in School.objects.filter(tenant_id=_tenant_id(user)).order_by("name")
    ]
    classes = [
        (str(c.pk), c.title) for c in Class.objects.filter(tenant_id=_tenant_id(user)).order_by("title")
    ]
    initial = {
        "subjects": ", ".join(profile.subjects),
        "grade_levels": ", ".join(profile.grade_levels),
        "languages": ", ".join(profile.languages),
        "bio": profile.bio,
        "time_zone": profile.time_zone,
        "session_lengths": ", ".join(str(m) for m in profile.session_lengths),
        "is_active": profile.is_active,
        "school_ids": [str(pk) for pk in profile.schools.values_list("pk", flat=True)],
        "class_ids": [str(pk) for pk in profile.classes.values_list("pk", flat=True)],
    }
    form = TutorProfileForm(request.POST or None, initial=initial, schools=schools, classes=classes)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                services.tutor_profile_set(actor=user, person=profile.user, **form.service_fields())
            except SchedulingError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, exc.reason)
            else:
                messages.success(request, "The tutor's profile is saved.")
                return redirect("scheduling:tutor_profile", tutor_id=profile.user_id)
    return _render(
        request,
        "scheduling/tutor_profile.html",
        {"profile": profile, "form": form},
        _zone(user.time_zone),
        status=status,
    )
