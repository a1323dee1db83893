"""The content origin, request by request (no browser): only its own URLs answer on
its host, by signed short-lived links; no cookie goes in or out; every response
has nosniff, no referrer and frame-ancestors limited to the app and itself; files
carry the MIME type their extension says; nothing can leave the package's folder."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.test import Client

from scorm import content
from scorm.models import ScormPackage
from scorm.player_services import activity_for_class, attempt_for_launch
from scorm.services import package_import
from tests.factories import ClassFactory, EnrollmentFactory, TenantFactory, UserFactory
from tests.scorm import hostile_zips as hz
from tutoring_core.accounts.models import Role

pytestmark = pytest.mark.django_db

APP = "http://testserver"
CONTENT_HOST = "127.0.0.2:8001"
CONTENT = f"http://{CONTENT_HOST}"
LMS = "https://lms.example.edu"

FILES = {
    "index.html": b"<!doctype html><title>Lesson</title><p>Hello</p>",
    "css/site.css": b"body{color:red}",
    "js/app.js": b"console.log(1)",
    "media/logo.png": b"\x89PNG\r\n\x1a\n",
    "media/chart.svg": b"<svg xmlns='http://www.w3.org/2000/svg'/>",
    "data/answers.json": b"{}",
    "data/notes.xyzunknown": b"plain bytes",
}


@pytest.fixture(autouse=True)
def origins(settings: Any, tmp_path: Path) -> None:
    settings.PUBLIC_BASE_URL = APP
    settings.SCORM_CONTENT_ORIGIN = CONTENT
    settings.FRAME_ANCESTORS = [LMS]
    settings.STORAGES = {
        **settings.STORAGES,
        "scorm": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "store")},
        },
    }


@pytest.fixture
def world() -> dict[str, Any]:
    tenant = TenantFactory(slug="north")
    klass = ClassFactory(tenant=tenant)
    student = UserFactory(tenant=tenant)
    EnrollmentFactory(klass=klass, user=student, role=Role.STUDENT)
    data = hz.build([("imsmanifest.xml", hz.manifest("Served")), *FILES.items()])
    info = package_import(tenant_id=tenant.pk, actor_id=None, fileobj=io.BytesIO(data), filename="c.zip")
    package = ScormPackage.objects.get(pk=info.id)
    activity = activity_for_class(tenant=tenant, class_id=klass.pk, package=package)
    attempt = attempt_for_launch(activity=activity, sco=package.scos.get(), learner=student)
    return {"package": package, "attempt": attempt, "student": student}


def _get(path: str, **extra: Any) -> Any:
    return Client().get(path, HTTP_HOST=CONTENT_HOST, **extra)


def _file_path(world: dict[str, Any], member: str) -> str:
    return content.files_url(
        storage_root=world["package"].storage_root, attempt_id=world["attempt"].pk, path=member
    )


def _assert_hardened(response: Any) -> None:
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "no-referrer"
    assert f"frame-ancestors 'self' {APP} {LMS}" in response["Content-Security-Policy"]
    assert "Set-Cookie" not in response
    assert not response.cookies


@pytest.mark.parametrize(
    ("member", "content_type"),
    [
        ("index.html", "text/html; charset=utf-8"),
        ("css/site.css", "text/css; charset=utf-8"),
        ("js/app.js", "text/javascript; charset=utf-8"),
        ("media/logo.png", "image/png"),
        ("media/chart.svg", "image/svg+xml"),
        ("data/answers.json", "application/json"),
        ("data/notes.xyzunknown", "application/octet-stream"),
    ],
)
def test_package_files_with_their_types_and_hardened_headers(
    world: dict[str, Any], member: str, content_type: str
) -> None:
    response = _get(_file_path(world, member))
    assert response.status_code == 200
    assert response["Content-Type"] == content_type
    assert b"".join(response.streaming_content) == FILES[member]
    _assert_hardened(response)


def test_the_cookie_header_is_dropped_and_no_cookie_is_set(world: dict[str, Any]) -> None:
    seen: dict[str, Any] = {}
    from scorm import content_urls

    original = content.package_file

    def spy(request: Any, token: str, path: str) -> Any:
        seen["cookie"] = request.META.get("HTTP_COOKIE")
        seen["cookies"] = dict(request.COOKIES)
        seen["has_session"] = hasattr(request, "session")
        return original(request, token, path)

    pattern = next(p for p in content_urls.urlpatterns if p.name == "scorm_content_file")
    callback = pattern.callback
    pattern.callback = spy
    try:
        response = _get(_file_path(world, "index.html"), HTTP_COOKIE="sessionid=secret; csrftoken=abc")
    finally:
        pattern.callback = callback
    assert response.status_code == 200
    assert seen == {"cookie": None, "cookies": {}, "has_session": False}
    _assert_hardened(response)


def test_a_bad_or_expired_link_is_refused(world: dict[str, Any], settings: Any) -> None:
    good = _file_path(world, "index.html")
    token = good.split("/")[2]
    forged = good.replace(token, token[:-2] + ("AA" if not token.endswith("AA") else "BB"))
    assert _get(forged).status_code == 403
    with time_machine.travel(
        dt.datetime.now(dt.UTC) + dt.timedelta(seconds=settings.SCORM_CONTENT_URL_TTL + 5)
    ):
        expired = _get(good)
    assert expired.status_code == 403
    assert expired.content == b"This link to the course has expired or is not valid; open the activity again."
    _assert_hardened(expired)


@pytest.mark.parametrize(
    "member",
    ["../../../etc/passwd", "css/../../x", "missing.html", "css/", "css%2F..%2F..%2Fx"],
)
def test_nothing_outside_the_package_or_missing_is_served(world: dict[str, Any], member: str) -> None:
    token = _file_path(world, "index.html").split("/")[2]
    response = _get(f"/c/{token}/{member}")
    assert response.status_code == 404
    _assert_hardened(response)


def test_a_token_for_another_folder_cannot_reach_the_store_outside_scorm(world: dict[str, Any]) -> None:
    # The token is signed, so a root outside scorm/ only comes from a bug; still refused.
    token = content.files_token(storage_root="other/", attempt_id=world["attempt"].pk)
    assert _get(f"/c/{token}/index.html").status_code == 403


def test_only_the_content_urls_answer_on_the_content_host(world: dict[str, Any]) -> None:
    for path in ("/", "/admin/", "/scorm/packages/", "/healthz"):
        response = _get(path)
        assert response.status_code == 404, path
        _assert_hardened(response)
    posted = Client().post(_file_path(world, "index.html"), HTTP_HOST=CONTENT_HOST)
    assert posted.status_code == 405
    _assert_hardened(posted)


def test_the_player_page_is_preloaded_and_locked_down(world: dict[str, Any]) -> None:
    attempt = world["attempt"]
    url = content.player_url(attempt_id=attempt.pk)
    assert url.startswith(CONTENT + "/p/")
    response = _get(url.removeprefix(CONTENT))
    assert response.status_code == 200
    _assert_hardened(response)
    policy = response["Content-Security-Policy"]
    assert policy.startswith("default-src 'none'; script-src 'self';")
    assert f"connect-src {APP};" in policy
    assert response["Cache-Control"] == "no-store"
    page = response.content.decode()
    found = re.search(r'<script id="player-config" type="application/json">(.*?)</script>', page)
    assert found is not None
    config = json.loads(found.group(1))
    assert config["version"] == "1.2"
    assert config["commitUrl"] == f"{APP}/scorm/runtime/commit"
    assert content.commit_token_attempt(config["token"]) == attempt.pk
    assert config["scoUrl"].startswith("/c/") and config["scoUrl"].endswith("/index.html")
    student = world["student"]
    assert config["cmi"] == {
        "cmi.core.student_id": str(student.pk),
        "cmi.core.student_name": f"{student.last_name}, {student.first_name}",
        "cmi.core.credit": "credit",
        "cmi.core.entry": "ab-initio",
        "cmi.core.total_time": "0000:00:00.00",
        "cmi.core.lesson_mode": "normal",
        # Preloaded, so the SCO's first read is not "" (issue 14 point 3).
        "cmi.core.lesson_status": "not attempted",
    }
    # A player token is not a files token, and the other way round.
    files_token = _file_path(world, "index.html").split("/")[2]
    assert _get(f"/p/{files_token}/").status_code == 403
    player_token = url.removeprefix(CONTENT + "/p/").rstrip("/")
    assert _get(f"/c/{player_token}/index.html").status_code == 403


def test_runtime_files_and_nothing_else_from_static(world: dict[str, Any]) -> None:
    response = _get("/runtime/player.js")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/javascript; charset=utf-8"
    _assert_hardened(response)
    assert _get("/runtime/scorm-again.min.js").status_code == 200
    assert _get("/runtime/base.css").status_code == 404


def test_the_app_host_does_not_serve_content_urls(world: dict[str, Any]) -> None:
    # The same path on the app's host is not a package file.
    assert Client().get(_file_path(world, "index.html")).status_code == 404
