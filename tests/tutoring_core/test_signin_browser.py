"""The sign-in pages in headless Chromium at 360 px: a new district admin follows the
link `tenant_create --admin-email` printed, sets a password by keyboard, signs in;
the dead link and the lockout pages. Each fits without sideways scrolling and has
no serious axe-core violation."""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

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
PASSWORD = "maple-orbit-lantern-42"


@pytest.fixture
def page(live_server: Any, settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    settings.PUBLIC_BASE_URL = live_server.url
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
            viewport={"width": 360, "height": 740},
        )
        try:
            yield context.new_page()
        finally:
            context.close()


def _fits_and_is_accessible(page: Any) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{page.url} scrolls sideways by {overflow}px at 360px"
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    serious = [(v["id"], v["impact"]) for v in result["violations"] if v["impact"] in ("serious", "critical")]
    assert serious == [], page.url


def test_first_admin_sets_a_password_signs_in_and_is_locked_out_by_guessing(
    page: Any, live_server: Any
) -> None:
    out = io.StringIO()
    call_command(
        "tenant_create",
        "lakeside",
        "--name",
        "Lakeside USD",
        "--admin-email",
        "pat@lakeside.example.org",
        stdout=out,
        stderr=io.StringIO(),
    )
    link = json.loads(out.getvalue())["admin"]["set_password_url"]
    assert link.startswith(live_server.url)

    opened = page.goto(link)
    assert opened.status == 200
    assert page.url.endswith("/set-password/")  # the token left the address bar
    _fits_and_is_accessible(page)
    page.get_by_label("New password", exact=True).focus()
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Tab")  # past the help text to the second field
    page.get_by_label("New password again").focus()
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/signin/")
    assert "Your password is set. Sign in as pat@lakeside.example.org." in page.content()
    _fits_and_is_accessible(page)

    dead = page.goto(link)
    assert dead.status == 410
    assert page.get_by_role("heading").inner_text() == "This link no longer works"
    _fits_and_is_accessible(page)

    page.goto(f"{live_server.url}/signin/")
    for _ in range(5):
        page.fill("#id_username", "pat@lakeside.example.org")
        page.fill("#id_password", "not-my-password")
        with page.expect_navigation() as navigation:
            page.get_by_role("button", name="Sign in", exact=True).click()
    assert navigation.value.status == 429
    assert page.get_by_role("heading").inner_text() == "Too many failed sign-ins"
    assert "Try again in about 15 minutes" in page.content()
    _fits_and_is_accessible(page)
