"""The demo district's tutors: profiles, weekly hours and booked sessions, loaded twice."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import time_machine
from django.core.management import call_command

from tutoring_core.accounts.models import Role, RoleAssignment, User
from tutoring_core.scheduling.models import Session, SessionParticipant, TutorProfile

pytestmark = pytest.mark.django_db


def test_demo_tutors_have_hours_and_sessions(settings: Any) -> None:
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
    sessions = Session.objects.filter(tutor=tutor1).order_by("start")
    assert [(s.start, s.status, s.klass.code if s.klass else "") for s in sessions] == [
        (dt.datetime(2027, 1, 5, 21, tzinfo=dt.UTC), "booked", "ALG1"),
        (dt.datetime(2027, 1, 5, 22, 30, tzinfo=dt.UTC), "booked", "ALG1"),
    ]
    assert list(
        SessionParticipant.objects.filter(session__tutor=tutor1)
        .order_by("session__start")
        .values_list("student__username", flat=True)
    ) == ["student1@demo", "student2@demo"]
    assert Session.objects.filter(tutor=tutor2).count() == 1
