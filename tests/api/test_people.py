"""GET /api/v1/people: who sees whom, roles, the role filter, paging and bad input."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from tests.api.conftest import client_for
from tests.factories import (
    ClassFactory,
    EnrollmentFactory,
    GuardianLinkFactory,
    RoleAssignmentFactory,
    TenantFactory,
    UserFactory,
    district_admin,
)
from tutoring_core.accounts.models import Role, User

pytestmark = pytest.mark.django_db


@dataclass
class East:
    admin: User
    guardian: User
    sam: User
    teacher: User
    tutor: User
    zoe: User
    outsider: User


@pytest.fixture
def east(db: Any) -> East:
    tenant = TenantFactory(slug="east", name="East District")
    algebra = ClassFactory(tenant=tenant, title="Algebra")
    biology = ClassFactory(tenant=tenant, title="Biology")
    admin = district_admin(tenant, username="ada", first_name="Ada", last_name="Admin")
    teacher = UserFactory(tenant=tenant, username="tom", first_name="Tom", last_name="Teach")
    EnrollmentFactory(klass=algebra, user=teacher, role=Role.TEACHER)
    sam = UserFactory(tenant=tenant, username="sam", first_name="Sam", last_name="Stone")
    EnrollmentFactory(klass=algebra, user=sam, role=Role.STUDENT)
    zoe = UserFactory(tenant=tenant, username="zoe", first_name="Zoe", last_name="Zed")
    EnrollmentFactory(klass=biology, user=zoe, role=Role.STUDENT)
    guardian = UserFactory(tenant=tenant, username="gus", first_name="Gus", last_name="Guard")
    GuardianLinkFactory(tenant=tenant, guardian=guardian, student=sam)
    tutor = UserFactory(tenant=tenant, username="tia", first_name="Tia", last_name="Tutor")
    RoleAssignmentFactory(user=tutor, role=Role.TUTOR)
    UserFactory(tenant=tenant, username="gone", first_name="Al", last_name="Aardvark", is_active=False)
    outsider = district_admin(TenantFactory(slug="west"), username="wes", first_name="Wes", last_name="Aaron")
    return East(admin, guardian, sam, teacher, tutor, zoe, outsider)


def person(user: User, *roles: str) -> dict[str, Any]:
    return {"id": str(user.pk), "name": user.full_name, "roles": list(roles)}


def test_a_district_admin_lists_the_whole_district(east: East) -> None:
    response = client_for(east.admin).get("/api/v1/people")

    assert response.status_code == 200
    assert response.json() == {
        "count": 6,
        "limit": 50,
        "offset": 0,
        "items": [
            person(east.admin, "district_admin"),
            person(east.guardian, "guardian"),
            person(east.sam, "student"),
            person(east.teacher, "teacher"),
            person(east.tutor, "tutor"),
            person(east.zoe, "student"),
        ],
    }


def test_the_role_filter_and_paging(east: East) -> None:
    client = client_for(east.admin)

    students = client.get("/api/v1/people", {"role": "student"}).json()
    assert students["items"] == [person(east.sam, "student"), person(east.zoe, "student")]
    assert students["count"] == 2
    assert client.get("/api/v1/people", {"role": "guardian"}).json()["items"] == [
        person(east.guardian, "guardian")
    ]
    assert client.get("/api/v1/people", {"role": "tutor"}).json()["items"] == [person(east.tutor, "tutor")]

    page = client.get("/api/v1/people", {"limit": 2, "offset": 2}).json()
    assert page == {
        "count": 6,
        "limit": 2,
        "offset": 2,
        "items": [person(east.sam, "student"), person(east.teacher, "teacher")],
    }
    assert client.get("/api/v1/people", {"offset": 6}).json()["items"] == []


def test_a_teacher_sees_their_classes_and_the_tutors(east: East) -> None:
    response = client_for(east.teacher).get("/api/v1/people")

    assert [item["name"] for item in response.json()["items"]] == ["Sam Stone", "Tom Teach", "Tia Tutor"]


def test_a_guardian_sees_themselves_their_ward_and_the_tutors(east: East) -> None:
    response = client_for(east.guardian).get("/api/v1/people")

    assert [item["name"] for item in response.json()["items"]] == ["Gus Guard", "Sam Stone", "Tia Tutor"]


def test_a_student_sees_themselves_and_the_tutors(east: East) -> None:
    response = client_for(east.zoe).get("/api/v1/people")

    assert [item["name"] for item in response.json()["items"]] == ["Tia Tutor", "Zoe Zed"]


def test_another_district_sees_none_of_these_people(east: East) -> None:
    response = client_for(east.outsider).get("/api/v1/people")

    assert response.json()["items"] == [person(east.outsider, "district_admin")]


@pytest.mark.parametrize(
    ("params", "error", "field"),
    [
        (
            {"role": "wizard"},
            "role: Input should be 'student', 'teacher', 'tutor', 'guardian', 'school_admin' or 'district_admin'",
            "role",
        ),
        ({"limit": 0}, "limit: Input should be greater than or equal to 1", "limit"),
        ({"limit": 501}, "limit: Input should be less than or equal to 500", "limit"),
        ({"offset": -1}, "offset: Input should be greater than or equal to 0", "offset"),
        (
            {"limit": "ten"},
            "limit: Input should be a valid integer, unable to parse string as an integer",
            "limit",
        ),
    ],
)
def test_bad_query_answers_400_with_the_field(
    east: East, params: dict[str, Any], error: str, field: str
) -> None:
    response = client_for(east.admin).get("/api/v1/people", params)

    assert response.status_code == 400
    assert response.json() == {"error": error, "field": field}


def test_the_page_costs_a_fixed_number_of_queries(east: East, django_assert_num_queries: Any) -> None:
    client = client_for(east.admin)
    client.get("/api/v1/people")  # last_used_at written
    for n in range(10):
        UserFactory(tenant=east.admin.tenant, username=f"extra{n}")
    # token + person, district admin check, count, page, three role reads
    with django_assert_num_queries(7):
        assert len(client.get("/api/v1/people").json()["items"]) == 16
