"""The demo launch simulator, end to end over HTTP against the live server."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from lti_tool import demo
from tests.peers.lti_platform import LtiPlatform
from tutoring_core import http
from tutoring_core.accounts.models import ExternalIdentity
from tutoring_core.web.demo import demo_load

pytestmark = pytest.mark.peer


@pytest.fixture
def demo_server(live_server: Any, settings: Any) -> Iterator[str]:
    settings.DEMO_MODE = True
    settings.PUBLIC_BASE_URL = live_server.url
    demo_load()
    assert demo.simulator_register() is not None
    assert demo.simulator_register() is not None  # idempotent
    yield live_server.url
    # The tool's pooled HTTP client keeps a connection to the live server (it fetched
    # the simulator's JWKS); close it before the server stops.
    for pooled in http._sessions.values():
        pooled.close()


def _localhost_is_secure(session: requests.Session) -> None:
    """Browsers send Secure cookies to http://localhost (a secure context); requests
    does not, so clear the flag on what the server set, as a browser would treat it."""
    for cookie in session.cookies:
        cookie.secure = False


def _walk(session: requests.Session, base: str, query: str) -> requests.Response:
    page = session.get(f"{base}/lti/demo/?{query}", timeout=10)
    assert page.status_code == 200
    action, fields = LtiPlatform.parse_form(page.text)
    login = session.post(action, data=fields, allow_redirects=False, timeout=10)
    assert login.status_code == 302, login.text[:300]
    _localhost_is_secure(session)
    auth = session.get(login.headers["Location"], timeout=10)
    assert auth.status_code == 200, auth.text[:300]
    _localhost_is_secure(session)
    action, fields = LtiPlatform.parse_form(auth.text)
    launched = session.post(action, data=fields, allow_redirects=False, timeout=10)
    assert launched.status_code == 302, launched.text[:500]
    _localhost_is_secure(session)
    return session.get(demo_server_url(action) + launched.headers["Location"], timeout=10)


def demo_server_url(url: str) -> str:
    return "/".join(url.split("/")[:3])


@pytest.mark.parametrize(("persona", "username"), [("teacher", "teacher@demo"), ("student", "student1@demo")])
def test_simulator_launches_demo_people_into_the_demo_class(
    demo_server: str, persona: str, username: str
) -> None:
    landed = _walk(requests.Session(), demo_server, f"as={persona}")
    assert landed.status_code == 200
    assert "<h1>Algebra I — Period 2</h1>" in landed.text
    assert re.search(r"/classes/[0-9a-f-]{36}/$", landed.url)
    identity = ExternalIdentity.objects.get(
        kind="lti", issuer=demo.issuer(), subject=f"sim-{username.split('@')[0]}"
    )
    assert identity.user.username == username


def test_simulator_deep_linking_round_trip(demo_server: str) -> None:
    session = requests.Session()
    picker = _walk(session, demo_server, "as=teacher&message=deeplink")
    _localhost_is_secure(session)
    assert picker.status_code == 200
    assert 'value="class"' in picker.text
    csrf = session.cookies.get("csrftoken")
    answer = session.post(
        picker.url,
        data={"item": ["class", "booking"], "csrfmiddlewaretoken": csrf},
        headers={"Referer": picker.url},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text[:500]
    action, fields = LtiPlatform.parse_form(answer.text)
    placed = session.post(action, data=fields, timeout=10)
    assert placed.status_code == 200, placed.text
    assert re.findall(r'data-title="([^"]+)"', placed.text) == [
        "Algebra I — Period 2: tutoring",
        "Algebra I — Period 2: book a tutor",
    ]


def test_simulator_is_absent_outside_demo_mode(client: Any, settings: Any) -> None:
    settings.DEMO_MODE = False
    assert client.get("/lti/demo/?as=teacher").status_code == 404
    assert client.get("/lti/demo/platform/jwks.json").status_code == 404


def test_simulator_opens_what_deep_linking_placed(demo_server: str) -> None:
    """Issue 11: the simulated LMS keeps the placed items as resource links and opens
    them; a graded one is a column on the teacher's grades page."""
    from lti_tool.advantage.models import LineItem
    from lti_tool.models import ResourceLink, SimulatorPlacement

    teacher = requests.Session()
    picker = _walk(teacher, demo_server, "as=teacher&message=deeplink")
    _localhost_is_secure(teacher)
    answer = teacher.post(
        picker.url,
        data={
            "item": ["class"],
            "gradable": ["class"],
            "csrfmiddlewaretoken": teacher.cookies.get("csrftoken"),
        },
        headers={"Referer": picker.url},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text[:500]
    action, fields = LtiPlatform.parse_form(answer.text)
    placed = teacher.post(action, data=fields, timeout=10)
    assert placed.status_code == 200, placed.text
    placement = SimulatorPlacement.objects.get()
    planned = LineItem.objects.get()
    assert (placement.title, placement.custom, placement.line_item) == (
        "Algebra I — Period 2: tutoring",
        {"hub_target": "class", "hub_placement": planned.resource_id},
        {"scoreMaximum": 100, "label": "Algebra I — Period 2: tutoring", "resourceId": planned.resource_id},
    )
    assert f'href="/lti/demo/?as=student&amp;placement={placement.pk}"' in placed.text

    klass_id = planned.activity.klass_id
    grades = teacher.get(f"{demo_server}/lti/advantage/classes/{klass_id}/grades/", timeout=10)
    assert grades.status_code == 200
    assert 'Algebra I — Period 2: tutoring <span class="muted">/ 100</span>' in grades.text
    assert "LMS column: Algebra I — Period 2: tutoring (links when the LMS first opens it)" in grades.text

    course = requests.get(f"{demo_server}/lti/demo/", timeout=10).text
    assert f'data-placement="{placement.resource_link_id}"' in course
    landed = _walk(requests.Session(), demo_server, f"as=student&placement={placement.pk}")
    assert landed.status_code == 200
    assert "<h1>Algebra I — Period 2</h1>" in landed.text
    link = ResourceLink.objects.get(resource_link_id=placement.resource_link_id)
    assert (link.title, link.target, link.custom) == (
        "Algebra I — Period 2: tutoring",
        "class",
        {"hub_target": "class", "hub_placement": planned.resource_id},
    )
    assert landed.url == f"{demo_server}/classes/{klass_id}/"


def test_simulator_refuses_an_unknown_placement(client: Any, settings: Any) -> None:
    settings.DEMO_MODE = True
    assert (
        client.get("/lti/demo/?as=student&placement=00000000-0000-0000-0000-000000000000").status_code == 404
    )
    assert client.get("/lti/demo/?as=student&placement=not-a-uuid").status_code == 404
