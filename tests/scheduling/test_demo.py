"""The demo district's tutors: profiles, weekly hours and booked sessions, loaded twice."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import time_machine
from django.core.management import call_command
from django.urls import reverse

from tutoring_core.accounts.models import Role, RoleAssignment, User
from tutoring_core.scheduling.models import Series, Session, SessionParticipant, TutorProfile

pytestmark = pytest.mark.django_db


def test_demo_tutors_have_hours_and_sessions(settings: Any, client: Any) -> None:
    settings.DEMO_MODE = True
    # Monday 4 January 2027, 12:00 UTC.
    with time_machine.travel(dt.datetime(2027, 1, 4, 12, tzinfo=dt.UTC), tick=False):
        call_command("demo_load", "--quiet-logins")
        call_command("demo_load", "--quiet-logins")  # again: nothing changes

    tutor1 = User.objects.get(username="tutor1@demo")
    tutor2 = User.objects.get(username="tutor2@demo")
    profile1 = TutorProfile.objects.get(user=tutor1)
    assert (profile1.subjects, profile1.time_zone) == (["Algebra", "Reading"], "America/Chicago")
    assert sorted(profile1.classes.values_list("code", flat=True)) == ["ALG1", "ELA7"]
    assert [(r.weekday, r.start_minute, r.end_minute) for r in profile1.rules.all()] == [
        (day, 900, 1080) for day in range(5)
    ]
    assert RoleAssignment.objects.filter(user=tutor2, role=Role.TUTOR, is_active=True).count() == 1
    # Every other 45-minute slot from the next day: 15:00 and 16:30 Chicago on Tuesday 5 January.
    # Then the teacher's group session on Thursday 7 January, 15:00 Chicago.
    sessions = Session.objects.filter(tutor=tutor1).order_by("start")
    assert [(s.start, s.status, s.klass.code if s.klass else "", s.capacity) for s in sessions] == [
        (dt.datetime(2027, 1, 5, 21, tzinfo=dt.UTC), "booked", "ALG1", 1),
        (dt.datetime(2027, 1, 5, 22, 30, tzinfo=dt.UTC), "booked", "ALG1", 1),
        (dt.datetime(2027, 1, 7, 21, tzinfo=dt.UTC), "booked", "ALG1", 4),
    ]
    assert list(
        SessionParticipant.objects.filter(session__tutor=tutor1)
        .order_by("session__start", "created_at")
        .values_list("student__username", "booked_by__username")
    ) == [
        ("student1@demo", "admin@demo"),
        ("student2@demo", "admin@demo"),
        ("student3@demo", "teacher@demo"),
        ("student2@demo", "teacher@demo"),
    ]
    # tutor2: one session for student4, and the guardian's weekly series for student1
    # (Thursdays 16:00 Chicago, six weeks).
    series = Series.objects.get(tutor=tutor2)
    assert (series.created_by.username, series.student.username) == ("guardian@demo", "student1@demo")
    assert list(Session.objects.filter(series=series).values_list("start", "status")) == [
        (dt.datetime(2027, 1, 7, 22, tzinfo=dt.UTC) + dt.timedelta(weeks=n), "booked") for n in range(6)
    ]
    assert Session.objects.filter(tutor=tutor2, series__isnull=True).count() == 1

    # Every demo login sees sessions on its pages.
    seen = {}
    with time_machine.travel(dt.datetime(2027, 1, 4, 12, tzinfo=dt.UTC), tick=False):
        for login in ("admin", "teacher", "tutor1", "tutor2", "student1", "student3", "guardian"):
            client.force_login(User.objects.get(username=f"{login}@demo"))
            groups = client.get(reverse("scheduling:my_sessions")).context["groups"]
            seen[login] = {group["title"]: len(group["sessions"]) for group in groups if group["sessions"]}
        client.force_login(tutor1)
        week = client.get(reverse("scheduling:my_week"), {"week": "2027-01-04"})
        assert sum(len(items) for _day, items in week.context["days"]) == 3
    assert seen == {
        "admin": {"Sessions you booked for others": 3},
        "teacher": {"Sessions you booked for others": 1},
        "tutor1": {"Your sessions": 3},
        "tutor2": {"Your sessions": 7},
        "student1": {"Your sessions": 7},
        "student3": {"Your sessions": 1},
        "guardian": {"Ava Nguyen's sessions": 7},
    }
