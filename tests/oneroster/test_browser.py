"""The roster pages in headless Chromium: the connection form shows only the fields
of the chosen kind (chosen by keyboard), and the run and upload pages fit 360 px with
no serious axe-core violation."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from oneroster.models import RosterConnection, SyncRun
from oneroster.protocol.generator import District
from oneroster.services import sync_run_execute
from tests.factories import TenantFactory, district_admin

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
    settings.ONEROSTER_CSV_ROOT = tmp_path / "drops"
    settings.MEDIA_ROOT = tmp_path / "media"
    District(30, seed=1).write_csv(tmp_path / "drops" / "north")
    users = tmp_path / "drops" / "north" / "users.csv"
    users.write_bytes(users.read_text("utf-8").encode("latin-1"))
    tenant = TenantFactory(slug="north")
    client = Client()
    client.force_login(district_admin(tenant, username="north-admin"))
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
            yield context, tenant
        finally:
            context.close()


def _visible(page: Any, field: str) -> bool:
    return bool(page.is_visible(f".form-row.field-{field}"))


def _fits_and_is_accessible(page: Any) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{page.url} scrolls sideways by {overflow}px at 360px"
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    serious = [(v["id"], v["impact"]) for v in result["violations"] if v["impact"] in ("serious", "critical")]
    assert serious == [], page.url


def test_the_form_shows_only_the_chosen_kinds_fields(browser: Any, live_server: Any) -> None:
    context, _tenant = browser
    page = context.new_page()
    page.goto(f"{live_server.url}/admin/oneroster/rosterconnection/add/")
    assert page.is_visible("#id_kind")
    # CSV is the default kind: its folder, no REST fields, no Classroom fields.
    assert (_visible(page, "csv_path"), _visible(page, "base_url"), _visible(page, "delegated_user")) == (
        True,
        False,
        False,
    )
    assert not page.is_checked("#id_schedule_delta") and not page.is_checked("#id_schedule_full")
    # By keyboard: focus the kind and move down the list.
    page.focus("#id_kind")
    page.keyboard.press("ArrowDown")  # CSV zip uploaded here
    assert page.eval_on_selector("#id_kind", "e => e.value") == "csv_upload"
    assert (_visible(page, "csv_path"), _visible(page, "upload_status"), _visible(page, "base_url")) == (
        False,
        True,
        False,
    )
    page.select_option("#id_kind", "rest_1_2")
    shown = {f: _visible(page, f) for f in ("csv_path", "base_url", "token_url", "scopes", "delegated_user")}
    assert shown == {
        "csv_path": False,
        "base_url": True,
        "token_url": True,
        "scopes": True,
        "delegated_user": False,
    }
    page.select_option("#id_kind", "google_classroom")
    shown = {f: _visible(page, f) for f in ("base_path", "scopes", "delegated_user", "client_secret")}
    assert shown == {"base_path": False, "scopes": False, "delegated_user": True, "client_secret": True}
    # A hidden field is out of the tab order too: tabbing from the name never lands in it.
    page.focus("#id_name")
    reached = set()
    for _ in range(40):
        page.keyboard.press("Tab")
        reached.add(page.evaluate("document.activeElement.id"))
    assert "id_delegated_user" in reached and "id_csv_path" not in reached and "id_scopes" not in reached


def test_run_and_upload_pages_fit_360px(browser: Any, live_server: Any) -> None:
    context, tenant = browser
    conn = RosterConnection.objects.create(tenant=tenant, name="SIS drop", csv_path="north")
    failed = sync_run_execute(run_id=SyncRun.objects.create(tenant=tenant, connection=conn).pk)
    assert failed.status == "failed"
    page = context.new_page()
    page.goto(f"{live_server.url}/oneroster/runs/{failed.pk}/")
    assert page.inner_text("#reason") == "file users.csv is not UTF-8 (byte 0xe1 at line 5)"
    _fits_and_is_accessible(page)

    uploads = RosterConnection.objects.create(tenant=tenant, name="Uploads", kind="csv_upload")
    page.goto(f"{live_server.url}/oneroster/connections/{uploads.pk}/upload")
    zipped = District(30, seed=1).write_csv(Path(tempfile.mkdtemp()) / "roster.zip", as_zip=True)
    page.set_input_files("#id_zip_file", str(zipped))
    page.click("button[type=submit]:has-text('Upload')")
    page.wait_for_selector("#current-upload strong")
    assert page.inner_text("#current-upload strong") == "roster.zip"
    _fits_and_is_accessible(page)
    page.click("button:has-text('Run a full sync with it')")
    page.wait_for_selector("#status")
    run = SyncRun.objects.get(connection=uploads)
    assert page.url.endswith(f"/oneroster/runs/{run.pk}/")
    assert page.inner_text("#status") == "Queued"
    _fits_and_is_accessible(page)
    # What a worker does; the open page follows it without reloading.
    assert sync_run_execute(run_id=run.pk).status == "succeeded"
    page.wait_for_selector("#run-finished", state="visible")
    assert (page.inner_text("#status"), page.inner_text("#phase")) == ("Succeeded", "Finished")
    page.click("#run-finished a")
    page.wait_for_selector("text=Report")
    _fits_and_is_accessible(page)
