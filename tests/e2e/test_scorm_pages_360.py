"""The SCORM player page and the attempts page at 360 px in headless Chromium: no
sideways scrolling, no serious or critical axe-core violation, usable by keyboard
(the course frame and the link to the attempts are reached with Tab), for a student
and for the class's teacher, and the attempts-used-up page (409) too.

The course itself (the package's HTML in the player's frame) is the author's, not
ours: axe checks our pages with ``iframes: false``."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client

from scorm.models import ScormActivity, ScormAttempt
from tests.scorm.player_world import content_server, make_player_world

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
]
AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"


@pytest.fixture
def env(live_server: Any, settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    # Playwright's sync API runs an event loop in this thread; the ORM calls below run
    # between its calls, never concurrently with it.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    settings.FRAME_ANCESTORS = []
    settings.SCORM_AUTOCOMMIT_SECONDS = 1
    with content_server(settings, live_server.url) as origin:
        yield {"base": live_server.url, "origin": origin}


def _signed_in(context: Any, base: str, user: Any) -> None:
    client = Client()
    client.force_login(user)
    name = django_settings.SESSION_COOKIE_NAME
    context.clear_cookies()
    context.add_cookies([{"name": name, "value": client.cookies[name].value, "url": base}])


def _axe_serious(page: Any) -> list[tuple[str, str, list[str]]]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("axe.run(document, {resultTypes: ['violations'], iframes: false})")
    return [
        (v["id"], v["impact"], [n["target"][0] for n in v["nodes"]][:3])
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def _fits_and_is_accessible(page: Any) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{page.url} scrolls sideways by {overflow}px at 360px"
    assert _axe_serious(page) == [], page.url


def _tab_to(page: Any, check: str, limit: int = 40) -> None:
    """Press Tab until ``check`` (a JS expression on document.activeElement) holds."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate(f"(() => {{ const el = document.activeElement; return {check}; }})()"):
            return
    raise AssertionError(f"Tab never reached {check!r} on {page.url}")


def _wait(check: Any, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError("the condition never held")


def test_player_and_attempts_pages_fit_360px_work_by_keyboard_and_are_axe_clean(env: dict[str, Any]) -> None:
    from playwright.sync_api import sync_playwright

    base = env["base"]
    world = make_player_world()
    play = f"{base}/scorm/classes/{world.klass.pk}/packages/{world.package.pk}/play/"
    attempts = f"{base}/scorm/classes/{world.klass.pk}/attempts/"

    with tempfile.TemporaryDirectory() as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
            viewport={"width": 360, "height": 740},
        )
        try:
            page = context.pages[0] if context.pages else context.new_page()

            # The student opens the course: the player page, its frame from the content origin.
            _signed_in(context, base, world.student)
            page.goto(play)
            page.wait_for_selector("#scorm-player")
            assert page.locator("#scorm-player").get_attribute("src").startswith(env["origin"] + "/p/")
            _wait(lambda: ScormAttempt.objects.filter(learner=world.student, commits__gt=0).exists())
            _fits_and_is_accessible(page)
            # By keyboard: into the course frame, and on to the link to the attempts.
            _tab_to(page, "el && el.id === 'scorm-player'")
            _tab_to(page, "el && el.tagName === 'A' && el.textContent.trim() === 'My attempts'", limit=200)
            page.keyboard.press("Enter")
            page.wait_for_url(attempts)
            assert page.locator("h1").inner_text() == "My SCORM attempts"
            assert page.locator("tbody tr").count() == 1
            _fits_and_is_accessible(page)

            # The teacher's view of the class's attempts (a wide table in its scrolling wrapper).
            _signed_in(context, base, world.teacher)
            page.goto(attempts)
            assert page.locator("h1").inner_text() == "SCORM attempts"
            assert page.locator("tbody tr td").first.inner_text() == "Ann Lee"
            _fits_and_is_accessible(page)
            _tab_to(
                page, f"el && el.tagName === 'A' && el.getAttribute('href').includes('{world.package.pk}')"
            )
            page.keyboard.press("Enter")
            page.wait_for_url(play)
            page.wait_for_selector("#scorm-player")
            _fits_and_is_accessible(page)

            # Attempts used up: the refusal page says why, and fits too.
            ScormActivity.objects.filter(klass=world.klass).update(max_attempts=1)
            ScormAttempt.objects.filter(learner=world.student).update(state=ScormAttempt.State.FINISHED)
            _signed_in(context, base, world.student)
            response = page.goto(play)
            assert response is not None and response.status == 409
            assert page.locator("[role=alert]").inner_text() == (
                "You have used all 1 attempts at this activity; your teacher can allow more."
            )
            _fits_and_is_accessible(page)
        finally:
            context.close()
