"""Booking rules: who may book, tenant isolation, conflicts, holds, groups, cancel and reschedule."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import time_machine

from tests.factories import UserFactory
from tests.scheduling.factories import NOW, WED_10, SchedulingPolicyFactory, World, make_world
from tutoring_core.accounts.models import AuditLog, Role
from tutoring_core.messaging.models import Notification
from tutoring_core.scheduling import api, services
from tutoring_core.scheduling.models import Session, SessionParticipant

UTC = dt.UTC
H = dt.timedelta(hours=1)

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(db: Any) -> World:
    return make_world()


@pytest.fixture(autouse=True)
def frozen() -> Iterator[Any]:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def _counts() -> tuple[int, int, int]:
    return (
        Session.objects.count(),
        SessionParticipant.objects.count(),
        AuditLog.objects.filter(action__startswith="scheduling.session").count(),
    )


def _book(world: World, actor: Any = None, **kwargs: Any) -> Session:
    values: dict[str, Any] = {
        "actor": actor or world.student,
        "tutor": world.tutor,
        "student": world.student,
        "start": WED_10,
        "duration_min": 60,
    }
    values.update(kwargs)
    return services.booking_create(**values)


# --- who may book ---------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["student", "teacher", "guardian", "admin"])
def test_each_persona_may_book(world: World, persona: str) -> None:
    actor = getattr(world, persona)
    assert services.may_book(actor=actor, student=world.student, tutor=world.tutor, klass=world.klass)

    session = _book(world, actor=actor, klass=world.klass, subject="Algebra")

    session.refresh_from_db()
    assert (session.start, session.end, session.status) == (WED_10, WED_10 + H, "booked")
    assert (session.block_start, session.block_end, session.capacity) == (WED_10, WED_10 + H, 1)
    assert (session.tutor, session.created_by, session.klass, session.subject) == (
        world.tutor,
        actor,
        world.klass,
        "Algebra",
    )
    assert session.time_zone == "America/Chicago" and session.sequence == 0
    participant = SessionParticipant.objects.get(session=session)
    assert (participant.student, participant.booked_by, participant.status) == (
        world.student,
        actor,
        "booked",
    )
    # Everyone concerned hears of it, queued in the booking's transaction.
    told = set(
        Notification.objects.filter(session_id=session.pk, kind="booked").values_list("recipient", flat=True)
    )
    assert told == {world.tutor.pk, world.student.pk, world.guardian.pk, actor.pk}
    audit = AuditLog.objects.get(action="scheduling.session.book")
    assert (audit.actor, audit.target_id, audit.tenant) == (actor, str(session.pk), world.tenant)

    info = api.session_info(session.pk)
    assert info.status == "booked" and not info.cancelled
    assert [(p.person_id, p.status) for p in info.participants] == [(world.student.pk, "booked")]
    assert (info.tutor_id, info.tutor_name, info.class_title) == (world.tutor.pk, "Priya Shah", "Algebra I")


@pytest.mark.parametrize(
    ("persona", "klass"),
    [
        ("other_student", None),  # another student of the district
        ("other_teacher", None),  # a teacher, not of the student's class
        ("tutor", None),  # the tutor is not one who may book
        ("teacher", "other_class"),  # teaches the student, but not in the class named
    ],
)
def test_others_may_not_book(world: World, persona: str, klass: str | None) -> None:
    actor = getattr(world, persona)
    the_class = getattr(world, klass) if klass else None
    if the_class is not None:
        # The student is in that class too, so only the teacher's link is missing.
        from tests.factories import EnrollmentFactory

        EnrollmentFactory(klass=the_class, user=world.student, role=Role.STUDENT)
        world.teacher.enrollments.filter(klass=the_class).delete()
    before = _counts()
    assert not services.may_book(actor=actor, student=world.student, tutor=world.tutor, klass=the_class)

    with pytest.raises(api.NotAllowed) as refused:
        _book(world, actor=actor, klass=the_class)

    assert refused.value.reason == (
        "You may book only for yourself, for a student in a class you teach, for a child you are "
        "the guardian of, or (as a district admin) for any student of the district."
    )
    assert (refused.value.field, refused.value.http_status) == ("student", 403)
    assert _counts() == before


@pytest.mark.parametrize(
    ("flag", "persona", "reason"),
    [
        (
            "students_may_book",
            "student",
            "Your district does not let students book sessions themselves; ask a teacher or guardian.",
        ),
        ("teachers_may_book", "teacher", "Your district does not let teachers book sessions for students."),
        ("guardians_may_book", "guardian", "Your district does not let guardians book sessions."),
    ],
)
def test_tenant_policy_turns_a_persona_off(world: World, flag: str, persona: str, reason: str) -> None:
    SchedulingPolicyFactory(tenant=world.tenant, **{flag: False})
    before = _counts()
    with pytest.raises(api.NotAllowed) as refused:
        _book(world, actor=getattr(world, persona))
    assert refused.value.reason == reason
    assert _counts() == before
    # The admin still may.
    assert _book(world, actor=world.admin).status == "booked"


def test_refused_parties_name_the_field(world: World) -> None:
    before = _counts()
    with pytest.raises(api.BookingRefused) as not_student:
        _book(world, actor=world.admin, student=world.teacher)
    assert (not_student.value.reason, not_student.value.field) == ("This person is not a student.", "student")

    with pytest.raises(api.BookingRefused) as not_tutor:
        _book(world, actor=world.admin, tutor=world.teacher)
    assert (not_tutor.value.reason, not_tutor.value.field) == ("This person is not an active tutor.", "tutor")

    with pytest.raises(api.BookingRefused) as not_in_class:
        _book(world, actor=world.admin, klass=world.other_class)
    assert (not_in_class.value.reason, not_in_class.value.field) == (
        "The student is not enrolled in this class.",
        "class_id",
    )

    world.profile.classes.set([world.other_class])  # now serves Biology only
    with pytest.raises(api.BookingRefused) as not_served:
        _book(world, actor=world.admin)
    assert (not_served.value.reason, not_served.value.field) == (
        "This tutor does not serve this student's school or class.",
        "tutor",
    )
    # Serving the student's school is enough.
    world.profile.classes.set([])
    assert world.klass.school is not None
    world.profile.schools.set([world.klass.school])
    assert _counts() == before
    assert _book(world, actor=world.admin).status == "booked"


# --- tenant isolation ---------------------------------------------------------------------


def test_other_tenants_people_and_sessions_are_not_found(world: World) -> None:
    before = _counts()
    cases = [
        ({"tutor": world.outsider_tutor}, "tutor"),
        ({"student": world.outsider_student}, "student"),
    ]
    for kwargs, field in cases:
        with pytest.raises(api.NotFound) as missing:
            _book(world, actor=world.admin, **kwargs)
        assert (missing.value.reason, missing.value.field, missing.value.http_status) == (
            "No such person.",
            field,
            404,
        )
    outsider_admin = make_world("south").admin
    with pytest.raises(api.NotFound):
        _book(world, actor=outsider_admin)
    assert not services.may_book(actor=outsider_admin, student=world.student, tutor=world.tutor)
    assert _counts() == before

    session = _book(world, actor=world.student)
    for call in (
        lambda: services.booking_cancel(actor=outsider_admin, session_id=session.pk),
        lambda: services.booking_confirm(actor=outsider_admin, session_id=session.pk),
        lambda: services.booking_reschedule(actor=outsider_admin, session_id=session.pk, start=WED_10 + H),
        lambda: services.session_outcome_set(actor=outsider_admin, session_id=session.pk, outcome="no_show"),
        lambda: services.group_join(actor=outsider_admin, session_id=session.pk, student=world.student),
        lambda: services.booking_cancel(actor=world.admin, session_id="not-a-uuid"),
    ):
        with pytest.raises(api.NotFound) as missing:
            call()
        assert missing.value.reason == "No such session."
    session.refresh_from_db()
    assert (session.status, session.start, session.sequence) == ("booked", WED_10, 0)


# --- the time -------------------------------------------------------------------------------


def test_taken_time_answers_the_nearest_free_slots(world: World) -> None:
    _book(world, actor=world.student)
    before = _counts()
    with pytest.raises(api.SlotTaken) as taken:
        # Half an hour later overlaps too.
        _book(world, actor=world.admin, student=world.other_student, start=WED_10, duration_min=60)
    assert (taken.value.http_status, taken.value.field, taken.value.reason) == (
        409,
        "start",
        "That time is no longer free.",
    )
    # Wednesday 3 March 2027, Chicago: slots on the hour 09:00-16:00 (15:00Z-22:00Z), 10:00 taken.
    assert sorted(taken.value.alternatives) == [
        (dt.datetime(2027, 3, 3, hour, tzinfo=UTC), dt.datetime(2027, 3, 3, hour + 1, tzinfo=UTC))
        for hour in (15, 17, 18, 19, 20)
    ]
    assert _counts() == before


def test_buffers_block_neighbouring_time(world: World) -> None:
    world.profile.buffer_after_min = 15
    world.profile.save()
    _book(world, actor=world.admin)  # 10:00-11:00, blocked to 11:15
    with pytest.raises(api.SlotTaken):
        _book(world, actor=world.admin, start=WED_10 + H)
    session = _book(world, actor=world.admin, start=WED_10 + 2 * H)
    assert (session.block_start, session.block_end) == (
        WED_10 + 2 * H,
        WED_10 + 3 * H + dt.timedelta(minutes=15),
    )


@pytest.mark.parametrize(
    ("start", "duration", "reason", "field"),
    [
        (
            dt.datetime(2027, 3, 3, 23, tzinfo=UTC),
            60,
            "That time is outside the tutor's available hours.",
            "start",
        ),
        (
            dt.datetime(2027, 3, 6, 16, tzinfo=UTC),
            60,
            "That time is outside the tutor's available hours.",
            "start",
        ),
        (dt.datetime(2027, 2, 26, 16, tzinfo=UTC), 60, "That time has passed.", "start"),
        (
            dt.datetime(2027, 7, 5, 15, tzinfo=UTC),
            60,
            "This tutor takes bookings at most 90 days ahead.",
            "start",
        ),
        (WED_10, 45, "This tutor offers sessions of 30, 60 minutes.", "duration"),
        (
            WED_10.replace(tzinfo=None),
            60,
            "Give the time with its UTC offset (for example 2027-01-04T15:00:00Z).",
            "start",
        ),
    ],
)
def test_times_the_tutor_does_not_offer(
    world: World, start: dt.datetime, duration: int, reason: str, field: str
) -> None:
    before = _counts()
    with pytest.raises(api.SchedulingError) as refused:
        _book(world, actor=world.admin, start=start, duration_min=duration)
    assert (refused.value.reason, refused.value.field, refused.value.http_status) == (reason, field, 400)
    assert _counts() == before


def test_minimum_notice_and_daily_cap(world: World) -> None:
    world.profile.min_notice_min = 48 * 60
    world.profile.daily_cap = 1
    world.profile.save()
    with pytest.raises(api.BookingRefused) as notice:
        _book(world, actor=world.admin, start=dt.datetime(2027, 3, 2, 16, tzinfo=UTC))
    assert notice.value.reason == "This tutor needs at least 2880 minutes' notice."
    _book(world, actor=world.admin)
    with pytest.raises(api.BookingRefused) as cap:
        _book(world, actor=world.admin, student=world.other_student, start=WED_10 + 3 * H)
    assert cap.value.reason == "This tutor's limit of 1 sessions on 2027-03-03 is reached."


# --- holds ------------------------------------------------------------------------------------


def test_hold_then_confirm(world: World, frozen: Any) -> None:
    held = _book(world, actor=world.student, hold=True)
    assert (held.status, held.hold_expires_at) == ("held", NOW + dt.timedelta(minutes=5))
    assert not AuditLog.objects.filter(action="scheduling.session.book").exists()
    assert not Notification.objects.filter(session_id=held.pk).exists()  # a hold concerns nobody yet
    with pytest.raises(api.SlotTaken):  # a hold blocks the time like a booking
        _book(world, actor=world.admin, student=world.other_student)

    frozen.shift(dt.timedelta(minutes=4))
    confirmed = services.booking_confirm(actor=world.student, session_id=held.pk)
    confirmed.refresh_from_db()
    assert (confirmed.status, confirmed.hold_expires_at) == ("booked", None)
    assert AuditLog.objects.filter(action="scheduling.session.confirm", target_id=str(held.pk)).count() == 1
    assert (
        Notification.objects.filter(session_id=held.pk, kind="booked").count() == 3
    )  # tutor, student, guardian
    # Confirming again changes nothing.
    assert services.booking_confirm(actor=world.student, session_id=held.pk).status == "booked"


def test_an_expired_hold_no_longer_blocks(world: World, frozen: Any) -> None:
    held = _book(world, actor=world.student, hold=True)
    frozen.shift(dt.timedelta(minutes=5))
    assert services.slots_for(tutor=world.tutor, start=WED_10, end=WED_10 + H, duration_min=60) == [
        (WED_10, WED_10 + H)
    ]

    other = _book(world, actor=world.admin, student=world.other_student)

    held.refresh_from_db()
    assert (held.status, other.status) == ("expired", "booked")
    with pytest.raises(api.BookingRefused) as expired:
        services.booking_confirm(actor=world.student, session_id=held.pk)
    assert expired.value.reason == "The hold has expired; choose the time again."


def test_confirming_a_hold_after_it_expired_is_refused(world: World, frozen: Any) -> None:
    held = _book(world, actor=world.student, hold=True)
    frozen.shift(dt.timedelta(minutes=6))
    with pytest.raises(api.BookingRefused) as expired:
        services.booking_confirm(actor=world.student, session_id=held.pk)
    assert (expired.value.reason, expired.value.field) == (
        "The hold has expired; choose the time again.",
        "session_id",
    )
    held.refresh_from_db()
    assert held.status == "held"  # the refusal rolled back with its transaction; still past its expiry
    assert services.slots_for(tutor=world.tutor, start=WED_10, end=WED_10 + H, duration_min=60) == [
        (WED_10, WED_10 + H)
    ]


# --- groups -----------------------------------------------------------------------------------


def test_group_session_fills_to_capacity(world: World) -> None:
    from tests.factories import EnrollmentFactory

    third = UserFactory(tenant=world.tenant, username="chloe")
    EnrollmentFactory(klass=world.klass, user=third, role=Role.STUDENT)
    EnrollmentFactory(klass=world.klass, user=world.other_student, role=Role.STUDENT)
    group = _book(world, actor=world.teacher, klass=world.klass, capacity=2)

    services.group_join(actor=world.teacher, session_id=group.pk, student=world.other_student)
    services.group_join(
        actor=world.teacher, session_id=group.pk, student=world.other_student
    )  # again: no change
    group.refresh_from_db()
    # A join changes the attendee list: a new SEQUENCE (once, however often it is repeated).
    assert group.sequence == 1
    with pytest.raises(api.BookingRefused) as full:
        services.group_join(actor=world.teacher, session_id=group.pk, student=third)
    assert (full.value.reason, full.value.field) == ("The session is full (2 places).", "session_id")
    assert list(group.participants.values_list("student__username", "status")) == [
        ("north-ava", "booked"),
        ("north-ben", "booked"),
    ]

    # One student leaving frees their place; the session goes on.
    services.booking_cancel(actor=world.other_student, session_id=group.pk)
    services.booking_cancel(actor=world.other_student, session_id=group.pk)  # again: no change
    group.refresh_from_db()
    # The attendee list changed: a new SEQUENCE, and the leaver and the tutor are told.
    assert (group.status, group.sequence) == ("booked", 2)
    assert AuditLog.objects.filter(action="scheduling.session.leave").count() == 1
    services.group_join(actor=third, session_id=group.pk, student=third)
    assert sorted(group.participants.filter(status="booked").values_list("student__username", flat=True)) == [
        "chloe",
        "north-ava",
    ]


# --- cancel and reschedule --------------------------------------------------------------------


def test_cancel_with_notice_is_plain(world: World) -> None:
    session = _book(world, actor=world.student)
    cancelled = services.booking_cancel(actor=world.guardian, session_id=session.pk, reason="Dentist")
    cancelled.refresh_from_db()
    assert (cancelled.status, cancelled.outcome, cancelled.cancel_reason) == ("cancelled", "", "Dentist")
    assert (cancelled.cancelled_by, cancelled.cancelled_at, cancelled.sequence) == (world.guardian, NOW, 1)
    assert list(cancelled.participants.values_list("status", "outcome")) == [("cancelled", "")]
    # Cancelling twice changes nothing; the time is free again.
    assert services.booking_cancel(actor=world.guardian, session_id=session.pk).sequence == 1
    assert _book(world, actor=world.admin, student=world.other_student).status == "booked"


def test_late_cancel_is_recorded(world: World, frozen: Any) -> None:
    session = _book(world, actor=world.student)
    frozen.move_to(WED_10 - 23 * H)  # the tenant's default notice is 24 hours
    cancelled = services.booking_cancel(actor=world.student, session_id=session.pk)
    cancelled.refresh_from_db()
    assert (cancelled.status, cancelled.outcome) == ("cancelled", "late_cancel")
    assert list(cancelled.participants.values_list("outcome", flat=True)) == ["late_cancel"]
    assert AuditLog.objects.get(action="scheduling.session.cancel").details == {"late": True, "reason": ""}


def test_late_cancel_refused_by_policy_and_tutor_notice(world: World, frozen: Any) -> None:
    SchedulingPolicyFactory(tenant=world.tenant, late_cancel_allowed=False)
    world.profile.cancel_notice_hours = 48  # the tutor's own notice period wins
    world.profile.save()
    session = _book(world, actor=world.student)
    frozen.move_to(WED_10 - 47 * H)
    with pytest.raises(api.BookingRefused) as late:
        services.booking_cancel(actor=world.student, session_id=session.pk)
    assert late.value.reason == "Too late to cancel: cancel at least 48 hours before the start."
    session.refresh_from_db()
    assert (session.status, session.sequence) == ("booked", 0)
    # The tutor may still cancel; it is recorded late.
    services.booking_cancel(actor=world.tutor, session_id=session.pk, reason="Ill")
    session.refresh_from_db()
    assert (session.status, session.outcome, session.cancelled_by) == (
        "cancelled",
        "late_cancel",
        world.tutor,
    )


def test_reschedule_moves_and_bumps_sequence(world: World) -> None:
    session = _book(world, actor=world.student)
    _book(world, actor=world.admin, student=world.other_student, start=WED_10 + 2 * H)
    with pytest.raises(api.SlotTaken):
        services.booking_reschedule(actor=world.student, session_id=session.pk, start=WED_10 + 2 * H)

    moved = services.booking_reschedule(actor=world.student, session_id=session.pk, start=WED_10 + H)
    moved.refresh_from_db()
    assert (moved.start, moved.end, moved.sequence, moved.status) == (WED_10 + H, WED_10 + 2 * H, 1, "booked")
    # Its old time is free; moving onto an overlap with itself is fine.
    services.booking_reschedule(actor=world.student, session_id=session.pk, start=WED_10 + H, duration_min=30)
    moved.refresh_from_db()
    assert (moved.end, moved.sequence) == (WED_10 + H + dt.timedelta(minutes=30), 2)
    assert AuditLog.objects.filter(action="scheduling.session.reschedule").count() == 2


def test_reschedule_inside_notice_is_refused_for_the_student_side(world: World, frozen: Any) -> None:
    session = _book(world, actor=world.student)
    frozen.move_to(WED_10 - 2 * H)
    with pytest.raises(api.BookingRefused) as late:
        services.booking_reschedule(actor=world.student, session_id=session.pk, start=WED_10 + 2 * H)
    assert late.value.reason == "Too late to reschedule: move at least 24 hours before the start."
    moved = services.booking_reschedule(actor=world.tutor, session_id=session.pk, start=WED_10 + 2 * H)
    assert moved.start == WED_10 + 2 * H


def test_no_show_recorded_by_the_tutor_only(world: World, frozen: Any) -> None:
    session = _book(world, actor=world.student)
    with pytest.raises(api.BookingRefused) as early:
        services.session_outcome_set(actor=world.tutor, session_id=session.pk, outcome="no_show")
    assert early.value.reason == "The session has not started yet."
    frozen.move_to(WED_10 + dt.timedelta(minutes=20))
    with pytest.raises(api.NotAllowed):
        services.session_outcome_set(actor=world.student, session_id=session.pk, outcome="attended")
    with pytest.raises(api.InvalidInput) as bad:
        services.session_outcome_set(actor=world.tutor, session_id=session.pk, outcome="maybe")
    assert bad.value.reason == "Give one of: attended, no_show, tutor_no_show."
    done = services.session_outcome_set(actor=world.tutor, session_id=session.pk, outcome="no_show")
    done.refresh_from_db()
    assert (done.status, done.outcome) == ("completed", "no_show")
    assert list(done.participants.values_list("outcome", flat=True)) == ["no_show"]
    assert AuditLog.objects.get(action="scheduling.session.outcome").details == {
        "outcome": "no_show",
        "student": "",
    }


def test_sessions_for_person_and_reminders_window(world: World) -> None:
    session = _book(world, actor=world.student)
    window = (WED_10 - H, WED_10 + H)
    for person in (world.tutor, world.student, world.guardian):
        assert [s.id for s in api.sessions_for_person(person.pk, *window)] == [session.pk]
    assert api.sessions_for_person(world.other_student.pk, *window) == []
    assert [s.id for s in api.sessions_starting_between(WED_10, WED_10 + H)] == [session.pk]
    assert api.sessions_starting_between(WED_10 + H, WED_10 + 2 * H) == []


def test_cancelling_a_hold_frees_the_time_and_tells_nobody(world: World) -> None:
    held = _book(world, actor=world.student, hold=True)
    services.booking_cancel(actor=world.student, session_id=held.pk)
    held.refresh_from_db()
    assert (held.status, held.outcome) == ("cancelled", "")
    assert not Notification.objects.filter(session_id=held.pk).exists()
    assert _book(world, actor=world.admin, student=world.other_student).status == "booked"
