"""The teacher's SCORM pages in headless Chromium at 360 px: import by keyboard,
the rejection shown next to the field, no sideways scrolling, axe-core clean."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from scorm.models import ScormPackage
from tests.factories import ClassFactory, EnrollmentFactory, TenantFactory, UserFactory
from tests.scorm import hostile_zips as hz
from tests.scorm.test_import import FIXTURES
from tutoring_core.accounts.models import Role

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
def browser(
    live_server: Any, settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    settings.STORAGES = {
        **settings.STORAGES,
        "scorm": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "store")},
        },
    }
    tenant = TenantFactory(slug="north")
    teacher = UserFactory(tenant=tenant, username="north-teacher")
    EnrollmentFactory(klass=ClassFactory(tenant=tenant), user=teacher, role=Role.TEACHER)
    client = Client()
    client.force_login(teacher)
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
            viewport={"width": 360, "height": 740},
        )
        host = live_server.url.split("//", 1)[1].split(":")[0]
        context.add_cookies(
            [{"name": "sessionid", "value": client.cookies["sessionid"].value, "domain": host, "path": "/"}]
        )
        try:
            yield context, tmp_path
        finally:
            context.close()


def _fits_and_is_accessible(page: Any) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{page.url} scrolls sideways by {overflow}px at 360px"
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    serious = [(v["id"], v["impact"]) for v in result["violations"] if v["impact"] in ("serious", "critical")]
    assert serious == [], page.url


def _tab_to(page: Any, element_id: str) -> None:
    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == element_id:
            return
    raise AssertionError(f"#{element_id} is not reachable by Tab")


def test_import_by_keyboard_at_360px(browser: Any, live_server: Any) -> None:
    context, tmp_path = browser
    page = context.new_page()
    page.goto(f"{live_server.url}/scorm/packages/")
    _fits_and_is_accessible(page)
    # A rejected package: the reason sits by the field, announced.
    bad = tmp_path / "slip.zip"
    bad.write_bytes(hz.with_entry("../../evil.js"))
    _tab_to(page, "id_package")
    page.set_input_files("#id_package", str(bad))
    page.keyboard.press("Tab")  # to the Import button
    assert page.evaluate("document.activeElement.textContent") == "Import"
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.text_content("#id_package_error") == (
        "This package cannot be imported. An entry's name climbs out of the package with '..': '../../evil.js'"
    )
    _fits_and_is_accessible(page)
    # A good one: lands on its page, which fits too.
    _tab_to(page, "id_package")
    page.set_input_files("#id_package", str(FIXTURES / "SequencingSimpleRemediation_SCORM20043rdEdition.zip"))
    page.keyboard.press("Tab")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    package = ScormPackage.objects.get()
    assert page.url == f"{live_server.url}/scorm/packages/{package.pk}/"
    assert page.text_content("h1") == "Golf Explained - Simple Remediation"
    _fits_and_is_accessible(page)
    page.goto(f"{live_server.url}/scorm/packages/")
    _fits_and_is_accessible(page)
