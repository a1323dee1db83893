"""Group sessions, recurring series and outcomes through the API (issue 12 point 3): what
the services do for the pages, with exact answers and the 400/403/404/409 shapes."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tests.api.conftest import client_for
from tests.api.test_scheduling import WED_10, booking
from tests.factories import UserFactory
from tests.scheduling.factories import World
from tutoring_core.accounts.models import AuditLog
from tutoring_core.scheduling.models import Series, Session, SessionParticipant

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen")]
UTC = dt.UTC


def _participants(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(p["name"], p["status"]) for p in body["participants"]]


def test_a_group_session_is_booked_with_places_and_joined(world: World) -> None:
    admin = client_for(world.admin)
    created = admin.post("/api/v1/bookings", booking(world, capacity=2, subject="Algebra"))
    assert created.status_code == 201, created.content
    group = created.json()
    assert (group["capacity"], group["sequence"], _participants(group)) == (2, 0, [("Ava Nguyen", "booked")])

    # Ben books his own place (a student may book for themself).
    joined = client_for(world.other_student).post(
        f"/api/v1/bookings/{group['id']}/join", {"student": str(world.other_student.pk)}
    )
    assert joined.status_code == 200, joined.content
    body = joined.json()
    assert (body["sequence"], _participants(body)) == (
        1,
        [("Ava Nguyen", "booked"), ("Ben Carter", "booked")],
    )
    # Again: nothing changes.
    again = client_for(world.other_student).post(
        f"/api/v1/bookings/{group['id']}/join", {"student": str(world.other_student.pk)}
    )
    assert (again.status_code, again.json()["sequence"]) == (200, 1)

    # Full: 400 with the reason; nothing written.
    chloe = UserFactory(tenant=world.tenant, username="north-chloe", first_name="Chloe", last_name="Martin")
    from tests.factories import EnrollmentFactory
    from tutoring_core.accounts.models import Role

    EnrollmentFactory(klass=world.klass, user=chloe, role=Role.STUDENT)
    full = admin.post(f"/api/v1/bookings/{group['id']}/join", {"student": str(chloe.pk)})
    assert (full.status_code, full.json()) == (
        400,
        {"error": "The session is full (2 places).", "field": "session_id"},
    )
    assert SessionParticipant.objects.filter(student=chloe).count() == 0


def test_joining_answers_403_404_and_409(world: World) -> None:
    admin = client_for(world.admin)
    group = admin.post("/api/v1/bookings", booking(world, capacity=3)).json()
    url = f"/api/v1/bookings/{group['id']}/join"

    # Ava's guardian may not book Ben's place.
    refused = client_for(world.guardian).post(url, {"student": str(world.other_student.pk)})
    assert refused.status_code == 403
    assert refused.json()["field"] == "student"
    # Another district's student is nobody here; an unknown session is nothing.
    assert admin.post(url, {"student": str(world.outsider_student.pk)}).json() == {
        "error": "No such person.",
        "field": "student",
    }
    missing = admin.post(
        "/api/v1/bookings/00000000-0000-4000-8000-000000000000/join", {"student": str(world.other_student.pk)}
    )
    assert (missing.status_code, missing.json()) == (
        404,
        {"error": "No such session.", "field": "session_id"},
    )
    # Ben has another session then: 409 naming it, with the tutor's free times he is free at too.
    other = UserFactory(tenant=world.tenant, username="north-omar", first_name="Omar", last_name="Haddad")
    admin.put(f"/api/v1/tutors/{other.pk}", {"session_lengths": [60], "time_zone": "America/Chicago"})
    admin.put(
        f"/api/v1/tutors/{other.pk}/availability",
        {"time_zone": "America/Chicago", "weekly": [{"weekday": 2, "start": "09:00", "end": "17:00"}]},
    )
    ben = admin.post(
        "/api/v1/bookings",
        {"tutor": str(other.pk), "student": str(world.other_student.pk), "start": WED_10, "duration": 60},
    )
    assert ben.status_code == 201, ben.content
    busy = admin.post(url, {"student": str(world.other_student.pk)})
    assert busy.status_code == 409
    assert busy.json()["field"] == "student"
    assert busy.json()["error"].startswith("Ben Carter already has a tutoring session then")
    # Priya's nearest hours either side (09:00 and 11:00 Chicago), the earlier first.
    assert busy.json()["alternatives"][:2] == [
        {"start": "2027-03-03T15:00:00Z", "end": "2027-03-03T16:00:00Z"},
        {"start": "2027-03-03T17:00:00Z", "end": "2027-03-03T18:00:00Z"},
    ]
    bad = admin.post(url, {"student": "not-an-id"})
    assert (bad.status_code, bad.json()["field"]) == (400, "student")


def test_a_series_reports_each_occurrence(world: World) -> None:
    admin = client_for(world.admin)
    # The second Wednesday is taken already.
    assert admin.post("/api/v1/bookings", booking(world, start="2027-03-10T16:00:00Z")).status_code == 201
    response = admin.post(
        "/api/v1/series",
        {**booking(world, student=str(world.other_student.pk)), "rrule": "FREQ=WEEKLY;COUNT=3"},
    )
    assert response.status_code == 201, response.content
    body = response.json()
    series = Series.objects.get()
    sessions = {str(s.start): str(s.pk) for s in Session.objects.filter(series=series)}
    assert body["series_id"] == str(series.pk)
    assert body["booked"] == 2
    assert [(o["start"], o["status"], o["reason"]) for o in body["occurrences"]] == [
        ("2027-03-03T16:00:00Z", "booked", ""),
        ("2027-03-10T16:00:00Z", "conflict", "That time is no longer free."),
        # After the clocks change in Chicago (14 March): still 10:00 there, 15:00 UTC.
        ("2027-03-17T15:00:00Z", "booked", ""),
    ]
    assert body["occurrences"][0]["session_id"] == sessions["2027-03-03 16:00:00+00:00"]
    assert body["occurrences"][1]["session_id"] is None
    assert body["occurrences"][1]["alternatives"][:2] == [
        {"start": "2027-03-10T15:00:00Z", "end": "2027-03-10T16:00:00Z"},
        {"start": "2027-03-10T17:00:00Z", "end": "2027-03-10T18:00:00Z"},
    ]


@pytest.mark.parametrize(
    ("rule", "reason"),
    [
        ("FREQ=WEEKLY", "The rule must end: give COUNT or UNTIL."),
        ("FREQ=HOURLY;COUNT=3", "A series repeats DAILY, WEEKLY or MONTHLY (FREQ)."),
        (
            "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30;COUNT=1",
            "BYMONTH is not used in a series; give FREQ, INTERVAL, COUNT or UNTIL, BYDAY, BYMONTHDAY.",
        ),
        (
            "FREQ=MONTHLY;BYDAY=5MO;BYMONTHDAY=1;COUNT=1",
            "A numbered BYDAY (such as -1FR) cannot be combined with BYMONTHDAY.",
        ),
        ("FREQ=WEEKLY;INTERVAL=0;COUNT=2", "INTERVAL must be a whole number from 1 to 52."),
        ("COUNT=2", "Give FREQ=DAILY, WEEKLY or MONTHLY."),
        ("FREQ=WEEKLY;COUNT=60", "A series may have at most 52 occurrences."),
    ],
)
def test_a_bad_rule_answers_400_and_books_nothing(world: World, rule: str, reason: str) -> None:
    response = client_for(world.admin).post("/api/v1/series", {**booking(world), "rrule": rule})
    assert (response.status_code, response.json()) == (400, {"error": reason, "field": "rrule"})
    assert (Series.objects.count(), Session.objects.count()) == (0, 0)


def test_a_series_for_someone_the_caller_may_not_book_for_is_403(world: World) -> None:
    response = client_for(world.other_teacher).post(
        "/api/v1/series", {**booking(world), "rrule": "FREQ=WEEKLY;COUNT=2"}
    )
    assert response.status_code == 403
    assert (Series.objects.count(), Session.objects.count()) == (0, 0)


def test_outcomes_are_the_tutors_after_the_start(world: World, frozen: Any) -> None:
    session = client_for(world.admin).post("/api/v1/bookings", booking(world)).json()
    url = f"/api/v1/bookings/{session['id']}/outcome"
    tutor = client_for(world.tutor)

    early = tutor.post(url, {"outcome": "attended"})
    assert (early.status_code, early.json()) == (
        400,
        {"error": "The session has not started yet.", "field": "session_id"},
    )
    frozen.move_to(dt.datetime(2027, 3, 3, 17, 5, tzinfo=UTC))
    by_student = client_for(world.student).post(url, {"outcome": "attended"})
    assert by_student.status_code == 403
    unknown = tutor.post(url, {"outcome": "late"})
    assert (unknown.status_code, unknown.json()) == (
        400,
        {"error": "Give one of: attended, no_show, tutor_no_show.", "field": "outcome"},
    )
    done = tutor.post(url, {"outcome": "no_show"})
    assert done.status_code == 200, done.content
    body = done.json()
    assert (body["status"], body["outcome"], body["participants"][0]["outcome"]) == (
        "completed",
        "no_show",
        "no_show",
    )
    assert AuditLog.objects.filter(action="scheduling.session.outcome").count() == 1
