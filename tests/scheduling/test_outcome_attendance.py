"""An outcome set outside the room (the tutor's form on the week page, the API's outcome
endpoint) is each student's attendance in progress too, recorded as a tutor's correction
(versioned, audited once), so the reports agree with the session (issue 15 point 4). Another
tenant's user gets 404 and nothing is written."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import time_machine
from django.test import Client
from django.urls import reverse

from tests.api.conftest import client_for
from tests.scheduling.factories import NOW, WED_10, World, make_world
from tutoring_core.accounts.models import AuditLog
from tutoring_core.progress.models import SessionAttendance, SessionAttendanceHistory
from tutoring_core.scheduling import services
from tutoring_core.scheduling.models import Session
from tutoring_core.video import services as video
from tutoring_core.video.models import Presence

AFTER = WED_10 + dt.timedelta(hours=1, minutes=5)


@pytest.fixture
def world(db: Any) -> World:
    return make_world()


@pytest.fixture
def frozen() -> Iterator[Any]:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def _booked(world: World) -> Session:
    return services.booking_create(
        actor=world.student, tutor=world.tutor, student=world.student, start=WED_10, duration_min=60
    )


def _rows(session: Session) -> list[tuple[Any, ...]]:
    return [
        (
            row.person_id,
            row.outcome,
            row.source,
            row.corrected_by_id,
            row.corrected_at,
            row.version,
            row.session_start,
            row.session_end,
            row.class_id,
            row.tenant_id,
        )
        for row in SessionAttendance.objects.filter(session_id=session.pk).order_by("person_id")
    ]


def _audits(action: str) -> list[dict[str, Any]]:
    return list(
        AuditLog.objects.filter(action=action).order_by("created_at").values_list("details", flat=True)
    )


def test_the_api_outcome_is_the_students_attendance(world: World, frozen: Any) -> None:
    session = _booked(world)
    url = f"/api/v1/bookings/{session.pk}/outcome"
    frozen.move_to(AFTER)
    # Another tenant's tutor: 404, nothing written.
    outsider_api = client_for(world.outsider_tutor)
    audits = AuditLog.objects.count()  # the booking's and the tokens'
    outsider = outsider_api.post(url, {"outcome": "no_show"})
    assert outsider.status_code == 404
    assert (SessionAttendance.objects.count(), AuditLog.objects.count()) == (0, audits)

    done = client_for(world.tutor).post(url, {"outcome": "no_show"})
    assert done.status_code == 200, done.content
    expected = (
        world.student.pk,
        "no_show",
        "tutor_correction",
        world.tutor.pk,
        AFTER,
        1,
        WED_10,
        WED_10 + dt.timedelta(hours=1),
        session.klass_id,
        world.tenant.pk,
    )
    assert _rows(session) == [expected]
    assert SessionAttendanceHistory.objects.count() == 0
    first_audit = {
        "session": str(session.pk),
        "person": str(world.student.pk),
        "from": "",
        "to": "no_show",
        "version": 1,
    }
    assert _audits("progress.attendance.correct") == [first_audit]
    # The same outcome again records nothing more in progress.
    assert client_for(world.tutor).post(url, {"outcome": "no_show"}).status_code == 200
    assert _rows(session) == [expected]
    assert _audits("progress.attendance.correct") == [first_audit]
    # The tutor changes their mind: a second version, the first kept in the history, audited once.
    assert client_for(world.tutor).post(url, {"outcome": "attended"}).status_code == 200
    assert _rows(session) == [(*expected[:1], "attended", *expected[2:5], 2, *expected[6:])]
    assert list(SessionAttendanceHistory.objects.values_list("version", "outcome", "source")) == [
        (1, "no_show", "tutor_correction")
    ]
    assert _audits("progress.attendance.correct")[1:] == [
        {
            "session": str(session.pk),
            "person": str(world.student.pk),
            "from": "no_show",
            "to": "attended",
            "version": 2,
        }
    ]
    # The tutor did not come: no fault of the student's, their attendance stays as it was.
    assert client_for(world.tutor).post(url, {"outcome": "tutor_no_show"}).status_code == 200
    assert _rows(session)[0][1:] == ("attended", *expected[2:5], 2, *expected[6:])
    assert AuditLog.objects.filter(action="progress.attendance.correct").count() == 2


def test_the_form_corrects_what_the_room_measured(world: World, frozen: Any) -> None:
    session = _booked(world)
    frozen.move_to(WED_10)
    room_id = video.room_access(user=world.tutor, session_id=session.pk).room_id
    frozen.move_to(WED_10 + dt.timedelta(hours=1))
    video.attendance_finalize(actor=world.tutor, room_id=room_id)  # nobody came: a no-show
    assert [(*row[1:3], row[5]) for row in _rows(session)] == [("no_show", "signaling", 1)]
    frozen.move_to(AFTER)
    outsider = Client()
    outsider.force_login(world.outsider_tutor)
    url = reverse("scheduling:booking_outcome", kwargs={"booking_id": session.pk})
    assert outsider.post(url, {"outcome": "attended"}).status_code == 404
    assert [(*row[1:3], row[5]) for row in _rows(session)] == [("no_show", "signaling", 1)]
    assert _audits("progress.attendance.correct") == []

    tutor = Client()
    tutor.force_login(world.tutor)
    assert tutor.post(url, {"outcome": "attended"}).status_code == 302
    assert _rows(session) == [
        (
            world.student.pk,
            "attended",
            "tutor_correction",
            world.tutor.pk,
            AFTER,
            2,
            WED_10,
            WED_10 + dt.timedelta(hours=1),
            session.klass_id,
            world.tenant.pk,
        )
    ]
    assert list(SessionAttendanceHistory.objects.values_list("version", "outcome", "source")) == [
        (1, "no_show", "signaling")
    ]
    assert _audits("progress.attendance.correct") == [
        {
            "session": str(session.pk),
            "person": str(world.student.pk),
            "from": "no_show",
            "to": "attended",
            "version": 2,
        }
    ]
    session.refresh_from_db()
    assert (session.status, session.outcome) == ("completed", "attended")


def test_attended_on_the_form_keeps_the_rooms_late(world: World, frozen: Any) -> None:
    """The form knows attended only; a room's late (or left early) is an attendance already."""
    session = _booked(world)
    frozen.move_to(WED_10)
    room_id = video.room_access(user=world.tutor, session_id=session.pk).room_id
    Presence.objects.create(
        room_id=room_id,
        person=world.student,
        peer_id="s" * 32,
        joined_at=WED_10 + dt.timedelta(minutes=10),
        left_at=WED_10 + dt.timedelta(hours=1),
    )
    frozen.move_to(WED_10 + dt.timedelta(hours=1))
    video.attendance_finalize(actor=world.tutor, room_id=room_id)
    frozen.move_to(AFTER)
    assert (
        client_for(world.tutor)
        .post(f"/api/v1/bookings/{session.pk}/outcome", {"outcome": "attended"})
        .status_code
        == 200
    )
    assert [(*row[1:3], row[5]) for row in _rows(session)] == [("late", "signaling", 1)]
    assert _audits("progress.attendance.correct") == []
