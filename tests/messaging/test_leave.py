"""One student leaving a group session that goes on: the leaver's side hears their place is
cancelled (with an iTIP CANCEL), the tutor hears who is left; the other students are not
told, and their own notices still waiting are not dropped."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tests.factories import EnrollmentFactory
from tests.peers.smtp import SmtpSink, calendar_parts
from tests.scheduling.factories import WED_10, World
from tutoring_core.accounts.models import Role
from tutoring_core.messaging.delivery import notification_deliver
from tutoring_core.messaging.models import Notification
from tutoring_core.scheduling import services

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen")]
WHEN = "Wednesday 3 March 2027, 10:00 to 11:00 (America/Chicago)"


def _group(world: World) -> Any:
    EnrollmentFactory(klass=world.klass, user=world.other_student, role=Role.STUDENT)
    group = services.booking_create(
        actor=world.teacher,
        tutor=world.tutor,
        student=world.student,
        start=WED_10,
        duration_min=60,
        klass=world.klass,
        capacity=3,
    )
    services.group_join(actor=world.teacher, session_id=group.pk, student=world.other_student)
    return group


def _event(message: Any) -> tuple[str, Any]:
    ((method, cal),) = calendar_parts(message)
    (event,) = cal.walk("VEVENT")
    return method, event


def test_a_student_leaving_tells_them_and_the_tutor(
    world: World, sink: SmtpSink, eager: None, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        group = _group(world)
    sink.clear()

    with django_capture_on_commit_callbacks(execute=True):
        services.booking_cancel(actor=world.other_student, session_id=group.pk, reason="Football")
    group.refresh_from_db()
    assert (group.status, group.sequence) == ("booked", 2)  # Ben's join was 1

    mails = {envelope[1][0]: message for envelope, message in zip(sink.envelopes, sink.messages, strict=True)}
    # The leaver, whoever booked their place (the teacher) and the tutor; not Ava or her guardian.
    assert sorted(mails) == sorted([world.other_student.email, world.teacher.email, world.tutor.email])
    assert sorted(
        Notification.objects.filter(kind="left").values_list("recipient__username", "sequence", "status")
    ) == [("north-ben", 2, "sent"), ("north-teacher", 2, "sent"), ("north-tutor", 2, "sent")]

    leaver = mails[world.other_student.email]
    assert leaver["Subject"] == f"Place in tutoring session cancelled: {WHEN}"
    body = leaver.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert (
        "Ben Carter's place in a group tutoring session has been cancelled; the session goes on without them."
        in body
    )
    method, event = _event(leaver)
    assert (method, int(event["sequence"]), str(event["status"])) == ("CANCEL", 2, "CANCELLED")
    assert str(event["uid"]) == f"{group.pk}@localhost"

    tutor = mails[world.tutor.email]
    assert tutor["Subject"] == f"Ben Carter left the tutoring session: {WHEN}"
    body = tutor.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert "Ben Carter has left a group tutoring session; it goes on with the students below." in body
    assert "Student: Ava Nguyen\n" in body
    method, event = _event(tutor)
    attendees = event.get("attendee")
    assert (method, int(event["sequence"]), str(event["status"])) == ("REQUEST", 2, "CONFIRMED")
    assert [str(a) for a in (attendees if isinstance(attendees, list) else [attendees])] == [
        f"mailto:{world.student.email}"
    ]

    # Leaving twice changes nothing and tells nobody again.
    sink.clear()
    with django_capture_on_commit_callbacks(execute=True):
        services.booking_cancel(actor=world.other_student, session_id=group.pk)
    assert sink.messages == []
    assert Notification.objects.filter(kind="left").count() == 3


def test_two_leaves_each_reach_the_tutor(world: World, django_capture_on_commit_callbacks: Any) -> None:
    from tests.factories import UserFactory

    third = UserFactory(tenant=world.tenant, username="north-chloe", email="chloe@example.org")
    EnrollmentFactory(klass=world.klass, user=third, role=Role.STUDENT)
    group = _group(world)
    services.group_join(actor=world.teacher, session_id=group.pk, student=third)
    services.booking_cancel(actor=world.teacher, session_id=group.pk, student=world.other_student)
    services.booking_cancel(actor=world.teacher, session_id=group.pk, student=third)
    # (session, person, change, sequence) differ: the second leave is no duplicate of the first
    # (the two joins were sequences 1 and 2).
    assert list(
        Notification.objects.filter(kind="left", recipient=world.tutor)
        .order_by("sequence")
        .values_list("sequence", "about_person__username")
    ) == [(3, "north-ben"), (4, "north-chloe")]


def test_other_students_waiting_notices_survive_a_leave(world: World, sink: SmtpSink) -> None:
    group = _group(world)  # no worker ran: every "booked" notice is still waiting
    services.booking_cancel(actor=world.teacher, session_id=group.pk, student=world.other_student)
    waiting = Notification.objects.get(kind="booked", recipient=world.student)
    assert waiting.status == "pending"
    assert notification_deliver(notification_id=waiting.pk, now=WED_10 - dt.timedelta(days=1)) == "sent"
    # The leaver's own notice of joining is stale: their "left" one tells the current state.
    stale = Notification.objects.get(kind="joined", recipient=world.other_student)
    assert stale.status == "superseded"
    # The tutor hears of the booking still (it told them of Ava), not of Ben's join then leave.
    assert dict(Notification.objects.filter(recipient=world.tutor).values_list("kind", "status")) == {
        "booked": "pending",
        "joined": "superseded",
        "left": "pending",
    }
