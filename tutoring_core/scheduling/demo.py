"""Demo tutors for `make run`: profiles, weekly hours and booked sessions for every role.

Registered in settings.DEMO_LOADERS; runs after the core's demo district is loaded.
What each demo login sees: the tutors their week (one-to-one sessions, a group session
and a weekly series); the students their upcoming sessions (student3 in the group);
the teacher the group session they booked and filled; the guardian the weekly series
they booked for their child (student1); the district admin everything, and the Tutors
page. Everything is booked through the services, as a person would. Loading it twice
changes nothing (profiles are upserts; each kind of booking is made only once).
"""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone

from tutoring_core.accounts.models import User
from tutoring_core.classes.models import Class
from tutoring_core.scheduling import services
from tutoring_core.scheduling.data import WeeklyHours
from tutoring_core.scheduling.models import Series, Session

DEMO_SLUG = "demo"

# username: subjects, class codes served, weekly hours (weekday, start, end in minutes), students
TUTORS = {
    "tutor1": (
        ["Algebra", "Reading"],
        ["ALG1", "ELA7"],
        [(day, 15 * 60, 18 * 60) for day in range(5)],
        [("student1", "ALG1"), ("student2", "ALG1")],
    ),
    "tutor2": (
        ["Biology"],
        ["BIO"],
        [(1, 16 * 60, 19 * 60), (3, 16 * 60, 19 * 60), (5, 10 * 60, 12 * 60)],
        [("student4", "BIO")],
    ),
}


def _person(username: str) -> User:
    return User.objects.get(username=f"{username}@{DEMO_SLUG}")


@transaction.atomic
def demo_load() -> None:
    admin = _person("admin")
    for username, (subjects, codes, weekly, students) in TUTORS.items():
        tutor = _person(username)
        classes = {c.code: c for c in Class.objects.filter(tenant=admin.tenant, code__in=codes)}
        services.tutor_profile_set(
            actor=admin,
            person=tutor,
            subjects=subjects,
            languages=["English"],
            grade_levels=["7", "8", "9", "10"],
            bio=f"{tutor.full_name} tutors {', '.join(subjects)}.",
            time_zone="America/Chicago",
            session_lengths=[30, 45, 60],
            class_ids=[c.pk for c in classes.values()],
        )
        services.availability_set(
            actor=admin,
            tutor=tutor,
            time_zone="America/Chicago",
            weekly=[WeeklyHours(day, start, end) for day, start, end in weekly],
            overrides=[],
            buffer_before_min=0,
            buffer_after_min=10,
            min_notice_min=60,
            window_days=90,
            daily_cap=None,
        )
        if Session.objects.filter(tutor=tutor).exists():
            continue
        now = timezone.now()
        free = services.slots_for(
            tutor=tutor, start=now + dt.timedelta(days=1), end=now + dt.timedelta(days=15), duration_min=45
        )
        # Every other free slot, so the week view shows sessions with room between them.
        for (start, _end), (student, code) in zip(free[::2], students, strict=False):
            services.booking_create(
                actor=admin,
                tutor=tutor,
                student=_person(student),
                start=start,
                duration_min=45,
                klass=classes.get(code),
                subject=subjects[0],
            )
    _group_and_series(admin)


def _first_free(tutor: User, *, days_from: int, minutes: int = 45) -> dt.datetime | None:
    now = timezone.now()
    free = services.slots_for(
        tutor=tutor,
        start=now + dt.timedelta(days=days_from),
        end=now + dt.timedelta(days=days_from + 14),
        duration_min=minutes,
    )
    return free[0][0] if free else None


def _group_and_series(admin: User) -> None:
    """The teacher books a group session of Algebra with tutor1 and fills a second place;
    the guardian books a weekly series of Biology with tutor2 for their child."""
    teacher, tutor1, tutor2 = _person("teacher"), _person("tutor1"), _person("tutor2")
    algebra = Class.objects.get(tenant=admin.tenant, code="ALG1")
    if not Session.objects.filter(tutor=tutor1, capacity__gt=1).exists():
        start = _first_free(tutor1, days_from=3)
        if start is not None:
            group = services.booking_create(
                actor=teacher,
                tutor=tutor1,
                student=_person("student3"),
                start=start,
                duration_min=45,
                klass=algebra,
                subject="Algebra review (group)",
                capacity=4,
            )
            services.group_join(actor=teacher, session_id=group.pk, student=_person("student2"))
    if not Series.objects.filter(tutor=tutor2).exists():
        start = _first_free(tutor2, days_from=3)
        if start is not None:
            services.series_create(
                actor=_person("guardian"),
                tutor=tutor2,
                student=_person("student1"),
                start=start,
                duration_min=45,
                rrule="FREQ=WEEKLY;COUNT=6",
                klass=Class.objects.get(tenant=admin.tenant, code="BIO"),
                subject="Biology",
            )
