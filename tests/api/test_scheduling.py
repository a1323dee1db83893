"""Tutors, availability, slots and bookings through the API: exact answers, idempotent POSTs."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import client_for
from tests.scheduling.factories import World
from tutoring_core.accounts.models import Role, RoleAssignment
from tutoring_core.apiauth.models import IdempotencyRecord
from tutoring_core.scheduling.models import Session

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen")]

# The world's "now" is Monday 1 March 2027 12:00 UTC; its tutor works Mon-Fri 09:00-17:00
# in Chicago (UTC-6 until 14 March). Wednesday 3 March 10:00 there is 16:00 UTC.
WED_10 = "2027-03-03T16:00:00Z"


def booking(world: World, start: str = WED_10, duration: int = 60, **extra: Any) -> dict[str, Any]:
    return {
        "tutor": str(world.tutor.pk),
        "student": str(world.student.pk),
        "start": start,
        "duration": duration,
        **extra,
    }


def session_json(world: World, session_id: str, start: str, end: str, **changes: Any) -> dict[str, Any]:
    body = {
        "id": session_id,
        "status": "booked",
        "tutor": str(world.tutor.pk),
        "tutor_name": "Priya Shah",
        "start": start,
        "end": end,
        "duration": 60,
        "time_zone": "America/Chicago",
        "subject": "",
        "class_id": None,
        "capacity": 1,
        "participants": [
            {"person_id": str(world.student.pk), "name": "Ava Nguyen", "status": "booked", "outcome": ""}
        ],
        "outcome": "",
        "sequence": 0,
    }
    body.update(changes)
    return body


def test_a_district_admin_makes_a_person_a_tutor(world: World) -> None:
    response = client_for(world.admin).put(
        f"/api/v1/tutors/{world.teacher.pk}",
        {"subjects": ["Chemistry", "Physics"], "time_zone": "Europe/Berlin", "session_lengths": [45, 30]},
    )

    assert response.status_code == 200
    assert response.json() == {
        "person_id": str(world.teacher.pk),
        "name": world.teacher.full_name,
        "subjects": ["Chemistry", "Physics"],
        "grade_levels": [],
        "languages": [],
        "bio": "",
        "time_zone": "Europe/Berlin",
        "session_lengths": [30, 45],
        "school_ids": [],
        "class_ids": [],
        "is_active": True,
        "buffer_before_min": 0,
        "buffer_after_min": 0,
        "min_notice_min": 0,
        "window_days": 90,
        "daily_cap": None,
        "weekly": [],
        "overrides": [],
    }
    assert RoleAssignment.objects.filter(user=world.teacher, role=Role.TUTOR, is_active=True).count() == 1


def test_only_a_district_admin_makes_tutors(world: World) -> None:
    response = client_for(world.teacher).put(
        f"/api/v1/tutors/{world.teacher.pk}", {"subjects": ["Chemistry"]}
    )

    assert response.status_code == 403
    assert response.json() == {
        "error": "Only a district admin may make a person a tutor.",
        "field": "person_id",
    }
    assert not RoleAssignment.objects.filter(user=world.teacher, role=Role.TUTOR).exists()


def test_tutors_list_filters_by_class_and_subject(world: World) -> None:
    client = client_for(world.student)

    listed = client.get("/api/v1/tutors", {"class_id": str(world.klass.pk), "subject": "algebra"})
    assert listed.status_code == 200
    assert listed.json() == {
        "count": 1,
        "limit": 50,
        "offset": 0,
        "items": [
            {
                "person_id": str(world.tutor.pk),
                "name": "Priya Shah",
                "subjects": ["Algebra"],
                "grade_levels": [],
                "languages": [],
                "bio": "",
                "time_zone": "America/Chicago",
                "session_lengths": [30, 60],
                "school_ids": [],
                "class_ids": [],
                "is_active": True,
            }
        ],
    }
    assert client.get("/api/v1/tutors", {"subject": "Latin"}).json()["items"] == []


def test_the_tutor_sets_their_availability(world: World) -> None:
    body = {
        "time_zone": "Australia/Lord_Howe",
        "weekly": [
            {"weekday": 0, "start": "09:00", "end": "12:00"},
            {"weekday": 6, "start": "20:00", "end": "24:00"},
        ],
        "overrides": [
            {"date": "2027-04-04", "start": "01:00", "end": "03:00"},
            {"date": "2027-04-05", "unavailable": True},
        ],
        "buffer_before_min": 5,
        "buffer_after_min": 10,
        "min_notice_min": 60,
        "window_days": 30,
        "daily_cap": 4,
    }

    response = client_for(world.tutor).put(f"/api/v1/tutors/{world.tutor.pk}/availability", body)

    assert response.status_code == 200
    answer = response.json()
    assert {key: answer[key] for key in body} == {
        **body,
        "overrides": [
            {"date": "2027-04-04", "start": "01:00", "end": "03:00", "unavailable": False},
            {"date": "2027-04-05", "start": None, "end": None, "unavailable": True},
        ],
    }


@pytest.mark.parametrize(
    ("weekly", "error", "field"),
    [
        (
            [{"weekday": 0, "start": "12:00", "end": "09:00"}],
            "A rule must end after it starts (an overnight rule is two rules).",
            "weekly[0].end",
        ),
        (
            [{"weekday": 7, "start": "09:00", "end": "12:00"}],
            "weekly[0].weekday: Input should be less than or equal to 6",
            "weekly[0].weekday",
        ),
        ([{"weekday": 0, "start": "09:00"}], "weekly[0].end is required.", "weekly[0].end"),
    ],
)
def test_bad_availability_answers_400_and_changes_nothing(
    world: World, weekly: list[dict[str, Any]], error: str, field: str
) -> None:
    response = client_for(world.tutor).put(
        f"/api/v1/tutors/{world.tutor.pk}/availability", {"time_zone": "UTC", "weekly": weekly}
    )

    assert response.status_code == 400
    assert response.json() == {"error": error, "field": field}
    world.profile.refresh_from_db()
    assert (world.profile.time_zone, world.profile.rules.count()) == ("America/Chicago", 5)


def test_slots_in_utc_in_order(world: World) -> None:
    response = client_for(world.student).get(
        f"/api/v1/tutors/{world.tutor.pk}/slots",
        {"start": "2027-03-03T00:00:00Z", "end": "2027-03-04T00:00:00Z", "duration": 60},
    )

    assert response.status_code == 200
    assert response.json() == {
        "slots": [
            {"start": f"2027-03-03T{hour}:00:00Z", "end": f"2027-03-03T{hour + 1}:00:00Z"}
            for hour in range(15, 23)
        ]
    }


def test_slots_refuse_a_naive_time(world: World) -> None:
    response = client_for(world.student).get(
        f"/api/v1/tutors/{world.tutor.pk}/slots",
        {"start": "2027-03-03T00:00:00", "end": "2027-03-04T00:00:00Z", "duration": 60},
    )

    assert response.status_code == 400
    assert response.json() == {
        "error": "start: Give the time with its UTC offset (for example 2027-01-04T15:00:00Z).",
        "field": "start",
    }


def test_book_then_conflict_with_the_nearest_free_slots(world: World) -> None:
    client = client_for(world.student)

    first = client.post("/api/v1/bookings", booking(world))
    assert first.status_code == 201
    session = Session.objects.get()
    assert first.json() == session_json(world, str(session.pk), WED_10, "2027-03-03T17:00:00Z")

    second = client.post("/api/v1/bookings", booking(world, start="2027-03-03T16:30:00Z", duration=30))
    assert second.status_code == 409
    assert second.json() == {
        "error": "That time is no longer free.",
        "field": "start",
        "alternatives": [  # nearest to 16:30 first
            {"start": "2027-03-03T17:00:00Z", "end": "2027-03-03T17:30:00Z"},
            {"start": "2027-03-03T15:30:00Z", "end": "2027-03-03T16:00:00Z"},
            {"start": "2027-03-03T17:30:00Z", "end": "2027-03-03T18:00:00Z"},
            {"start": "2027-03-03T15:00:00Z", "end": "2027-03-03T15:30:00Z"},
            {"start": "2027-03-03T18:00:00Z", "end": "2027-03-03T18:30:00Z"},
        ],
    }
    assert Session.objects.count() == 1


def test_a_retried_post_with_its_idempotency_key_returns_the_first_answer(world: World) -> None:
    client = client_for(world.student)
    key = {"Idempotency-Key": "3f1c2a9e-booking-1"}

    first = client.post("/api/v1/bookings", booking(world), headers=key)
    again = client.post("/api/v1/bookings", booking(world), headers=key)

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert "Idempotent-Replayed" not in first
    assert again["Idempotent-Replayed"] == "true"
    assert Session.objects.count() == 1
    record = IdempotencyRecord.objects.get()
    assert (record.key, record.method, record.path, record.status_code, record.response_body) == (
        "3f1c2a9e-booking-1",
        "POST",
        "/api/v1/bookings",
        201,
        first.json(),
    )

    # Without the key the same body is a new request, and the time is taken.
    assert client.post("/api/v1/bookings", booking(world)).status_code == 409
    assert Session.objects.count() == 1


def test_the_same_key_with_another_body_is_refused(world: World) -> None:
    client = client_for(world.student)
    key = {"Idempotency-Key": "k-1"}
    assert client.post("/api/v1/bookings", booking(world), headers=key).status_code == 201

    response = client.post("/api/v1/bookings", booking(world, start="2027-03-03T18:00:00Z"), headers=key)

    assert response.status_code == 422
    assert response.json() == {
        "error": "This Idempotency-Key was already used with a different request body; "
        "use a new key for a new request, or resend the first body unchanged.",
        "field": "Idempotency-Key",
    }
    assert Session.objects.count() == 1


def test_an_unusable_idempotency_key_answers_400(world: World) -> None:
    response = client_for(world.student).post(
        "/api/v1/bookings", booking(world), headers={"Idempotency-Key": "x" * 256}
    )

    assert response.status_code == 400
    assert response.json() == {
        "error": "The Idempotency-Key header is longer than 255 characters.",
        "field": "Idempotency-Key",
    }
    assert Session.objects.count() == 0


def test_list_cancel_and_reschedule(world: World) -> None:
    client = client_for(world.guardian)
    session_id = client.post("/api/v1/bookings", booking(world)).json()["id"]

    listed = client.get(
        "/api/v1/bookings",
        {"person": str(world.student.pk), "start": "2027-03-01T00:00:00Z", "end": "2027-03-08T00:00:00Z"},
    )
    assert listed.status_code == 200
    assert listed.json() == {"bookings": [session_json(world, session_id, WED_10, "2027-03-03T17:00:00Z")]}

    moved = client.post(f"/api/v1/bookings/{session_id}/reschedule", {"start": "2027-03-04T15:00:00Z"})
    assert moved.status_code == 200
    assert moved.json() == session_json(
        world, session_id, "2027-03-04T15:00:00Z", "2027-03-04T16:00:00Z", sequence=1
    )

    cancelled = client.post(f"/api/v1/bookings/{session_id}/cancel", {"reason": "Sick"})
    assert cancelled.status_code == 200
    assert cancelled.json() == session_json(
        world,
        session_id,
        "2027-03-04T15:00:00Z",
        "2027-03-04T16:00:00Z",
        status="cancelled",
        sequence=2,
        participants=[
            {"person_id": str(world.student.pk), "name": "Ava Nguyen", "status": "cancelled", "outcome": ""}
        ],
    )
    # Cancelling twice changes nothing; a cancelled session cannot move.
    assert client.post(f"/api/v1/bookings/{session_id}/cancel").json() == cancelled.json()
    refused = client.post(f"/api/v1/bookings/{session_id}/reschedule", {"start": "2027-03-05T15:00:00Z"})
    assert refused.status_code == 400
    assert refused.json() == {
        "error": "Only a booked session can be moved; this one is cancelled.",
        "field": "session_id",
    }


def test_a_bystander_may_not_list_or_cancel_anothers_sessions(world: World) -> None:
    session_id = client_for(world.student).post("/api/v1/bookings", booking(world)).json()["id"]
    bystander = client_for(world.other_teacher)

    listed = bystander.get("/api/v1/bookings", {"person": str(world.student.pk)})
    assert listed.status_code == 403
    assert listed.json()["field"] == "person"
    cancel = bystander.post(f"/api/v1/bookings/{session_id}/cancel")
    assert (cancel.status_code, cancel.json()) == (404, {"error": "No such session.", "field": "session_id"})
    assert Session.objects.get().status == "booked"
