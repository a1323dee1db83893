"""Headless Chromium signs in through SimpleSAMLphp: the IdP (127.0.0.1) posts the
response cross-site to our ACS (localhost), so the SameSite=Lax session cookie
is not sent with that POST. The sign-in must still complete, through the 303 to
our own origin, and be bound to the browser that started it."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sso import saml, services
from sso.models import IdentityProvider
from tests.factories import TenantFactory
from tests.peers.simplesamlphp import SimpleSamlIdP
from tutoring_core.accounts.models import AuditLog, User

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
def site(
    live_server: Any, settings: Any, simplesamlphp: SimpleSamlIdP, monkeypatch: pytest.MonkeyPatch
) -> Iterator[IdentityProvider]:
    # Playwright's sync API runs an event loop in this thread; ORM calls here run
    # between its calls, never concurrently.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    settings.PUBLIC_BASE_URL = live_server.url  # http://localhost:<port>
    assert settings.SESSION_COOKIE_SAMESITE == "Lax"
    tenant = TenantFactory(slug="north", name="North District")
    idp = IdentityProvider.objects.create(
        tenant=tenant,
        name="North Schools Login",
        protocol="saml",
        metadata_url=simplesamlphp.metadata_url,
        email_attribute="mail",
        given_name_attribute="givenName",
        family_name_attribute="sn",
        display_name_attribute="displayName",
        emails_verified=True,
        allow_jit=True,
        allowed_email_domains="north.example.edu",
    )
    assert services.saml_metadata_refresh(idp=idp)
    key = services.sp_key_get_or_create(tenant=tenant)
    urls = saml.sp_urls(tenant)
    simplesamlphp.register_sp(
        entity_id=urls.entity_id, acs_url=urls.acs, slo_url=urls.sls, cert_pem=key.certificate
    )
    yield idp


def test_chromium_signs_in_through_the_cross_site_post(site: IdentityProvider, live_server: Any) -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as profile, sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(Path(profile)), executable_path=CHROMIUM, headless=True, args=FLAGS
        )
        try:
            page = browser.new_page()
            seen: dict[str, dict[str, str]] = {}

            def remember(request: Any) -> None:
                if request.url.startswith(live_server.url + "/sso/north/saml/"):
                    path = request.url.removeprefix(live_server.url).split("?")[0]
                    seen[f"{request.method} {path}"] = request.all_headers()

            page.on("request", remember)
            page.goto(f"{live_server.url}/sso/north/")
            page.click("text=Sign in with North Schools Login")
            page.wait_for_url("http://127.0.0.1:*/**")
            page.fill("input[name=username]", "student1")
            page.fill("input[name=password]", "studentpass")
            with page.expect_navigation(url=f"{live_server.url}/**"):
                page.press("input[name=password]", "Enter")
            page.wait_for_load_state("load")
            final_url = page.url
            body = page.content()
            cookies = {c["name"]: c for c in browser.cookies(live_server.url)}
        finally:
            browser.close()
    assert final_url == f"{live_server.url}/", body[:2000]
    # The premise: the IdP's POST arrived without our session cookie, the 303'd GET with it.
    assert "sessionid=" not in seen["POST /sso/north/saml/acs/"].get("cookie", "")
    assert "sessionid=" in seen["GET /sso/north/saml/finish/"]["cookie"]
    assert "Ada Student" in body
    assert cookies["sessionid"]["sameSite"] == "Lax"
    user = User.objects.get(email="ada.student@north.example.edu")
    assert AuditLog.objects.filter(action="auth.sign_in", actor=user).count() == 1
