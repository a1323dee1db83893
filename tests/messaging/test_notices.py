"""Booking, rescheduling and cancelling email everyone concerned, with an .ics, through a
real SMTP conversation with a loopback sink (aiosmtpd)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import transaction

from tests.peers.smtp import SmtpSink, calendar_parts
from tests.scheduling.factories import WED_10, World
from tutoring_core.messaging import api as messaging_api
from tutoring_core.messaging.delivery import notification_deliver
from tutoring_core.messaging.models import Notification
from tutoring_core.scheduling import services

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen")]
H = dt.timedelta(hours=1)
UTC = dt.UTC


def _by_recipient(sink: SmtpSink) -> dict[str, Any]:
    return {envelope[1][0]: message for envelope, message in zip(sink.envelopes, sink.messages, strict=True)}


def _attendees(event: Any) -> list[str]:
    found = event.get("attendee")
    return [str(a) for a in (found if isinstance(found, list) else [found])]


def _event(message: Any) -> tuple[str, Any]:
    parts = calendar_parts(message)
    assert len(parts) == 1
    method, cal = parts[0]
    assert str(cal["method"]) == method
    (event,) = cal.walk("VEVENT")
    return method, event


def test_booking_emails_everyone_concerned_with_a_request(
    world: World, sink: SmtpSink, eager: None, django_capture_on_commit_callbacks: Any
) -> None:
    world.student.preferred_time_zone = "Europe/Berlin"
    world.student.save(update_fields=["preferred_time_zone"])
    with django_capture_on_commit_callbacks(execute=True):
        session = services.booking_create(
            actor=world.teacher,
            tutor=world.tutor,
            student=world.student,
            start=WED_10,
            duration_min=60,
            klass=world.klass,
            subject="Algebra",
        )

    mails = _by_recipient(sink)
    # The tutor, the student, the student's guardian and the teacher who booked.
    assert sorted(mails) == sorted(
        [world.tutor.email, world.student.email, world.guardian.email, world.teacher.email]
    )
    assert mails[world.student.email]["Subject"] == (
        "Tutoring session booked: Wednesday 3 March 2027, 17:00 to 18:00 (Europe/Berlin)"
    )
    # No preferred zone: the district's.
    assert mails[world.tutor.email]["Subject"] == (
        "Tutoring session booked: Wednesday 3 March 2027, 10:00 to 11:00 (America/Chicago)"
    )
    body = mails[world.student.email].get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert "When: Wednesday 3 March 2027, 17:00 to 18:00 (Europe/Berlin)\n" in body
    assert "Tutor: Priya Shah\nStudent: Ava Nguyen\nClass: Algebra I\n" in body
    for message in mails.values():
        method, event = _event(message)
        assert method == "REQUEST"
        assert str(event["uid"]) == f"{session.pk}@localhost"
        assert event.decoded("dtstart") == WED_10
        assert event.decoded("dtend") == WED_10 + H
        assert event["dtstart"].to_ical() == b"20270303T160000Z"
        assert int(event["sequence"]) == 0
        assert str(event["status"]) == "CONFIRMED"
        assert str(event["organizer"]) == f"mailto:{world.tutor.email}"
        assert _attendees(event) == [f"mailto:{world.student.email}"]
        assert str(event["summary"]) == "Tutoring: Algebra with Priya Shah"
    assert set(Notification.objects.values_list("status", "kind", "sequence")) == {("sent", "booked", 0)}
    assert Notification.objects.count() == 4


def test_reschedule_then_cancel_keep_the_uid_and_bump_the_sequence(
    world: World, sink: SmtpSink, eager: None, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        session = services.booking_create(
            actor=world.student, tutor=world.tutor, student=world.student, start=WED_10, duration_min=60
        )
    assert len(sink.messages) == 3  # tutor, student (the booker), guardian
    sink.clear()

    with django_capture_on_commit_callbacks(execute=True):
        services.booking_reschedule(actor=world.student, session_id=session.pk, start=WED_10 + 2 * H)
    mails = _by_recipient(sink)
    assert sorted(mails) == sorted([world.tutor.email, world.student.email, world.guardian.email])
    assert mails[world.guardian.email]["Subject"] == (
        "Tutoring session moved to Wednesday 3 March 2027, 12:00 to 13:00 (America/Chicago)"
    )
    method, event = _event(mails[world.tutor.email])
    assert (method, str(event["uid"]), int(event["sequence"])) == ("REQUEST", f"{session.pk}@localhost", 1)
    assert event.decoded("dtstart") == WED_10 + 2 * H
    sink.clear()

    with django_capture_on_commit_callbacks(execute=True):
        services.booking_cancel(actor=world.student, session_id=session.pk, reason="Ill")
    mails = _by_recipient(sink)
    assert sorted(mails) == sorted([world.tutor.email, world.student.email, world.guardian.email])
    assert mails[world.student.email]["Subject"] == (
        "Tutoring session cancelled: Wednesday 3 March 2027, 12:00 to 13:00 (America/Chicago)"
    )
    method, event = _event(mails[world.student.email])
    assert (method, str(event["uid"]), int(event["sequence"]), str(event["status"])) == (
        "CANCEL",
        f"{session.pk}@localhost",
        2,
        "CANCELLED",
    )


def test_a_rolled_back_booking_writes_and_sends_nothing(
    world: World, sink: SmtpSink, eager: None, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        with transaction.atomic():
            services.booking_create(
                actor=world.student, tutor=world.tutor, student=world.student, start=WED_10, duration_min=60
            )
            raise RuntimeError("the caller failed after booking")
    assert Notification.objects.count() == 0
    assert sink.messages == []


def test_a_hold_notifies_nobody_until_confirmed(
    world: World, sink: SmtpSink, eager: None, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        held = services.booking_create(
            actor=world.student,
            tutor=world.tutor,
            student=world.student,
            start=WED_10,
            duration_min=60,
            hold=True,
        )
    assert (Notification.objects.count(), sink.messages) == (0, [])
    with django_capture_on_commit_callbacks(execute=True):
        services.booking_confirm(actor=world.student, session_id=held.pk)
    assert len(sink.messages) == 3
    assert {m["Subject"].split(":")[0] for m in sink.messages} == {"Tutoring session booked"}


def test_the_same_change_told_twice_is_one_notice_each(
    world: World, sink: SmtpSink, django_capture_on_commit_callbacks: Any
) -> None:
    session = services.booking_create(
        actor=world.student, tutor=world.tutor, student=world.student, start=WED_10, duration_min=60
    )
    messaging_api.session_changed(session_id=session.pk, change="booked", actor_id=world.student.pk)
    assert Notification.objects.count() == 3
    with pytest.raises(ValueError, match=r"Unknown session change 'moved'\."):
        messaging_api.session_changed(session_id=session.pk, change="moved", actor_id=None)


def test_temporary_refusal_is_retried_later_and_a_permanent_one_is_final(
    world: World, sink: SmtpSink, frozen: Any
) -> None:
    services.booking_create(
        actor=world.student, tutor=world.tutor, student=world.student, start=WED_10, duration_min=60
    )
    row = Notification.objects.get(recipient=world.tutor)
    sink.refuse_with = (451, "4.3.0 Try again later")
    with pytest.raises(messaging_api.NotificationRetry):
        notification_deliver(notification_id=row.pk)
    row.refresh_from_db()
    now = dt.datetime.now(UTC)
    assert (row.status, row.attempts, row.next_attempt_at) == ("pending", 1, now + dt.timedelta(seconds=60))
    assert "451" in row.last_error
    # Not due yet: nobody may claim it.
    assert notification_deliver(notification_id=row.pk) == "pending"
    assert row.pk in messaging_api.notifications_sweep(now=now + dt.timedelta(seconds=60))

    frozen.shift(dt.timedelta(seconds=60))
    sink.refuse_with = (550, "5.1.1 No such mailbox")
    assert notification_deliver(notification_id=row.pk) == "failed"
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("failed", 2)
    assert row.last_error.startswith("The mail server refused: 550")
    assert sink.messages == []
    sink.refuse_with = None
    assert notification_deliver(notification_id=row.pk) == "failed"  # final: never sent again
    assert sink.messages == []
