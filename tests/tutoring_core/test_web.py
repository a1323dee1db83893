from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from tests.conftest import Personas
from tests.factories import (
    PASSWORD,
    EnrollmentFactory,
    GuardianLinkFactory,
    TenantFactory,
    UserFactory,
    district_admin,
)
from tutoring_core.accounts.models import AuditLog

pytestmark = pytest.mark.django_db


def test_sign_in_page_is_responsive_and_never_framed(client: Any) -> None:
    response = client.get(reverse("web:login"))
    assert response.status_code == 200
    html = response.content.decode()
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert response["X-Frame-Options"] == "DENY"
    assert response["Content-Security-Policy"] == "frame-ancestors 'none'"


def test_password_sign_in_is_audited_and_lands_home(client: Any, personas: Personas) -> None:
    response = client.post(reverse("web:login"), {"username": "owner", "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == reverse("web:home")
    entry = AuditLog.objects.get(action="auth.sign_in")
    assert (entry.actor_id, entry.tenant_id, entry.details) == (
        personas.owner.pk,
        personas.tenant.pk,
        {"method": "password"},
    )


def test_wrong_password_is_refused_without_session(client: Any, personas: Personas) -> None:
    response = client.post(reverse("web:login"), {"username": "owner", "password": "wrong"})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert AuditLog.objects.filter(action="auth.sign_in").count() == 0


def test_sign_in_refused_for_deactivated_tenant(client: Any, personas: Personas) -> None:
    personas.tenant.is_active = False
    personas.tenant.save()
    response = client.post(reverse("web:login"), {"username": "owner", "password": PASSWORD})
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


def test_home_requires_sign_in(client: Any) -> None:
    response = client.get(reverse("web:home"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("web:login"))


def test_home_shows_the_teachers_classes_and_steps(client: Any, personas: Personas) -> None:
    client.force_login(personas.owner)
    response = client.get(reverse("web:home"))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Algebra I" in html
    assert "Add the tutoring hub to your LMS course" in html
    # Framable by LMS origins, unlike the sign-in page.
    assert response["Content-Security-Policy"] == "frame-ancestors 'self' https:"
    assert "X-Frame-Options" not in response


def test_guardian_sees_their_childs_classes(client: Any, personas: Personas) -> None:
    student = UserFactory(tenant=personas.tenant, first_name="Kid", last_name="One")
    EnrollmentFactory(klass=personas.klass, user=student, role="student")
    link = GuardianLinkFactory(student=student, guardian__tenant=personas.tenant)
    client.force_login(link.guardian)
    html = client.get(reverse("web:home")).content.decode()
    assert "Kid One's classes" in html
    assert "Algebra I" in html
    assert client.get(reverse("web:class_detail", args=[personas.klass.pk])).status_code == 200


def test_class_detail_three_personas(client: Any, personas: Personas) -> None:
    url = reverse("web:class_detail", args=[personas.klass.pk])
    client.force_login(personas.owner)
    response = client.get(url)
    assert response.status_code == 200
    assert "Class list" in response.content.decode()
    grades = f'<a class="button" href="/lti/advantage/classes/{personas.klass.pk}/grades/">Grades and LMS gradebook</a>'
    assert grades in response.content.decode()
    client.force_login(personas.same_tenant_other)
    assert client.get(url).status_code == 404
    client.force_login(personas.other_tenant)
    assert client.get(url).status_code == 404


def test_student_sees_class_but_not_class_list(client: Any, personas: Personas) -> None:
    student = EnrollmentFactory(klass=personas.klass, role="student").user
    client.force_login(student)
    response = client.get(reverse("web:class_detail", args=[personas.klass.pk]))
    assert response.status_code == 200
    assert "Class list" not in response.content.decode()
    assert "Grades and LMS gradebook" not in response.content.decode()


def test_district_admin_sees_any_class_of_their_tenant(client: Any, personas: Personas) -> None:
    client.force_login(district_admin(personas.tenant))
    assert client.get(reverse("web:class_detail", args=[personas.klass.pk])).status_code == 200


def test_sign_out_needs_post(client: Any, personas: Personas) -> None:
    client.force_login(personas.owner)
    assert client.get(reverse("web:logout")).status_code == 405
    assert client.post(reverse("web:logout")).status_code == 302
    assert "_auth_user_id" not in client.session


def test_district_code_leads_to_the_districts_sso_page(client: Any, personas: Personas) -> None:
    response = client.get(reverse("web:district_sign_in"), {"district": " North "})
    assert response.status_code == 302
    assert response["Location"] == "/sso/north/"


def test_district_code_answer_does_not_tell_which_districts_exist(
    client: Any, personas: Personas, django_assert_num_queries: Any
) -> None:
    """Issue 11: a code no district uses, an inactive district's code and a live one
    get the same answer (status, headers, body), without a lookup; the SSO page the
    person proceeds to is where an unknown code is explained."""
    inactive = TenantFactory(slug="east", is_active=False)
    answers = {}
    for code in ("north", "nowhere", inactive.slug):
        with django_assert_num_queries(0):
            response = client.get(reverse("web:district_sign_in"), {"district": code})
        answers[code] = (
            response.status_code,
            sorted(response.headers.keys()),
            response["Location"].replace(code, "CODE"),
            response.content,
        )
    assert answers["north"] == answers["nowhere"] == answers["east"]
    assert answers["north"][:1] + answers["north"][2:] == (302, "/sso/CODE/", b"")
    assert client.get("/sso/nowhere/").status_code == 404
    assert client.get("/sso/north/").status_code == 200


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({}, "Enter your district&#x27;s code."),
        ({"district": "  "}, "Enter your district&#x27;s code."),
        (
            {"district": "north/../admin"},
            "A district code has only letters, digits, hyphens and underscores.",
        ),
        ({"district": "x" * 64}, "A district code has only letters, digits, hyphens and underscores."),
    ],
)
def test_malformed_district_code_is_explained(
    client: Any, personas: Personas, query: dict[str, str], message: str
) -> None:
    response = client.get(reverse("web:district_sign_in"), query)
    assert response.status_code == 400
    assert message in response.content.decode()
