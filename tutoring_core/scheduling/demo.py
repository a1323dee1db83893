"""Demo tutors for `make run`: profiles, weekly hours and a few booked sessions.

Registered in settings.DEMO_LOADERS; runs after the core's demo district is loaded.
Loading it twice changes nothing (profiles are upserts; sessions are booked only for a
tutor who has none).
"""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone

from tutoring_core.accounts.models import User
from tutoring_core.classes.models import Class
from tutoring_core.scheduling import services
from tutoring_core.scheduling.data import WeeklyHours
from tutoring_core.scheduling.models import Session

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
