"""Booking a tutor in headless Chromium.

1. Inside a cross-site LMS iframe with third-party cookies blocked: the "Book a tutor"
   placement launches a student onto the class's booking page (the LMS page is served
   by the loopback platform on 127.0.0.1, the tool is the live server on localhost);
   one click holds a slot, a second confirms it, all through partitioned cookies.
2. At 360 px wide, by keyboard: the booking page, confirm step, upcoming sessions,
   a tutor's week view and availability editor (with an error shown) and the district
   admin's tutor pages fit without sideways scrolling and have no serious or critical
   axe-core violation.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client

from tests.peers.lti_platform import ROLE_LEARNER, LtiPlatform

pytestmark = [pytest.mark.browser, pytest.mark.peer]

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"


@pytest.fixture
def env(live_server: Any, settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    # Playwright's sync API runs an event loop in this thread; the ORM calls below run
    # between its calls, never concurrently with it.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    base = live_server.url  # http://localhost:<port>
    settings.PUBLIC_BASE_URL = base
    with LtiPlatform(tool_launch_url=base + "/lti/launch/", tool_login_url=base + "/lti/login/") as platform:
        settings.FRAME_ANCESTORS = [platform.base_url]
        from lti_tool.models import Deployment, PlatformRegistration
        from tests.factories import TenantFactory, UserFactory, district_admin
        from tests.scheduling.factories import AvailabilityRuleFactory, TutorProfileFactory

        tenant = TenantFactory(slug="north", name="North District", time_zone="America/Chicago")
        registration = PlatformRegistration.objects.create(
            tenant=tenant,
            issuer=platform.issuer,
            client_id=platform.client_id,
            auth_login_url=platform.auth_url,
            auth_token_url=platform.token_url,
            key_set_url=platform.jwks_url,
        )
        Deployment.objects.create(
            tenant=tenant, registration=registration, deployment_id=platform.deployment_id
        )
        tutor = UserFactory(tenant=tenant, username="priya", first_name="Priya", last_name="Shah")
        # Serves the whole district, every day all day: free slots whatever the clock says.
        profile = TutorProfileFactory(
            user=tutor,
            session_lengths=[30, 60],
            subjects=["Algebra"],
            languages=["English"],
            bio="Algebra coach.",
        )
        for day in range(7):
            AvailabilityRuleFactory(tutor=profile, weekday=day, start_minute=0, end_minute=1440)
        admin = district_admin(tenant, username="north-admin")
        yield {"platform": platform, "base": base, "tenant": tenant, "tutor": tutor, "admin": admin}


def _browser(playwright: Any, profile: Path, **kwargs: Any) -> Any:
    # Chromium's "Block third-party cookies" setting, as a user would switch it on.
    default = profile / "Default"
    default.mkdir(parents=True)
    (default / "Preferences").write_text(
        json.dumps({"profile": {"cookie_controls_mode": 1, "block_third_party_cookies": True}})
    )
    return playwright.chromium.launch_persistent_context(
        str(profile), executable_path=CHROMIUM, headless=True, args=FLAGS, **kwargs
    )


def _frame_with(page: Any, base: str, text: str, timeout_s: float = 30) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for frame in page.frames:
            if frame.url.startswith(base):
                try:
                    if text in frame.content():
                        return frame
                except Exception:  # noqa: S110 - the frame navigates while we look
                    pass
        page.wait_for_timeout(100)
    raise AssertionError(f"{text!r} never appeared in the tool frame: {[f.url for f in page.frames]}")


def _axe_serious(target: Any) -> list[tuple[str, str, list[str]]]:
    target.add_script_tag(path=str(AXE))
    result = target.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [
        (v["id"], v["impact"], [n["target"][0] for n in v["nodes"]][:3])
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def _fits_and_is_accessible(page: Any) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{page.url} scrolls sideways by {overflow}px at 360px"
    assert _axe_serious(page) == [], page.url


def test_student_books_a_slot_inside_a_cross_site_lms_iframe(env: dict[str, Any]) -> None:
    from playwright.sync_api import sync_playwright

    from tutoring_core.scheduling.models import Session

    platform: LtiPlatform = env["platform"]
    base = env["base"]
    spec = platform.launch(
        sub="student-1",
        roles=[ROLE_LEARNER],
        name="Ava Nguyen",
        context_title="Algebra I",
        resource_link_id="book-a-tutor",
        custom={"hub_target": "booking"},
    )
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as playwright:
        context = _browser(playwright, Path(profile))
        try:
            page = context.new_page()
            page.goto(f"{platform.base_url}/course?launch={spec.hint}")
            frame = _frame_with(page, base, "Book a tutor: Algebra I")
            assert "/scheduling/classes/" in frame.url and frame.url.endswith("/book/")
            assert _axe_serious(frame) == []
            first_slot = frame.locator("button.slot").first
            chosen = first_slot.get_attribute("value")
            first_slot.click()  # click 1: a short hold
            frame = _frame_with(page, base, "Confirm your session")
            assert "Cancel at least 24 hours before the start" in frame.content()
            assert _axe_serious(frame) == []
            frame.locator("#confirm-booking").click()  # click 2: booked
            frame = _frame_with(page, base, "Your session is booked.")
            assert "Upcoming sessions" in frame.content()
            assert "with Priya Shah" in frame.content()
            assert _axe_serious(frame) == []
            cookies = {c["name"]: c for c in context.cookies(base)}
        finally:
            context.close()
    session = Session.objects.get()
    assert session.status == "booked"
    assert session.tutor == env["tutor"]
    assert session.klass is not None and session.klass.title == "Algebra I"
    assert [p.student.full_name for p in session.participants.all()] == ["Ava Nguyen"]
    assert chosen is not None and chosen.split("|")[1] == session.start.isoformat()
    # The frame kept its sign-in through partitioned cookies only.
    assert cookies[django_settings.SESSION_COOKIE_NAME].get("partitionKey")
    assert cookies[django_settings.CSRF_COOKIE_NAME].get("partitionKey")


def _signed_in(context: Any, base: str, user: Any) -> None:
    client = Client()
    client.force_login(user)
    name = django_settings.SESSION_COOKIE_NAME
    context.clear_cookies()
    context.add_cookies([{"name": name, "value": client.cookies[name].value, "url": base}])


def test_pages_fit_360px_work_by_keyboard_and_are_axe_clean(env: dict[str, Any]) -> None:
    from playwright.sync_api import sync_playwright

    from tests.factories import ClassFactory, EnrollmentFactory, GuardianLinkFactory, UserFactory
    from tutoring_core.accounts.models import Role
    from tutoring_core.scheduling.models import AvailabilityRule, Session

    base = env["base"]
    tenant = env["tenant"]
    klass = ClassFactory(tenant=tenant, title="Algebra I")
    student = UserFactory(tenant=tenant, username="ava", first_name="Ava", last_name="Nguyen")
    EnrollmentFactory(klass=klass, user=student, role=Role.STUDENT)
    teacher = UserFactory(tenant=tenant, username="terry", first_name="Terry", last_name="Okafor")
    EnrollmentFactory(klass=klass, user=teacher, role=Role.TEACHER)
    guardian = UserFactory(tenant=tenant, username="grace", first_name="Grace", last_name="Nguyen")
    GuardianLinkFactory(tenant=tenant, guardian=guardian, student=student)

    with tempfile.TemporaryDirectory() as profile, sync_playwright() as playwright:
        context = _browser(playwright, Path(profile), viewport={"width": 360, "height": 740})
        try:
            page = context.new_page()

            # A teacher books for a student, by keyboard: pick the student, tab to a slot, Enter.
            _signed_in(context, base, teacher)
            page.goto(f"{base}/scheduling/classes/{klass.pk}/book/")
            _fits_and_is_accessible(page)
            page.get_by_label("Book for").select_option(str(student.pk))
            page.get_by_label("Book for").focus()
            for _ in range(30):  # past the student select to the first slot
                page.keyboard.press("Tab")
                if page.evaluate("document.activeElement.classList.contains('slot')"):
                    break
            assert page.evaluate("document.activeElement.classList.contains('slot')")
            with page.expect_navigation():
                page.keyboard.press("Enter")
            assert "/confirm/" in page.url
            _fits_and_is_accessible(page)
            page.locator("#confirm-booking").focus()
            with page.expect_navigation():
                page.keyboard.press("Enter")
            assert "Your session is booked." in page.content()
            _fits_and_is_accessible(page)

            # The guardian sees the ward's session with its actions.
            _signed_in(context, base, guardian)
            page.goto(f"{base}/scheduling/sessions/")
            assert "Ava Nguyen&#x27;s sessions" in page.content() or "Ava Nguyen's sessions" in page.content()
            _fits_and_is_accessible(page)
            reschedule = page.get_by_role("link", name="Reschedule").first
            reschedule.click()
            page.wait_for_url("**/reschedule/")
            _fits_and_is_accessible(page)

            # The tutor's week and availability editor (with an error next to its field).
            _signed_in(context, base, env["tutor"])
            page.goto(f"{base}/scheduling/week/")
            assert "Ava Nguyen" in page.content() or "Next week" in page.content()
            _fits_and_is_accessible(page)
            page.goto(f"{base}/scheduling/availability/")
            _fits_and_is_accessible(page)
            page.get_by_label("Until").first.fill("00:00")  # Monday ends before it starts
            with page.expect_navigation() as saved:
                page.get_by_role("button", name="Save availability").click()
            assert saved.value.status == 400
            assert "A rule must end after it starts" in page.content()
            _fits_and_is_accessible(page)
            assert AvailabilityRule.objects.filter(tutor__user=env["tutor"]).count() == 7

            # The district admin's tutor list and profile form.
            _signed_in(context, base, env["admin"])
            page.goto(f"{base}/scheduling/tutors/")
            _fits_and_is_accessible(page)
            # Any student of the district, found by name and typed Enter, booked in their class.
            page.get_by_label("Student's name, email or username").fill("Ava")
            page.keyboard.press("Enter")
            page.wait_for_url("**/scheduling/tutors/?q=Ava")
            _fits_and_is_accessible(page)
            page.get_by_role("link", name="Book in Algebra I").click()
            page.wait_for_url("**/book/?student=*")
            _fits_and_is_accessible(page)
            page.goto(f"{base}/scheduling/tutors/")
            page.get_by_role("link", name="Priya Shah").click()
            page.wait_for_url("**/scheduling/tutors/*/")
            _fits_and_is_accessible(page)
        finally:
            context.close()
    session = Session.objects.get()
    assert (session.status, session.created_by) == ("booked", teacher)
