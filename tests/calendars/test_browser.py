"""The calendar settings page in headless Chromium at 360 px: no sideways scrolling, no
serious or critical axe-core violation (also with an error shown), and the feed URL
reset by keyboard alone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

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
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls run between its calls.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


def _axe_serious(page: Any) -> list[tuple[str, str]]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [(v["id"], v["impact"]) for v in result["violations"] if v["impact"] in ("serious", "critical")]


def _fits_and_is_accessible(page: Any) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{page.url} scrolls sideways by {overflow}px at 360px"
    assert _axe_serious(page) == [], page.url


def test_calendar_page_at_360px_by_keyboard(live_server: Any, browser: Any) -> None:
    from tests.factories import TenantFactory, UserFactory
    from tutoring_core.calendars import services

    person = UserFactory(tenant=TenantFactory(slug="north"), username="priya")
    client = Client()
    client.force_login(person)
    context = browser.new_context(viewport={"width": 360, "height": 740})
    context.add_cookies(
        [
            {
                "name": django_settings.SESSION_COOKIE_NAME,
                "value": client.cookies[django_settings.SESSION_COOKIE_NAME].value,
                "url": live_server.url,
            }
        ]
    )
    page = context.new_page()
    page.goto(live_server.url + "/calendar/")
    old = services.feed_token_of(person)
    assert page.input_value("#feed-url").endswith(f"/calendar/{old}.ics")
    _fits_and_is_accessible(page)

    # By keyboard: Tab to "Make a new address" and press Enter.
    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent.trim()") == "Make a new address":
            break
    else:
        raise AssertionError("the reset button is not reachable by Tab")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    new = services.feed_token_of(person)
    assert new != old
    assert page.input_value("#feed-url").endswith(f"/calendar/{new}.ics")
    assert "the old one no longer works" in page.content()
    _fits_and_is_accessible(page)

    # An error shown next to its field (plain http is refused outside development).
    page.fill("#collection_url", "http://dav.example.org/calendars/priya/tutoring/")
    page.fill("#username", "priya")
    page.fill("#password", "secret")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.text_content("#collection_url-error") == "The calendar's address must start with https://."
    assert page.get_attribute("#collection_url", "aria-invalid") == "true"
    _fits_and_is_accessible(page)
    context.close()
