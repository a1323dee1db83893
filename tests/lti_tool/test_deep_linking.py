"""Deep Linking 2.0 round trip: the platform library validates our signed response."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from django.urls import reverse

from lti_tool.advantage.models import LineItem
from lti_tool.models import ResourceLink
from tests.factories import EnrollmentFactory, UserFactory
from tests.lti_tool.conftest import run_launch
from tests.peers.lti_platform import ROLE_INSTRUCTOR, ROLE_LEARNER, LtiPlatform
from tutoring_core.accounts.models import Role
from tutoring_core.classes.models import ClassKey

pytestmark = pytest.mark.peer


def _dl_launch(client: Any, platform: LtiPlatform, **kwargs: Any) -> Any:
    spec = platform.launch(
        **{
            "sub": "teacher-1",
            "roles": [ROLE_INSTRUCTOR],
            "context_id": "course-1",
            "resource_link_id": None,
            "deep_linking": True,
            **kwargs,
        }
    )
    return run_launch(client, platform, spec).response


def _tutor_in_class(platform: LtiPlatform, tenant: Any) -> Any:
    klass = ClassKey.objects.get(subject=f"{platform.deployment_id}/course-1").klass
    tutor = UserFactory(tenant=tenant, first_name="Priya", last_name="Shah")
    EnrollmentFactory(klass=klass, user=tutor, role=Role.TUTOR)
    return klass, tutor


def test_deep_linking_round_trip_several_items(client: Any, platform: LtiPlatform, registration: Any) -> None:
    response = _dl_launch(client, platform)
    assert response.status_code == 302
    assert response["Location"].startswith("/lti/deep-link/")
    klass, tutor = _tutor_in_class(platform, registration.tenant)

    page = client.get(response["Location"])
    assert page.status_code == 200
    html = page.content.decode()
    for value in ("class", "booking", f"tutor:{tutor.pk}"):
        assert f'value="{value}"' in html

    answer = client.post(
        response["Location"], {"item": ["class", f"tutor:{tutor.pk}"], "gradable": ["class"]}
    )
    assert answer.status_code == 200
    action, fields = LtiPlatform.parse_form(answer.content.decode())
    assert action == platform.deep_link_return_url

    platform.set_tool_jwks(client.get("/lti/jwks.json").json())
    placed = requests.post(action, data=fields, timeout=10)
    assert placed.status_code == 200, placed.text
    assert platform.deep_link_errors == []
    planned = LineItem.objects.get()
    assert len(planned.resource_id) == 32
    assert platform.deep_link_responses == [
        [
            {
                "type": "ltiResourceLink",
                "title": "Algebra I: tutoring",
                "url": "http://testserver/lti/launch/",
                "lineItem": {
                    "scoreMaximum": 100,
                    "label": "Algebra I: tutoring",
                    "resourceId": planned.resource_id,
                },
                "custom": {"hub_target": "class", "hub_placement": planned.resource_id},
            },
            {
                "type": "ltiResourceLink",
                "title": "Tutoring with Priya Shah",
                "url": "http://testserver/lti/launch/",
                "custom": {"hub_target": "tutor", "hub_tutor": str(tutor.pk)},
            },
        ]
    ]
    claims = platform.deep_link_claims[0]
    assert claims["iss"] == platform.client_id
    assert claims["aud"] == [platform.issuer]
    assert claims["https://purl.imsglobal.org/spec/lti/claim/message_type"] == "LtiDeepLinkingResponse"

    # The request is answered once; the page is gone afterwards.
    assert client.get(response["Location"]).status_code == 404

    # Launching the placed tutor link lands on the tutor's page in that class.
    placed_item = platform.deep_link_responses[0][1]
    launch = run_launch(
        client,
        platform,
        platform.launch(
            sub="student-9", roles=[ROLE_LEARNER], resource_link_id="placed-2", custom=placed_item["custom"]
        ),
    ).response
    assert launch.status_code == 302
    assert launch["Location"] == f"/scheduling/classes/{klass.pk}/tutors/{tutor.pk}/"
    link = ResourceLink.objects.get(resource_link_id="placed-2")
    assert (link.target, link.target_ref) == ("tutor", str(tutor.pk))


def test_deep_linking_refuses_several_items_when_platform_accepts_one(
    client: Any, platform: LtiPlatform, registration: Any
) -> None:
    response = _dl_launch(client, platform, accept_multiple=False)
    answer = client.post(response["Location"], {"item": ["class", "booking"]})
    assert answer.status_code == 400
    assert "one item at a time" in answer.content.decode()
    assert 'type="radio"' in answer.content.decode()
    # Nothing was answered: the request is still open.
    assert client.get(response["Location"]).status_code == 200


@pytest.mark.parametrize(
    ("items", "message"),
    [([], "Choose at least one page"), (["tutor:00000000-0000-0000-0000-000000000000"], "not available")],
    ids=["nothing_chosen", "unknown_item"],
)
def test_deep_linking_bad_choice(
    client: Any, platform: LtiPlatform, registration: Any, items: list[str], message: str
) -> None:
    response = _dl_launch(client, platform)
    answer = client.post(response["Location"], {"item": items})
    assert answer.status_code == 400
    assert message in answer.content.decode()


def test_students_cannot_place_content(client: Any, platform: LtiPlatform, registration: Any) -> None:
    response = _dl_launch(client, platform, roles=[ROLE_LEARNER])
    assert response.status_code == 403
    assert 'data-code="deep_linking_role"' in response.content.decode()


def test_deep_linking_page_personas(
    client: Any, platform: LtiPlatform, registration: Any, personas: Any
) -> None:
    """Owner sees it; another person of the same tenant and another tenant's admin get 404."""
    response = _dl_launch(client, platform)
    url = response["Location"]
    assert client.get(url).status_code == 200
    other_same_tenant = UserFactory(tenant=registration.tenant)
    for outsider in (other_same_tenant, personas.other_tenant):
        other = type(client)()
        other.force_login(outsider)
        assert other.get(url).status_code == 404
        assert other.post(url, {"item": ["class"]}).status_code == 404
    assert client.get(url).status_code == 200


LINEITEMS = "https://lms.example.org/api/lti/courses/1/line_items"


def test_gradable_placement_is_a_grades_column_at_once_and_its_first_launch_binds_it(
    client: Any, platform: LtiPlatform, registration: Any
) -> None:
    """Issue 11: the teacher who places a graded page sees its column on the grades
    page right away; the placed link's first launch (carrying the platform's line
    item) binds that column instead of making a second one."""
    from tutoring_core.progress.models import Activity

    response = _dl_launch(client, platform, ags_lineitems=LINEITEMS)
    klass = ClassKey.objects.get(subject=f"{platform.deployment_id}/course-1").klass
    answer = client.post(response["Location"], {"item": ["class", "booking"], "gradable": ["class"]})
    assert answer.status_code == 200
    planned = LineItem.objects.get()
    assert (planned.label, planned.url, planned.resource_link_id, planned.lineitems_url, planned.context_id) == (
        "Algebra I: tutoring", "", "", LINEITEMS, "course-1",
    )  # fmt: skip
    assert planned.activity.klass_id == klass.pk

    grades = client.get(reverse("lti_advantage:class_grades", args=[klass.pk]))
    assert grades.status_code == 200
    html = grades.content.decode()
    assert (
        f'<th data-activity="{planned.activity_id}">Algebra I: tutoring <span class="muted">/ 100</span>'
        '<br><span class="muted line-item">LMS column: Algebra I: tutoring (links when the LMS first opens it)'
        "</span></th>"
    ) in html
    assert f'<option value="{planned.activity_id}">Algebra I: tutoring</option>' in html
    assert "No gradable activity is placed in this class yet." not in html

    action, fields = LtiPlatform.parse_form(answer.content.decode())
    platform.set_tool_jwks(client.get("/lti/jwks.json").json())
    assert requests.post(action, data=fields, timeout=10).status_code == 200
    placed = platform.deep_link_responses[0][0]
    student = type(client)()
    for _ in range(2):
        launch = run_launch(
            student,
            platform,
            platform.launch(
                sub="student-1",
                roles=[ROLE_LEARNER],
                context_id="course-1",
                resource_link_id="lms-link-1",
                resource_link_title=placed["title"],
                custom=placed["custom"],
                ags_lineitems=LINEITEMS,
                ags_lineitem=LINEITEMS + "/41",
            ),
        ).response
        assert launch.status_code == 302
    bound = LineItem.objects.get()
    assert (bound.pk, bound.url, bound.resource_link_id) == (planned.pk, LINEITEMS + "/41", "lms-link-1")
    assert Activity.objects.filter(klass=klass).count() == 1
    html = client.get(reverse("lti_advantage:class_grades", args=[klass.pk])).content.decode()
    assert "LMS column: Algebra I: tutoring (linked)</span>" in html
