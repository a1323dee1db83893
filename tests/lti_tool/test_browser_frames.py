"""Headless Chromium launching the tool inside a cross-site LMS iframe with
third-party cookies blocked: partitioned cookies (CHIPS), the 1EdTech platform
storage (postMessage), and the new-window fallback.

The LMS page is served by the loopback platform on 127.0.0.1; the tool is the
live server on localhost: different sites, so the iframe is third-party.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.lti_tool.conftest import LaunchResult  # noqa: F401  (shared helpers live there)
from tests.peers.lti_platform import ROLE_INSTRUCTOR, LtiPlatform

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


@pytest.fixture
def browser_env(live_server: Any, settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    # Playwright's sync API runs an event loop in this thread; the ORM checks below
    # run between its calls, never concurrently with it.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    base = live_server.url  # http://localhost:<port>
    settings.PUBLIC_BASE_URL = base
    with LtiPlatform(tool_launch_url=base + "/lti/launch/", tool_login_url=base + "/lti/login/") as platform:
        settings.FRAME_ANCESTORS = [platform.base_url]
        from lti_tool.models import Deployment, PlatformRegistration
        from tests.factories import TenantFactory

        tenant = TenantFactory(slug="north", name="North District")
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
        yield {"platform": platform, "base": base}


def _browser(playwright: Any, profile: Path) -> Any:
    # Chromium's "Block third-party cookies" setting, as a user would switch it on.
    default = profile / "Default"
    default.mkdir(parents=True)
    (default / "Preferences").write_text(
        json.dumps({"profile": {"cookie_controls_mode": 1, "block_third_party_cookies": True}})
    )
    return playwright.chromium.launch_persistent_context(
        str(profile), executable_path=CHROMIUM, headless=True, args=FLAGS
    )


def _tool_frame(page: Any, base: str) -> Any:
    for frame in page.frames:
        if frame.url.startswith(base):
            return frame
    return None


def _wait_for_frame_text(page: Any, base: str, text: str, timeout_s: float = 30) -> Any:
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        frame = _tool_frame(page, base)
        if frame is not None:
            try:
                if text in frame.content():
                    return frame
            except Exception:  # noqa: S110 - the frame navigates while we look
                pass
        page.wait_for_timeout(100)
    shown = []
    for frame in page.frames:
        try:
            shown.append((frame.url, frame.content()[:400]))
        except Exception as exc:  # a frame mid-navigation
            shown.append((frame.url, repr(exc)))
    raise AssertionError(f"{text!r} never appeared in the tool frame; frames: {shown}")


def test_launch_in_cross_site_iframe_with_partitioned_cookies(browser_env: dict[str, Any]) -> None:
    from playwright.sync_api import sync_playwright

    platform: LtiPlatform = browser_env["platform"]
    spec = platform.launch(
        sub="teacher-1", roles=[ROLE_INSTRUCTOR], name="Terry Okafor", context_title="Algebra I"
    )
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as playwright:
        context = _browser(playwright, Path(profile))
        try:
            page = context.new_page()
            page.goto(f"{platform.base_url}/course?launch={spec.hint}")
            frame = _wait_for_frame_text(page, browser_env["base"], "<h1>Algebra I</h1>")
            assert "/classes/" in frame.url
            cookies = {c["name"]: c for c in context.cookies(browser_env["base"])}
        finally:
            context.close()
    assert cookies["sessionid"]["sameSite"] == "None"
    assert cookies["sessionid"]["secure"] is True
    assert cookies["sessionid"].get("partitionKey"), cookies["sessionid"]


def test_launch_through_platform_storage_when_cookies_are_dropped(
    browser_env: dict[str, Any], settings: Any
) -> None:
    from playwright.sync_api import sync_playwright

    from tutoring_core.accounts.models import AuditLog, ExternalIdentity

    settings.LTI_PARTITIONED_COOKIES = False  # a browser that drops every frame cookie
    platform: LtiPlatform = browser_env["platform"]
    spec = platform.launch(sub="teacher-2", roles=[ROLE_INSTRUCTOR], storage=True)
    verified: list[int] = []
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as playwright:
        context = _browser(playwright, Path(profile))
        try:
            page = context.new_page()
            page.on(
                "response",
                lambda r: verified.append(r.status) if r.url.endswith("/lti/launch/storage/") else None,
            )
            page.goto(f"{platform.base_url}/course?launch={spec.hint}")
            # Verified through the platform's storage; this browser keeps no frame
            # cookies at all, so the page then offers a new window.
            frame = _wait_for_frame_text(page, browser_env["base"], 'id="lti-new-window"')
            assert "/lti/launch/" in frame.url
        finally:
            context.close()
    assert verified == [200]
    user = ExternalIdentity.objects.get(kind="lti", subject="teacher-2").user
    assert AuditLog.objects.filter(action="auth.sign_in", actor=user, details__method="lti").count() == 1


def test_new_window_fallback_when_nothing_survives_in_the_frame(
    browser_env: dict[str, Any], settings: Any
) -> None:
    from playwright.sync_api import sync_playwright

    settings.LTI_PARTITIONED_COOKIES = False
    platform: LtiPlatform = browser_env["platform"]
    spec = platform.launch(sub="student-3", roles=["Learner"], context_title="Algebra I")
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as playwright:
        context = _browser(playwright, Path(profile))
        try:
            page = context.new_page()
            page.goto(f"{platform.base_url}/course?launch={spec.hint}")
            frame = _wait_for_frame_text(page, browser_env["base"], 'id="lti-new-window"')
            with context.expect_page() as popup_info:
                frame.click("#lti-new-window")
            popup = popup_info.value
            popup.wait_for_selector("h1:has-text('Algebra I')", timeout=15000)
            assert "/classes/" in popup.url
        finally:
            context.close()
