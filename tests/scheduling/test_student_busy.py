"""A student cannot be in two sessions at once: booking, joining or moving into a time the
student already has a session (with any tutor, one-to-one or in a group) is refused with a
409 naming the clash, inside the booking transaction; under concurrency exactly one wins."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import time_machine
from django.urls import reverse

from tests.api.conftest import client_for
from tests.factories import EnrollmentFactory, UserFactory
from tests.scheduling.contention import ROOT, default_url
from tests.scheduling.factories import (
    NOW,
    WED_10,
    AvailabilityRuleFactory,
    TutorProfileFactory,
    World,
    make_world,
)
from tutoring_core.accounts.models import AuditLog, Role
from tutoring_core.scheduling import api, services
from tutoring_core.scheduling.models import Session, SessionParticipant, TutorProfile

UTC = dt.UTC
H = dt.timedelta(hours=1)
M = dt.timedelta(minutes=1)
pytestmark = pytest.mark.django_db

REASON = (
    "Ava Nguyen already has a tutoring session then (2027-03-03 10:00 to 11:00 America/Chicago, "
    "with Priya Shah); a student cannot be in two sessions at once."
)


@pytest.fixture
def world(db: Any) -> World:
    return make_world()


@pytest.fixture(autouse=True)
def frozen() -> Iterator[Any]:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def second_tutor(world: World) -> Any:
    """Omar, serving the whole district Mon-Fri 09:00-17:00 Chicago, with a 15-minute buffer after."""
    user = UserFactory(tenant=world.tenant, username="north-omar", first_name="Omar", last_name="Haddad")
    profile = TutorProfileFactory(user=user, session_lengths=[30, 60], buffer_after_min=15)
    for day in range(5):
        AvailabilityRuleFactory(tutor=profile, weekday=day, start_minute=9 * 60, end_minute=17 * 60)
    return user


def _counts() -> tuple[int, int, int]:
    return (
        Session.objects.count(),
        SessionParticipant.objects.count(),
        AuditLog.objects.filter(action__startswith="scheduling.session").count(),
    )


def _book(world: World, tutor: Any, start: dt.datetime, **kwargs: Any) -> Session:
    values = {
        "actor": world.admin,
        "tutor": tutor,
        "student": world.student,
        "start": start,
        "duration_min": 60,
    }
    values.update(kwargs)
    return services.booking_create(**values)


def test_a_second_tutor_at_an_overlapping_time_is_refused(world: World, second_tutor: Any) -> None:
    first = _book(world, world.tutor, WED_10)
    before = _counts()
    with pytest.raises(api.StudentBusy) as busy:
        _book(world, second_tutor, WED_10 + 30 * M, duration_min=30)
    assert isinstance(busy.value, api.SlotTaken)
    assert (busy.value.reason, busy.value.field, busy.value.conflict_id) == (REASON, "student", first.pk)
    # Omar's nearest free 30-minute slots that the student is free at too (10:00 to 11:00
    # Chicago is the student's), nearest first: 11:00, 09:30, 11:30, 09:00, 12:00 Chicago.
    assert busy.value.alternatives == [
        (s, s + 30 * M) for s in (WED_10 + H, WED_10 - 30 * M, WED_10 + 90 * M, WED_10 - H, WED_10 + 2 * H)
    ]
    assert _counts() == before  # nothing written
    # Touching is fine: 11:00 with Omar; and another student may have Omar at 09:00.
    assert _book(world, second_tutor, WED_10 + H).status == "booked"
    assert _book(world, second_tutor, WED_10 - H, student=world.other_student).status == "booked"


def test_holds_and_cancelled_sessions(world: World, second_tutor: Any, frozen: Any) -> None:
    hold = _book(world, world.tutor, WED_10, hold=True)
    with pytest.raises(api.StudentBusy):
        _book(world, second_tutor, WED_10)  # an unexpired hold counts
    frozen.move_to(NOW + 10 * M)  # the default hold is 5 minutes
    moved = _book(world, second_tutor, WED_10)  # the lapsed hold no longer counts
    assert hold.pk != moved.pk
    services.booking_cancel(actor=world.admin, session_id=moved.pk)
    assert _book(world, world.tutor, WED_10).status == "booked"  # a cancelled session frees the student


def test_group_sessions_count_both_ways(world: World, second_tutor: Any) -> None:
    EnrollmentFactory(klass=world.klass, user=world.other_student, role=Role.STUDENT)
    group = _book(world, world.tutor, WED_10, student=world.other_student, klass=world.klass, capacity=3)
    services.group_join(actor=world.admin, session_id=group.pk, student=world.student)
    # In a group session: no one-to-one at the same time.
    with pytest.raises(api.StudentBusy) as busy:
        _book(world, second_tutor, WED_10 + 30 * M, duration_min=30)
    assert busy.value.reason == REASON
    # Joining a group session while booked elsewhere is refused too.
    third = UserFactory(tenant=world.tenant, username="north-chloe")
    EnrollmentFactory(klass=world.klass, user=third, role=Role.STUDENT)
    other_group = _book(world, second_tutor, WED_10 + 30 * M, student=third, duration_min=30, capacity=3)
    before = _counts()
    with pytest.raises(api.StudentBusy) as busy:
        services.group_join(actor=world.admin, session_id=other_group.pk, student=world.student)
    assert (busy.value.field, busy.value.conflict_id) == ("student", group.pk)
    assert _counts() == before
    # Leaving the group frees the student.
    services.booking_cancel(actor=world.admin, session_id=group.pk, student=world.student)
    assert services.group_join(actor=world.admin, session_id=other_group.pk, student=world.student)


def test_reschedule_into_the_students_other_session_is_refused(world: World, second_tutor: Any) -> None:
    first = _book(world, world.tutor, WED_10)
    second = _book(world, second_tutor, WED_10 + 2 * H)
    with pytest.raises(api.StudentBusy) as busy:
        services.booking_reschedule(actor=world.admin, session_id=second.pk, start=WED_10)
    assert (busy.value.reason, busy.value.conflict_id) == (REASON, first.pk)
    second.refresh_from_db()
    assert (second.start, second.sequence) == (WED_10 + 2 * H, 0)
    # Moving a session over its own time is no clash with itself.
    moved = services.booking_reschedule(actor=world.admin, session_id=first.pk, start=WED_10 + H)
    assert moved.start == WED_10 + H


def test_a_series_books_the_occurrences_the_student_is_free_for(world: World, second_tutor: Any) -> None:
    _book(world, world.tutor, WED_10 + 7 * 24 * H)
    result = services.series_create(
        actor=world.admin,
        tutor=second_tutor,
        student=world.student,
        start=WED_10,
        duration_min=60,
        rrule="FREQ=WEEKLY;COUNT=3",
    )
    assert [(o.status, o.reason) for o in result.occurrences] == [
        ("booked", ""),
        (
            "conflict",
            "Ava Nguyen already has a tutoring session then (2027-03-10 10:00 to 11:00 America/Chicago, "
            "with Priya Shah); a student cannot be in two sessions at once.",
        ),
        ("booked", ""),
    ]


def test_the_api_answers_409_naming_the_clash(world: World, second_tutor: Any) -> None:
    _book(world, world.tutor, WED_10)
    response = client_for(world.admin).post(
        "/api/v1/bookings",
        {
            "tutor": str(second_tutor.pk),
            "student": str(world.student.pk),
            "start": "2027-03-03T16:30:00Z",
            "duration": 30,
        },
    )
    assert response.status_code == 409
    body = response.json()
    assert (body["error"], body["field"]) == (REASON, "student")
    assert body["alternatives"][0] == {"start": "2027-03-03T17:00:00Z", "end": "2027-03-03T17:30:00Z"}


def test_the_booking_page_shows_the_clash(client: Any, world: World, second_tutor: Any) -> None:
    _book(world, world.tutor, WED_10)
    client.force_login(world.student)
    response = client.post(
        reverse("scheduling:class_booking_hold", kwargs={"class_id": world.klass.pk}),
        {"slot": f"{second_tutor.pk}|{(WED_10 + 30 * M).isoformat()}|30"},
    )
    assert response.status_code == 409
    assert response.context["error"] == (
        "Ava Nguyen already has a tutoring session then (2027-03-03 10:00 to 11:00 America/Chicago, "
        "with Priya Shah); a student cannot be in two sessions at once."
    )


@pytest.mark.parametrize("vendor", ["postgresql", "sqlite"])
def test_one_student_booked_with_many_tutors_at_once_gets_one_session(vendor: str) -> None:
    """40 tutors, one student, the same hour, all at once: the student's row lock
    (PostgreSQL) or the serialised write (SQLite) lets exactly one through."""
    url, folder = default_url(vendor, "hub_student_contention")
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.scheduling.contention",
                "--database-url",
                url,
                "--mode",
                "student",
                "--attempts",
                "40",
                "--connections",
                "20",
                "--schema",
                "models",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    finally:
        if folder:
            shutil.rmtree(folder, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["vendor"] == vendor
    assert result["error_samples"] == []
    assert (result["booked"], result["student_busy"], result["taken"], result["errors"]) == (1, 39, 0, 0)
    assert (result["sessions"], result["overlapping_pairs"]) == (1, 0)


def test_buffers_are_the_tutors_not_the_students(world: World, second_tutor: Any) -> None:
    """A student's own session times may not overlap; the tutors' buffers (Priya's 15
    minutes after, Omar's 30 before) are theirs, so 11:00 with Omar follows 10:00 to 11:00
    with Priya, though their buffers overlap the hour's edges."""
    world.profile.buffer_after_min = 15
    world.profile.save(update_fields=["buffer_after_min"])
    omar = TutorProfile.objects.get(user=second_tutor)
    omar.buffer_before_min = 30
    omar.save(update_fields=["buffer_before_min"])
    first = _book(world, world.tutor, WED_10)
    assert (first.block_start, first.block_end) == (WED_10, WED_10 + 75 * M)
    before = _counts()
    with pytest.raises(api.StudentBusy):  # 10:30 with Omar: inside the student's own hour
        _book(world, second_tutor, WED_10 + 30 * M, duration_min=30)
    assert _counts() == before
    follows = _book(world, second_tutor, WED_10 + H)
    assert (follows.start, follows.block_start, follows.status) == (WED_10 + H, WED_10 + 30 * M, "booked")
    # Priya's session cannot move onto Omar's hour; her own block (15 minutes after) stays hers.
    with pytest.raises(api.StudentBusy):
        services.booking_reschedule(actor=world.admin, session_id=first.pk, start=WED_10 + H)
    with pytest.raises(api.SlotTaken) as taken:
        _book(world, world.tutor, WED_10 + H, student=world.other_student, duration_min=30)
    assert not isinstance(taken.value, api.StudentBusy)


def test_the_student_lock_queues_bookings_not_foreign_keys() -> None:
    """PostgreSQL: while a booking holds the student's row, a second booking of the student
    waits for it (FOR NO KEY UPDATE is refused without waiting), but writing a row that
    names the student (the foreign-key check's FOR KEY SHARE) does not wait."""
    url, _folder = default_url("postgresql", "hub_student_lock")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.scheduling.contention",
            "--database-url",
            url,
            "--mode",
            "student-lock",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {
        "vendor": "postgresql",
        "key_share": "granted",
        "no_key_update": "refused",
        "after_commit": "granted",
    }
