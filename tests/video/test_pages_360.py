"""The video pages at 360 px in headless Chromium: the room before joining, the student in the
waiting room, the tutor admitting them, the call itself, the refused page and the tutor's
attendance page, a provider's room, the recording page and the class page's attendance fit
without sideways scrolling and have no serious or critical axe-core
violation; the room is used by keyboard alone (Join, Admit, the call controls, chat), and
every control has a name a screen reader announces."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.utils import timezone

from tests import factories as f
from tests.scheduling.factories import SessionFactory, SessionParticipantFactory
from tests.video.harness import asgi_server
from tutoring_core.accounts.models import GuardianLink
from tutoring_core.scheduling.models import Session
from tutoring_core.video import services
from tutoring_core.video.models import Attendance, Recording, Room, VideoPolicy

pytestmark = [pytest.mark.browser]

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
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]
VIEWPORT = {"width": 360, "height": 740}
AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
# The call controls a tutor has, in Tab order, with the names a screen reader reads out.
TUTOR_CONTROLS = [
    ("mute", "Mute"),
    ("camera", "Camera off"),
    ("screen", "Share screen"),
    ("leave", "Leave"),
    ("end", "End session for everyone"),
]


@pytest.fixture
def booked(transactional_db: Any, settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    # Playwright's sync API runs an event loop in this thread; the ORM calls below run
    # between its calls, never concurrently with it.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    settings.WHITENOISE_USE_FINDERS = True
    settings.WHITENOISE_AUTOREFRESH = True
    tenant = f.TenantFactory(slug="north", name="North District")
    tutor = f.UserFactory(tenant=tenant, first_name="Tess", last_name="Tutor")
    student = f.UserFactory(tenant=tenant, first_name="Sam", last_name="Student")
    start = timezone.now().replace(microsecond=0) - dt.timedelta(minutes=1)
    session = SessionFactory(tutor=tutor, start=start, end=start + dt.timedelta(hours=1), subject="Algebra")
    SessionParticipantFactory(session=session, student=student)
    yield {"tutor": tutor, "student": student, "session": session}


def _page(browser: Any, base: str, user: Any) -> Any:
    client = Client()
    client.force_login(user)
    name = django_settings.SESSION_COOKIE_NAME
    context = browser.new_context(viewport=VIEWPORT)
    context.add_cookies([{"name": name, "value": client.cookies[name].value, "url": base}])
    return context.new_page()


def _axe_serious(page: Any) -> list[tuple[str, str, list[str]]]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [
        (v["id"], v["impact"], [n["target"][0] for n in v["nodes"]][:3])
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def _fits_and_is_accessible(page: Any, what: str) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{what} scrolls sideways by {overflow}px at 360px"
    assert _axe_serious(page) == [], what


def _tab_to(page: Any, check: str, limit: int = 40) -> None:
    """Press Tab until ``check`` (a JS expression on document.activeElement ``el``) holds."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate(f"(() => {{ const el = document.activeElement; return {check}; }})()"):
            return
    raise AssertionError(f"Tab never reached {check!r} on {page.url}")


def _focused_id(page: Any) -> str:
    return str(page.evaluate("document.activeElement ? document.activeElement.id : ''"))


def test_room_waiting_room_and_call_fit_360px_and_work_by_keyboard(booked: dict[str, Any]) -> None:
    from playwright.sync_api import sync_playwright

    with asgi_server() as base, sync_playwright() as playwright:
        url = f"{base}/video/sessions/{booked['session'].pk}/"
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            tutor = _page(browser, base, booked["tutor"])
            tutor.goto(url)
            tutor.wait_for_selector("#room-status[data-state=ready]", timeout=30_000)
            assert tutor.locator("h1").inner_text() == "Algebra"
            _fits_and_is_accessible(tutor, "the room before joining")
            # Join by keyboard.
            _tab_to(tutor, "el && el.id === 'join'")
            tutor.keyboard.press("Enter")
            tutor.wait_for_selector("#room-status[data-state=joined]", timeout=20_000)

            student = _page(browser, base, booked["student"])
            student.goto(url)
            student.wait_for_selector("#room-status[data-state=ready]", timeout=30_000)
            _tab_to(student, "el && el.id === 'join'")
            student.keyboard.press("Enter")
            student.wait_for_selector("#room-status[data-state=waiting]", timeout=20_000)
            assert student.locator("#room-status").inner_text() == "Waiting for the tutor to let you in…"
            _fits_and_is_accessible(student, "the waiting room (student)")

            # The tutor sees the knock and admits by keyboard; the button says whom it admits.
            admit = tutor.get_by_role("button", name="Admit Sam Student", exact=True)
            admit.wait_for(timeout=20_000)
            _fits_and_is_accessible(tutor, "the room with someone waiting (tutor)")
            _tab_to(tutor, "el && el.getAttribute('aria-label') === 'Admit Sam Student'")
            tutor.keyboard.press("Enter")
            for page in (tutor, student):
                page.wait_for_selector("#room-status[data-state=connected]", timeout=30_000)
            tutor.wait_for_selector("[data-peer] video", timeout=20_000)
            _fits_and_is_accessible(tutor, "the call (tutor)")
            _fits_and_is_accessible(student, "the call (student)")

            # Every call control has a name and is reached by Tab, in order.
            for control, name in TUTOR_CONTROLS:
                assert tutor.get_by_role("button", name=name, exact=True).get_attribute("id") == control
            tutor.evaluate("document.activeElement && document.activeElement.blur()")
            tutor.evaluate("window.scrollTo(0, 0)")
            _tab_to(tutor, f"el && el.id === '{TUTOR_CONTROLS[0][0]}'")
            for control, _name in TUTOR_CONTROLS[1:]:
                tutor.keyboard.press("Tab")
                assert _focused_id(tutor) == control
            assert student.get_by_role("button", name="End session for everyone").count() == 0
            # Space toggles mute, and the button says so.
            _tab_to(student, "el && el.id === 'mute'")
            student.keyboard.press("Space")
            mute = student.locator("#mute")
            assert mute.get_attribute("aria-pressed") == "true"
            assert mute.inner_text() == "Unmute"
            # Chat by keyboard: the field has a label; Enter sends.
            assert student.get_by_label("Message", exact=True).get_attribute("id") == "chat-text"
            _tab_to(student, "el && el.id === 'chat-text'")
            student.keyboard.type("Can you see my work?")
            student.keyboard.press("Enter")
            tutor.wait_for_selector("#chat-log li:has-text('Can you see my work?')", timeout=10_000)
            _fits_and_is_accessible(tutor, "the call with chat (tutor)")
        finally:
            browser.close()


def test_refused_and_attendance_pages_fit_360px(booked: dict[str, Any]) -> None:
    from playwright.sync_api import sync_playwright

    session, tutor, student = booked["session"], booked["tutor"], booked["student"]
    access = services.room_access(user=tutor, session_id=session.pk)
    services.attendance_finalize(actor=tutor, room_id=access.room_id)
    assert Attendance.objects.get(person=student).outcome == "no_show"

    with asgi_server() as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            # The tutor's attendance page: the table scrolls in its own region, not the page.
            page = _page(browser, base, tutor)
            response = page.goto(f"{base}/video/sessions/{session.pk}/attendance/")
            assert response is not None and response.status == 200
            assert page.locator("td.outcome").inner_text() == "no_show"
            _fits_and_is_accessible(page, "the attendance page")
            # By keyboard: the outcome for the student, then Save.
            _tab_to(page, "el && el.tagName === 'SELECT'")
            assert page.get_by_label("Outcome for Sam Student", exact=True).evaluate(
                "el => el === document.activeElement"
            )
            page.keyboard.press("Tab")
            assert page.evaluate("document.activeElement.textContent") == "Save"

            # The room of an ended session refuses, with the reason.
            page = _page(browser, base, student)
            response = page.goto(f"{base}/video/sessions/{session.pk}/")
            assert response is not None and response.status == 410
            assert (
                page.locator("#refused-reason").inner_text() == "This session has ended; its room is closed."
            )
            _fits_and_is_accessible(page, "the refused page (ended)")

            # A cancelled session's room refuses too.
            Session.objects.filter(pk=session.pk).update(status=Session.Status.CANCELLED)
            response = page.goto(f"{base}/video/sessions/{session.pk}/")
            assert response is not None and response.status == 410
            assert (
                page.locator("#refused-reason").inner_text()
                == "This session was cancelled; its room is closed."
            )
            _fits_and_is_accessible(page, "the refused page (cancelled)")
        finally:
            browser.close()


def test_provider_room_recording_and_class_attendance_pages_fit_360px(booked: dict[str, Any]) -> None:
    """A LiveKit room that records: its page with the banner, the recording page with its
    recordings (ready, failed) and the consent table, and the class page's attendance summary;
    each at 360 px, axe-clean, and used by keyboard (Join, End, Withdraw)."""
    from playwright.sync_api import sync_playwright

    session, tutor, student = booked["session"], booked["tutor"], booked["student"]
    tenant = tutor.tenant
    guardian = f.UserFactory(tenant=tenant, first_name="Gail", last_name="Guardian")
    GuardianLink.objects.create(tenant=tenant, guardian=guardian, student=student)
    VideoPolicy.objects.create(
        tenant=tenant,
        provider="livekit",
        server_url="wss://lk.example.org",
        client_url="https://meet.example.org/custom",
        app_id="APIhubtest",
        secret="lk-secret-0123456789abcdef0123456789",
        recording_allowed=True,
    )
    services.consent_set(actor=guardian, session_id=session.pk, student_id=student.pk, given=True)
    services.recording_request(actor=tutor, session_id=session.pk)
    services.provider_join(access=services.room_access(user=student, session_id=session.pk))
    room = Room.objects.get(session_id=session.pk)
    assert room.recorded is True
    Recording.objects.create(
        room=room,
        external_id="EG_1",
        state="ready",
        file_name="video-recordings/x.mp4",
        file_location="https://media.example.org/video-recordings/x.mp4",
    )
    Recording.objects.create(
        room=room, external_id="EG_2", state="failed", failure_reason="Start signal not received"
    )
    klass = f.ClassFactory(tenant=tenant, title="Algebra I")
    f.EnrollmentFactory(klass=klass, user=tutor, role="teacher")
    f.EnrollmentFactory(klass=klass, user=student, role="student")
    Session.objects.filter(pk=session.pk).update(klass=klass)

    with asgi_server() as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            page = _page(browser, base, tutor)
            page.goto(f"{base}/video/sessions/{session.pk}/")
            assert page.locator("#recording-banner").is_visible()
            _fits_and_is_accessible(page, "the provider room (recorded)")
            _tab_to(page, "el && el.id === 'join'")
            page.keyboard.press("Tab")
            assert _focused_id(page) == "end"

            page.goto(f"{base}/video/sessions/{session.pk}/recording/")
            states = page.locator("#recordings li").evaluate_all("els => els.map(e => e.dataset.state)")
            assert states == ["ready", "failed"]
            assert page.locator("#recordings .failure").inner_text() == "Start signal not received"
            _fits_and_is_accessible(page, "the recording page (tutor)")

            page = _page(browser, base, guardian)
            page.goto(f"{base}/video/sessions/{session.pk}/recording/")
            _fits_and_is_accessible(page, "the recording page (guardian)")
            _tab_to(page, "el && el.getAttribute('aria-label') === 'Withdraw consent to record Sam Student'")
            page.keyboard.press("Enter")
            page.wait_for_selector("button[aria-label='I consent to recording Sam Student']", timeout=10_000)
            assert page.locator("td.consent").inner_text() == "not given"
            assert page.locator("#recordings li").evaluate_all("els => els.map(e => e.dataset.state)") == [
                "deleted",
                "failed",
            ]
            _fits_and_is_accessible(page, "the recording page after withdrawing")

            services.attendance_finalize(actor=tutor, room_id=room.pk)  # the tutor ends the session
            page = _page(browser, base, tutor)
            page.goto(f"{base}/classes/{klass.pk}/")
            row = page.locator("section:has-text('Tutoring session attendance') tbody tr")
            assert row.inner_text().split("\t") == [
                "Sam Student",
                "1",
                "0",
                "0",
                "0",
                "1",
            ]  # never joined: a no-show
            _fits_and_is_accessible(page, "the class page with attendance")
            _tab_to(page, "el && el.getAttribute('aria-label') === 'Tutoring session attendance'")
        finally:
            browser.close()
