"""Another district's ids answer 404 in every API operation, and change nothing.

Walks the OpenAPI document: every operation whose path takes an id is called with
another district's admin token (the most privileged outsider) on this district's rows.
A new operation with an id in its path fails here until it has a request below.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import client_for
from tests.api.isolation import api_id_url_names
from tests.factories import district_admin
from tests.payments.factories import PackageFactory, PayerAccountFactory, PayerMemberFactory
from tests.scheduling.factories import WED_10, World
from tutoring_core.payments.models import PostingLine, Purchase
from tutoring_core.scheduling import services
from tutoring_core.scheduling.models import Session, TutorProfile

pytestmark = pytest.mark.django_db

# For each operation with an id in its path: a request that is valid apart from whose
# ids they are, so the answer shows the tenant check, not input validation.
REQUESTS: dict[tuple[str, str], dict[str, Any]] = {
    ("GET", "/api/v1/tutors/{person_id}"): {},
    ("PUT", "/api/v1/tutors/{person_id}"): {
        "body": {"subjects": ["Chemistry"], "time_zone": "Europe/Berlin"}
    },
    ("PUT", "/api/v1/tutors/{person_id}/availability"): {"body": {"time_zone": "UTC", "weekly": []}},
    ("GET", "/api/v1/tutors/{person_id}/slots"): {
        "query": {"start": "2027-03-03T00:00:00Z", "end": "2027-03-04T00:00:00Z", "duration": 60}
    },
    ("POST", "/api/v1/bookings/{session_id}/cancel"): {"body": {"reason": "x"}},
    ("POST", "/api/v1/bookings/{session_id}/reschedule"): {"body": {"start": "2027-03-03T18:00:00Z"}},
    # Joining a session the student is in already: a valid request that changes nothing.
    ("POST", "/api/v1/bookings/{session_id}/join"): {"body": {"student": "{student_id}"}},
    # The session has not started: this district's admin gets past the tenant check to that.
    ("POST", "/api/v1/bookings/{session_id}/outcome"): {
        "body": {"outcome": "attended"},
        "insider": (400, "The session has not started yet."),
    },
    ("GET", "/api/v1/bookings/{session_id}/refund-quote"): {"query": {"student": "{student_id}"}},
    ("GET", "/api/v1/payers/{payer_id}"): {},
    ("GET", "/api/v1/payers/{payer_id}/statement"): {"query": {"page": 1}},
    # The outsider names a package of their own district: the payer's id is what is refused.
    ("POST", "/api/v1/payers/{payer_id}/purchases"): {
        "body": {"package_id": "{package_id}"},
        "insider": (404, "No such package."),
    },
}


def _document(world: World) -> dict[str, Any]:
    return client_for(world.admin).get("/api/v1/openapi.json").json()


def test_every_api_url_with_an_id_is_exempt_from_the_session_walker_and_walked_here(world: World) -> None:
    document = _document(world)
    with_ids = {
        (method.upper(), path) for path, item in document["paths"].items() if "{" in path for method in item
    }
    assert with_ids == set(REQUESTS)
    assert sorted(api_id_url_names()) == [
        "api_availability_put",
        "api_booking_cancel",
        "api_booking_join",
        "api_booking_outcome",
        "api_booking_refund_quote",
        "api_booking_reschedule",
        "api_payer_get",
        "api_payer_statement",
        "api_purchase_create",
        "api_tutor_get",
        "api_tutor_put",
        "api_tutor_slots",
    ]


def _state(world: World, session: Session) -> tuple[Any, ...]:
    session.refresh_from_db()
    profile = TutorProfile.objects.get(user=world.tutor)
    return (
        session.status,
        session.start,
        session.sequence,
        profile.subjects,
        profile.time_zone,
        profile.rules.count(),
        session.outcome,
        list(session.participants.values_list("student_id", "status", "outcome")),
        Purchase.objects.count(),
        PostingLine.objects.count(),
    )


@pytest.mark.parametrize(("method", "path"), sorted(REQUESTS), ids=[f"{m} {p}" for m, p in sorted(REQUESTS)])
def test_another_districts_ids_answer_404(world: World, frozen: Any, method: str, path: str) -> None:
    session = services.booking_create(
        actor=world.admin, tutor=world.tutor, student=world.student, start=WED_10, duration_min=60
    )
    outsider = client_for(district_admin(world.other_tenant, username="other-admin"))
    payer = PayerAccountFactory(tenant=world.tenant)
    PayerMemberFactory(payer=payer, user=world.student)
    fill = {
        "{student_id}": str(world.student.pk),
        "{package_id}": str(PackageFactory(tenant=world.other_tenant).pk),
    }
    url = (
        path.replace("{person_id}", str(world.tutor.pk))
        .replace("{session_id}", str(session.pk))
        .replace("{payer_id}", str(payer.pk))
    )
    request = REQUESTS[(method, path)]
    for part in ("body", "query"):
        if part in request:
            request = {
                **request,
                part: {k: fill.get(v, v) if isinstance(v, str) else v for k, v in request[part].items()},
            }
    before = _state(world, session)

    if method == "GET":
        response = outsider.get(url, request.get("query"))
    else:
        response = outsider.send(method, url, request.get("body"))

    assert response.status_code == 404, response.content
    assert set(response.json()) == {"error", "field"}
    assert _state(world, session) == before

    # The same request from this district's admin is not a 404: the id is what differs.
    insider = client_for(world.admin)
    own = (
        insider.get(url, request.get("query"))
        if method == "GET"
        else insider.send(method, url, request.get("body"))
    )
    expected = request.get("insider")
    if expected is None:
        assert own.status_code == 200, own.content
    else:
        assert (own.status_code, own.json()["error"]) == expected


def test_ids_in_query_and_body_of_another_district_answer_404(world: World, frozen: Any) -> None:
    outsider = client_for(district_admin(world.other_tenant, username="other-admin"))

    tutors = outsider.get("/api/v1/tutors", {"class_id": str(world.klass.pk)})
    assert (tutors.status_code, tutors.json()) == (404, {"error": "No such class.", "field": "class_id"})

    bookings = outsider.get("/api/v1/bookings", {"person": str(world.student.pk)})
    assert (bookings.status_code, bookings.json()) == (404, {"error": "No such person.", "field": "person"})

    booked = outsider.post(
        "/api/v1/bookings",
        {
            "tutor": str(world.tutor.pk),
            "student": str(world.student.pk),
            "start": "2027-03-03T16:00:00Z",
            "duration": 60,
        },
    )
    assert (booked.status_code, booked.json()) == (404, {"error": "No such person.", "field": "tutor"})
    mixed = outsider.post(
        "/api/v1/bookings",
        {
            "tutor": str(world.outsider_tutor.pk),
            "student": str(world.student.pk),
            "start": "2027-03-03T16:00:00Z",
            "duration": 60,
        },
    )
    assert (mixed.status_code, mixed.json()) == (404, {"error": "No such person.", "field": "student"})
    assert Session.objects.count() == 0

    people = outsider.get("/api/v1/people").json()["items"]
    assert str(world.student.pk) not in {item["id"] for item in people}
