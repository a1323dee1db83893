"""The home page offers only what the hub can do (issue 11, point 7): a next step that
names a page shows only when that page exists, and demo mode links the launch simulator
through settings.DEMO_HOME_LINKS."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from tests.conftest import Personas
from tests.factories import district_admin
from tutoring_core.accounts.models import Role
from tutoring_core.web import views

pytestmark = pytest.mark.django_db


def _home(client: Any, user: Any) -> str:
    client.force_login(user)
    response = client.get(reverse("web:home"))
    assert response.status_code == 200
    return response.content.decode()


def test_a_step_whose_page_does_not_exist_is_not_shown(
    client: Any, personas: Personas, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(
        views.NEXT_STEPS,
        Role.TEACHER,
        [
            ("Set your weekly availability.", "scheduling:not_built_yet"),
            ("Book from a page of an app that is not installed.", "nowhere:booking"),
            ("See your sessions.", "scheduling:my_sessions"),
            "Review your classes' rosters below.",
        ],
    )
    html = _home(client, personas.owner)
    assert '<li><a href="/scheduling/sessions/">See your sessions.</a></li>' in html
    assert "<li>Review your classes&#x27; rosters below.</li>" in html
    assert "weekly availability" not in html
    assert "not installed" not in html


def test_district_admin_steps_open_the_admin_pages_that_do_them(client: Any, personas: Personas) -> None:
    html = _home(client, district_admin(personas.tenant))
    for href, text in [
        ("/admin/oneroster/rosterconnection/", "Connect your student information system (roster sync)."),
        ("/admin/lti_tool/platformregistration/", "Register your LMS (LTI 1.3)."),
        ("/admin/sso/identityprovider/", "Register your identity provider (single sign-on)."),
        ("/admin/accounts/auditlog/", "Review the audit log."),
        ("/scheduling/tutors/", "Make people tutors and set what they teach."),
    ]:
        assert f'<li><a href="{href}">{text}</a></li>' in html


def test_every_step_names_a_page_that_exists() -> None:
    # The shipped steps: none is silently hidden because its URL name is misspelt.
    names = [step[1] for steps in views.NEXT_STEPS.values() for step in steps if not isinstance(step, str)]
    assert names and all(views._resolve(name) for name in names), names


def test_demo_mode_links_the_launch_simulator(client: Any, personas: Personas, settings: Any) -> None:
    settings.DEMO_MODE = True
    html = _home(client, personas.owner)
    assert '<li><a href="/lti/demo/">Try the LMS launch simulator</a></li>' in html


def test_outside_demo_mode_no_simulator_link(client: Any, personas: Personas, settings: Any) -> None:
    settings.DEMO_MODE = False
    html = _home(client, personas.owner)
    assert "/lti/demo/" not in html
    assert "<h2>Demo</h2>" not in html


def test_a_demo_link_to_a_page_that_does_not_exist_is_dropped(
    client: Any, personas: Personas, settings: Any
) -> None:
    settings.DEMO_MODE = True
    settings.DEMO_HOME_LINKS = [("Try the simulator", "nowhere:simulator")]
    html = _home(client, personas.owner)
    assert "Try the simulator" not in html
    assert "<h2>Demo</h2>" not in html
