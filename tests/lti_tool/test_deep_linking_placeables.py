"""Deep linking offers what other integrations register through progress.api
(SCORM courses): a gradable SCORM course goes back to the platform with a line
item, and launching the placed link opens the player in the frame, its results
recorded under the activity the column is attached to."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
import requests

from lti_tool.advantage.models import LineItem
from lti_tool.models import ResourceLink
from scorm import content
from scorm.models import ScormAttempt
from scorm.player_services import activity_key
from tests.lti_tool.conftest import run_launch
from tests.peers.lti_platform import ROLE_INSTRUCTOR, ROLE_LEARNER, LtiPlatform
from tests.scorm.isolation import make_package
from tutoring_core.classes.models import ClassKey
from tutoring_core.progress.models import Result

pytestmark = pytest.mark.peer

LINEITEMS = "https://lms.example.org/api/lti/courses/1/line_items"
CONTENT = "http://127.0.0.2:8001"


@pytest.fixture(autouse=True)
def _content_origin(settings: Any) -> None:
    settings.SCORM_CONTENT_ORIGIN = CONTENT


def _dl_launch(client: Any, platform: LtiPlatform) -> Any:
    spec = platform.launch(
        sub="teacher-1",
        roles=[ROLE_INSTRUCTOR],
        context_id="course-1",
        resource_link_id=None,
        deep_linking=True,
        ags_lineitems=LINEITEMS,
    )
    return run_launch(client, platform, spec).response


def test_a_scorm_course_is_placed_with_a_line_item_and_its_launch_opens_the_player(
    client: Any, platform: LtiPlatform, registration: Any
) -> None:
    tenant = registration.tenant
    package = make_package(tenant, title="Golf")
    make_package(type(tenant).objects.create(slug="elsewhere", name="Elsewhere"), title="Not ours")
    response = _dl_launch(client, platform)
    assert response.status_code == 302
    klass = ClassKey.objects.get(subject=f"{platform.deployment_id}/course-1").klass

    page = client.get(response["Location"]).content.decode()
    value = f"scorm:{package.pk}"
    assert f'value="{value}"' in page
    assert "<td>SCORM course</td>" in page
    assert "Not ours" not in page  # another tenant's package is no choice here

    answer = client.post(response["Location"], {"item": [value], "gradable": [value]})
    assert answer.status_code == 200
    planned = LineItem.objects.get()
    key = activity_key(class_id=klass.pk, package_id=package.pk)
    assert (planned.activity.key, planned.activity.klass_id, planned.label) == (key, klass.pk, package.title)

    action, fields = LtiPlatform.parse_form(answer.content.decode())
    platform.set_tool_jwks(client.get("/lti/jwks.json").json())
    assert requests.post(action, data=fields, timeout=10).status_code == 200
    assert platform.deep_link_errors == []
    assert platform.deep_link_responses == [
        [
            {
                "type": "ltiResourceLink",
                "title": "Golf (north)",
                "url": "http://testserver/lti/launch/",
                "lineItem": {"scoreMaximum": 100, "label": "Golf (north)", "resourceId": planned.resource_id},
                "custom": {
                    "hub_target": "class",
                    "hub_activity": value,
                    "hub_placement": planned.resource_id,
                },
            }
        ]
    ]

    # A student launches the placed link from the LMS: the player opens in the frame.
    placed = platform.deep_link_responses[0][0]
    student = type(client)()
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
    assert launch["Location"] == f"/scorm/classes/{klass.pk}/packages/{package.pk}/play/"
    player = student.get(launch["Location"])
    assert player.status_code == 200
    assert f'<iframe id="scorm-player" src="{CONTENT}/p/' in player.content.decode()
    attempt = ScormAttempt.objects.get()
    assert attempt.activity.activity_id == planned.activity_id
    link = ResourceLink.objects.get(resource_link_id="lms-link-1")
    assert link.custom["hub_activity"] == value
    bound = LineItem.objects.get()
    assert (bound.pk, bound.url) == (planned.pk, LINEITEMS + "/41")

    # What the course commits is recorded under the column's activity.
    commit = student.post(
        "/scorm/runtime/commit",
        json.dumps(
            {
                "token": content.commit_token(attempt_id=attempt.pk),
                "session": "s1",
                "sequence": 0,
                "cmi": {"cmi.core.lesson_status": "passed", "cmi.core.score.raw": "90"},
                "terminate": True,
            }
        ),
        content_type="application/json",
        HTTP_ORIGIN=CONTENT,
    )
    assert commit.status_code == 200
    result = Result.objects.get(user=attempt.learner)
    assert (result.activity_id, result.score_given) == (planned.activity_id, Decimal("90.0000"))


def test_a_placed_course_that_is_gone_opens_the_class_page(
    client: Any, platform: LtiPlatform, registration: Any
) -> None:
    package = make_package(registration.tenant)
    launch = run_launch(
        client,
        platform,
        platform.launch(
            sub="student-2",
            roles=[ROLE_LEARNER],
            context_id="course-1",
            resource_link_id="lms-link-2",
            custom={"hub_target": "class", "hub_activity": f"scorm:{package.pk}"},
        ),
    ).response
    klass = ClassKey.objects.get(subject=f"{platform.deployment_id}/course-1").klass
    assert launch["Location"] == f"/scorm/classes/{klass.pk}/packages/{package.pk}/play/"
    package.delete()
    again = run_launch(
        client,
        platform,
        platform.launch(
            sub="student-2",
            roles=[ROLE_LEARNER],
            context_id="course-1",
            resource_link_id="lms-link-2",
            custom={"hub_target": "class", "hub_activity": f"scorm:{package.pk}"},
        ),
    ).response
    assert again["Location"] == f"/classes/{klass.pk}/"
