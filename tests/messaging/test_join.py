"""Students joining a group session that is already booked: every joiner's side and the
tutor hear of each join (issue 12 point 4). A join bumps the SEQUENCE, so its notices are
new rows, never deduplicated against the first booking's (session, person, kind, sequence);
the other students, whose session has not changed for them, are not told."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tests.factories import EnrollmentFactory, GuardianLinkFactory, UserFactory
from tests.peers.smtp import SmtpSink, calendar_parts
from tests.scheduling.factories import WED_10, World
from tutoring_core.accounts.models import Role
from tutoring_core.messaging.delivery import notification_deliver
from tutoring_core.messaging.models import Notification
from tutoring_core.scheduling import services

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen")]
WHEN = "Wednesday 3 March 2027, 10:00 to 11:00 (America/Chicago)"
DAY_BEFORE = WED_10 - dt.timedelta(days=1)


def _people(world: World) -> tuple[Any, Any]:
    """Ben (in the class, his guardian Hal) and Chloe (in the class), besides Ava."""
    EnrollmentFactory(klass=world.klass, user=world.other_student, role=Role.STUDENT)
    hal = UserFactory(tenant=world.tenant, username="north-hal", first_name="Hal", last_name="Carter")
    GuardianLinkFactory(tenant=world.tenant, guardian=hal, student=world.other_student)
    chloe = UserFactory(tenant=world.tenant, username="north-chloe", first_name="Chloe", last_name="Martin")
    EnrollmentFactory(klass=world.klass, user=chloe, role=Role.STUDENT)
    return hal, chloe


def _group(world: World) -> Any:
    return services.booking_create(
        actor=world.teacher,
        tutor=world.tutor,
        student=world.student,
        start=WED_10,
        duration_min=60,
        klass=world.klass,
        capacity=3,
    )


def _rows() -> list[tuple[str, str, int, str | None]]:
    return sorted(
        Notification.objects.values_list("recipient__username", "kind", "sequence", "about_person__username")
    )


def test_each_join_reaches_the_joiner_their_side_and_the_tutor(
    world: World, sink: SmtpSink, eager: None, django_capture_on_commit_callbacks: Any
) -> None:
    hal, chloe = _people(world)
    with django_capture_on_commit_callbacks(execute=True):
        group = _group(world)
    sink.clear()

    with django_capture_on_commit_callbacks(execute=True):
        services.group_join(actor=world.teacher, session_id=group.pk, student=world.other_student)
    with django_capture_on_commit_callbacks(execute=True):
        services.group_join(actor=chloe, session_id=group.pk, student=chloe)
    group.refresh_from_db()
    assert group.sequence == 2

    assert _rows() == [
        ("north-ava", "booked", 0, None),
        ("north-ben", "joined", 1, "north-ben"),
        ("north-chloe", "joined", 2, "north-chloe"),
        ("north-grace", "booked", 0, None),
        ("north-hal", "joined", 1, "north-ben"),
        ("north-teacher", "booked", 0, None),
        ("north-teacher", "joined", 1, "north-ben"),
        ("north-tutor", "booked", 0, None),
        ("north-tutor", "joined", 1, "north-ben"),
        ("north-tutor", "joined", 2, "north-chloe"),
    ]
    assert set(Notification.objects.values_list("status", flat=True)) == {"sent"}

    # Sent after the first booking was: two joins, five emails; nobody on Ava's side again.
    sent = [
        (envelope[1][0], message) for envelope, message in zip(sink.envelopes, sink.messages, strict=True)
    ]
    assert sorted(to for to, _ in sent) == sorted(
        [
            world.other_student.email,
            hal.email,
            world.teacher.email,
            world.tutor.email,
            chloe.email,
            world.tutor.email,
        ]
    )
    subjects = sorted((to, message["Subject"]) for to, message in sent)
    assert subjects == sorted(
        [
            (world.other_student.email, f"Tutoring session booked: {WHEN}"),
            (hal.email, f"Tutoring session booked: {WHEN}"),
            (world.teacher.email, f"Tutoring session booked: {WHEN}"),
            (world.tutor.email, f"Ben Carter joined the tutoring session: {WHEN}"),
            (chloe.email, f"Tutoring session booked: {WHEN}"),
            (world.tutor.email, f"Chloe Martin joined the tutoring session: {WHEN}"),
        ]
    )
    for to, message in sent:
        body = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
        ((method, cal),) = calendar_parts(message)
        (event,) = cal.walk("VEVENT")
        assert (method, str(event["uid"]), str(event["status"])) == (
            "REQUEST",
            f"{group.pk}@localhost",
            "CONFIRMED",
        )
        if to == hal.email:
            assert "A place in a group tutoring session has been booked for Ben Carter.\n" in body
        if to == chloe.email:
            assert "A place in a group tutoring session has been booked for Chloe Martin.\n" in body
            # Sent once Chloe's join committed: the event as it is then, at SEQUENCE 2.
            attendees = [str(a) for a in event.get("attendee")]
            assert int(event["sequence"]) == 2
            assert attendees == [f"mailto:{p.email}" for p in (world.student, world.other_student, chloe)]
        if message["Subject"].startswith("Chloe Martin joined"):
            assert "Chloe Martin has joined a group tutoring session.\n" in body
            assert "Students: Ava Nguyen, Ben Carter, Chloe Martin\n" in body

    # Joining again changes nothing and tells nobody.
    sink.clear()
    with django_capture_on_commit_callbacks(execute=True):
        services.group_join(actor=chloe, session_id=group.pk, student=chloe)
    assert sink.messages == []
    assert Notification.objects.count() == 10


def test_a_join_before_the_first_notices_went_out_drops_none_of_them(world: World, sink: SmtpSink) -> None:
    """No worker ran between the booking and the join: the tutor and the teacher still get
    the booking's notice and the join's; nothing is superseded."""
    _hal, _chloe = _people(world)
    group = _group(world)
    services.group_join(actor=world.teacher, session_id=group.pk, student=world.other_student)
    assert set(Notification.objects.values_list("status", flat=True)) == {"pending"}
    for row in Notification.objects.order_by("sequence", "recipient__username"):
        assert notification_deliver(notification_id=row.pk, now=DAY_BEFORE) == "sent"
    tutor_subjects = sorted(
        message["Subject"]
        for envelope, message in zip(sink.envelopes, sink.messages, strict=True)
        if envelope[1][0] == world.tutor.email
    )
    assert tutor_subjects == [
        f"Ben Carter joined the tutoring session: {WHEN}",
        f"Tutoring session booked: {WHEN}",
    ]
    # The booking's four (tutor, Ava, Grace, the teacher) and the join's four (tutor, Ben, Hal, the teacher).
    assert len(sink.messages) == 8


def test_the_first_student_leaving_drops_their_sides_waiting_booking_notice(
    world: World, sink: SmtpSink
) -> None:
    """Ava (who was booked first) leaves before her notices went out: her and her guardian's
    "booked" are stale (the session no longer concerns them); the tutor's and the teacher's
    (who booked Ben too) still go out."""
    _people(world)
    group = _group(world)
    services.group_join(actor=world.teacher, session_id=group.pk, student=world.other_student)
    services.booking_cancel(actor=world.teacher, session_id=group.pk, student=world.student)
    statuses = {
        (name, kind): status
        for name, kind, status in Notification.objects.values_list("recipient__username", "kind", "status")
    }
    assert statuses == {
        ("north-ava", "booked"): "superseded",
        ("north-grace", "booked"): "superseded",
        ("north-ava", "left"): "pending",
        ("north-grace", "left"): "pending",
        ("north-teacher", "booked"): "pending",
        ("north-teacher", "joined"): "pending",
        ("north-teacher", "left"): "pending",
        ("north-tutor", "booked"): "pending",
        ("north-tutor", "joined"): "pending",
        ("north-tutor", "left"): "pending",
        ("north-ben", "joined"): "pending",
        ("north-hal", "joined"): "pending",
    }
    for row in Notification.objects.filter(status="pending"):
        assert notification_deliver(notification_id=row.pk, now=DAY_BEFORE) == "sent"
    subjects = sorted(
        (envelope[1][0], message["Subject"])
        for envelope, message in zip(sink.envelopes, sink.messages, strict=True)
        if envelope[1][0] in (world.student.email, world.tutor.email)
    )
    assert subjects == [
        (world.student.email, f"Place in tutoring session cancelled: {WHEN}"),
        (world.tutor.email, f"Ava Nguyen left the tutoring session: {WHEN}"),
        (world.tutor.email, f"Ben Carter joined the tutoring session: {WHEN}"),
        (world.tutor.email, f"Tutoring session booked: {WHEN}"),
    ]
