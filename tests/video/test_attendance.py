"""Attendance from join/leave spans, recorded on the session through scheduling; the tutor's
correction is audited."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import time_machine
from django.test import Client

from tests import factories as f
from tests.scheduling.factories import SessionFactory, SessionParticipantFactory
from tutoring_core.accounts.models import AuditLog
from tutoring_core.progress.models import SessionAttendance
from tutoring_core.scheduling.models import Session
from tutoring_core.video import services
from tutoring_core.video.models import Attendance, Presence
from tutoring_core.video.protocol.attendance import attendance_outcome

UTC = dt.UTC
START = dt.datetime(2027, 3, 3, 16, tzinfo=UTC)
END = START + dt.timedelta(hours=1)
M = dt.timedelta(minutes=1)


@pytest.mark.parametrize(
    ("spans", "expected"),
    [
        ([], "no_show"),
        ([(START, END)], "attended"),
        ([(START + 5 * M, END)], "attended"),  # five minutes late is still on time
        ([(START + 6 * M, END)], "late"),
        ([(START, END - 6 * M)], "left_early"),
        ([(START, START + 10 * M), (START + 20 * M, END - 5 * M)], "attended"),  # a dropped connection
        ([(START + 30 * M, None)], "late"),  # still in at ``now``
        ([(START, None)], "attended"),
    ],
)
def test_outcome_rules(spans: list[Any], expected: str) -> None:
    assert (
        attendance_outcome(spans=spans, start=START, end=END, now=END, late_after=5 * M, early_before=5 * M)
        == expected
    )


def test_finalize_records_on_the_session_and_correction_is_audited(db: Any) -> None:
    tenant = f.TenantFactory(slug="north")
    tutor = f.UserFactory(tenant=tenant)
    late, absent = f.UserFactory(tenant=tenant), f.UserFactory(tenant=tenant)
    session = SessionFactory(tutor=tutor, start=START, end=END, capacity=2)
    SessionParticipantFactory(session=session, student=late)
    SessionParticipantFactory(session=session, student=absent)
    with time_machine.travel(START + 10 * M, tick=False):
        access = services.room_access(user=late, session_id=session.pk)
        Presence.objects.create(
            room_id=access.room_id, person=late, peer_id="a" * 32, joined_at=START + 10 * M
        )
    with time_machine.travel(END, tick=False):
        rows = services.attendance_finalize(actor=tutor, room_id=access.room_id)
        again = services.attendance_finalize(actor=tutor, room_id=access.room_id)  # repeat: nothing new
    assert {r.person_id: r.outcome for r in rows} == {late.pk: "late", absent.pk: "no_show"}
    assert again == rows
    session.refresh_from_db()
    assert session.status == Session.Status.COMPLETED
    assert dict(session.participants.values_list("student_id", "outcome")) == {
        late.pk: "attended",
        absent.pk: "no_show",
    }
    assert Presence.objects.get().left_at == END

    client = Client()
    with time_machine.travel(END + 5 * M, tick=False):
        client.force_login(tutor)  # in the travelled time, or the session cookie has expired
        page = client.post(
            f"/video/sessions/{session.pk}/attendance/", {"person": str(absent.pk), "outcome": "attended"}
        )
    assert page.status_code == 302
    assert page["Location"] == f"/video/sessions/{session.pk}/attendance/"
    row = Attendance.objects.get(person=absent)
    assert (row.outcome, row.corrected_by_id) == ("attended", tutor.pk)
    assert session.participants.get(student=absent).outcome == "attended"
    log = AuditLog.objects.get(action="progress.attendance.correct")
    record = SessionAttendance.objects.get(person=absent)
    assert (log.actor_id, log.target_id) == (tutor.pk, str(record.pk))
    assert log.details == {
        "session": str(session.pk),
        "person": str(absent.pk),
        "from": "no_show",
        "to": "attended",
        "version": 2,
    }

    bad = client.post(
        f"/video/sessions/{session.pk}/attendance/", {"person": str(absent.pk), "outcome": "asleep"}
    )
    assert bad.status_code == 400
    assert "Give one of: attended, late, left_early, no_show." in bad.content.decode()
    student_view = Client()
    student_view.force_login(late)
    assert student_view.get(f"/video/sessions/{session.pk}/attendance/").status_code == 403
    assert Attendance.objects.get(person=absent).outcome == "attended"
