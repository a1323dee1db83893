"""The system checks of the SCORM content origin (scorm/checks.py): production
settings that switch playback off, or would hand package code the app's cookies or
a blocked frame, are named at `manage.py check` / `migrate` time."""

from __future__ import annotations

from typing import Any

import pytest

from scorm.checks import check_content_origin

APP = "https://hub.example.org"


def _ids(settings: Any, origin: str, *, app: str = APP) -> list[str]:
    settings.PUBLIC_BASE_URL = app
    settings.SCORM_CONTENT_ORIGIN = origin
    return [message.id for message in check_content_origin()]


def test_a_content_host_of_its_own_passes(settings: Any) -> None:
    settings.DEBUG = False
    assert _ids(settings, "https://hub-content.example.net") == []


def test_unset_in_production_warns_that_playback_is_off(settings: Any) -> None:
    settings.DEBUG = False
    settings.PUBLIC_BASE_URL = APP
    settings.SCORM_CONTENT_ORIGIN = ""
    (message,) = check_content_origin()
    assert message.id == "scorm.W001"
    assert message.msg == (
        "SCORM playback is off: SCORM_CONTENT_ORIGIN is not set, so the player page answers 503."
    )


def test_debug_is_not_checked(settings: Any) -> None:
    settings.DEBUG = True
    assert _ids(settings, "") == []


@pytest.mark.parametrize(
    ("origin", "app", "expected"),
    [
        ("https://hub.example.org", APP, ["scorm.E001"]),
        ("https://hub.example.org:8443", APP, ["scorm.E001"]),
        ("http://hub-content.example.net", APP, ["scorm.W002"]),
        ("http://content.school.internal:8001", "http://hub.school.internal:8000", ["scorm.W003"]),
        ("https://content.hub.example.org", APP, ["scorm.W003"]),
        ("https://content.example.org", APP, ["scorm.W003"]),
        ("https://example.org", APP, ["scorm.W003"]),
        ("http://127.0.0.2:8001", "http://127.0.0.1:8000", []),
        ("http://content.example.org", APP, ["scorm.W002", "scorm.W003"]),
    ],
)
def test_origins_that_share_the_app_s_cookies_or_get_blocked(
    settings: Any, origin: str, app: str, expected: list[str]
) -> None:
    settings.DEBUG = False
    assert _ids(settings, origin, app=app) == expected


def test_a_missing_runtime_is_named(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.DEBUG = False
    found: list[str] = []

    def find(path: str) -> None:
        found.append(path)  # what a fresh checkout without `make install` finds

    monkeypatch.setattr("scorm.checks.finders.find", find)
    settings.PUBLIC_BASE_URL = APP
    settings.SCORM_CONTENT_ORIGIN = "https://hub-content.example.net"
    messages = check_content_origin()
    assert found[-1] == "scorm/scorm-again.min.js"
    assert [message.id for message in messages] == ["scorm.W004"]
    assert "scripts/vendor-static.sh" in messages[0].hint
