"""How people find the SCORM pages: the import page from the home page of teachers,
tutors and district admins; the class's SCORM attempts from its class page (staff:
everyone's, students: their own); a package's page offers the classes its importer
teaches; and a SCORM result shows on the class's grades page."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.urls import reverse

from scorm import content
from scorm.player_services import activity_for_class, attempt_for_launch
from tests.conftest import Personas
from tests.factories import ClassFactory, EnrollmentFactory, UserFactory, district_admin
from tests.scorm.isolation import make_package
from tutoring_core.accounts.models import Role

pytestmark = pytest.mark.django_db

IMPORT_STEP = "Import SCORM courses from your authoring tools."


def _home(client: Any, user: Any) -> str:
    client.force_login(user)
    response = client.get(reverse("web:home"))
    assert response.status_code == 200
    return response.content.decode()


def test_home_links_the_import_page_for_those_who_may_import(client: Any, personas: Personas) -> None:
    link = f'<a href="{reverse("scorm:package_list")}">{IMPORT_STEP}</a>'
    assert link in _home(client, personas.owner)  # a teacher
    tutor = UserFactory(tenant=personas.tenant)
    EnrollmentFactory(klass=personas.klass, user=tutor, role=Role.TUTOR)
    assert link in _home(client, tutor)
    admin = district_admin(personas.tenant)
    assert _home(client, admin).count(link) == 1
    student = UserFactory(tenant=personas.tenant)
    EnrollmentFactory(klass=personas.klass, user=student, role=Role.STUDENT)
    assert IMPORT_STEP not in _home(client, student)
    assert IMPORT_STEP not in _home(client, personas.same_tenant_other)


def test_class_page_links_the_attempts_page_for_staff_and_students(client: Any, personas: Personas) -> None:
    klass_url = reverse("web:class_detail", args=[personas.klass.pk])
    attempts = reverse("scorm:class_attempts", args=[personas.klass.pk])
    client.force_login(personas.owner)
    page = client.get(klass_url).content.decode()
    assert f'<a class="button" href="{attempts}">SCORM attempts</a>' in page
    student = UserFactory(tenant=personas.tenant)
    EnrollmentFactory(klass=personas.klass, user=student, role=Role.STUDENT)
    client.force_login(student)
    page = client.get(klass_url).content.decode()
    assert f'<a class="button" href="{attempts}">My SCORM courses and attempts</a>' in page
    assert "Grades and LMS gradebook" not in page
    assert client.get(attempts).status_code == 200


def test_package_page_offers_the_classes_its_importer_teaches(client: Any, personas: Personas) -> None:
    package = make_package(personas.tenant)
    other_class = ClassFactory(tenant=personas.tenant, title="Geometry")
    EnrollmentFactory(klass=other_class, user=personas.owner, role=Role.STUDENT)  # learns there
    client.force_login(personas.owner)
    page = client.get(reverse("scorm:package_detail", args=[package.pk])).content.decode()
    play = reverse("scorm:play", args=[personas.klass.pk, package.pk])
    assert f'<a href="{play}">Algebra I</a>' in page
    assert "Geometry" not in page
    admin = district_admin(personas.tenant)
    client.force_login(admin)
    page = client.get(reverse("scorm:package_detail", args=[package.pk])).content.decode()
    assert "You teach no class in the hub yet." in page


def test_a_scorm_result_shows_on_the_class_grades_page(
    client: Any, personas: Personas, settings: Any
) -> None:
    settings.PUBLIC_BASE_URL = "http://testserver"
    settings.SCORM_CONTENT_ORIGIN = "http://127.0.0.2:8001"
    package = make_package(personas.tenant, title="Golf")
    student = UserFactory(tenant=personas.tenant, first_name="Ann", last_name="Lee")
    EnrollmentFactory(klass=personas.klass, user=student, role=Role.STUDENT)
    activity = activity_for_class(tenant=personas.tenant, class_id=personas.klass.pk, package=package)
    attempt = attempt_for_launch(activity=activity, sco=package.scos.get(), learner=student)
    committed = client.post(
        reverse("scorm:commit"),
        json.dumps(
            {
                "token": content.commit_token(attempt_id=attempt.pk),
                "session": "s1",
                "sequence": 0,
                "cmi": {"cmi.core.lesson_status": "passed", "cmi.core.score.raw": "85"},
            }
        ),
        content_type="application/json",
        HTTP_ORIGIN="http://127.0.0.2:8001",
    )
    assert committed.status_code == 200
    client.force_login(personas.owner)
    page = client.get(reverse("lti_advantage:class_grades", args=[personas.klass.pk])).content.decode()
    assert f'<th data-activity="{activity.activity_id}">{package.title} ' in page
    row = re.search(r"<tr><td>Ann Lee</td>\s*<td>(.*?)</td></tr>", page, re.S)
    assert row is not None
    assert re.sub(r"\s+", " ", row.group(1)) == (
        '85 <span class="pill" title="SCORM attempt 1: completed, passed">saved</span>'
    )
