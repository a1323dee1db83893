"""Start-up fails closed, naming the variable; production-like settings pass
`check --deploy`. Each case starts a fresh Python process with its own environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import Env

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = {
    "SECRET_KEY": "a-long-random-production-secret-key-0123456789-abcdefghijklmnop",
    "ALLOWED_HOSTS": "hub.example.org",
    "FIELD_ENCRYPTION_KEYS": "dGVzdC1rZXktMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDA=",
    "DATABASE_URL": "sqlite:////tmp/hub-settings-test.sqlite3",
    "SECURE_HSTS_PRELOAD": "true",
    "PUBLIC_BASE_URL": "https://hub.example.org",
    # Without it SCORM playback is off, which `check` warns about (scorm.W001).
    "SCORM_CONTENT_ORIGIN": "https://hub-content.example.net",
}


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # A bare environment: nothing the test process (or a developer) exported leaks in.
    clean = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **env}
    clean["DJANGO_SETTINGS_MODULE"] = "config.settings"
    clean["VAR_DIR"] = "/tmp/hub-settings-test-var"
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=120
    )


def test_check_deploy_passes_with_production_variables() -> None:
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("SECRET_KEY", "SECRET_KEY must be set"),
        ("ALLOWED_HOSTS", "ALLOWED_HOSTS must be set"),
        ("FIELD_ENCRYPTION_KEYS", "FIELD_ENCRYPTION_KEYS must be set"),
    ],
)
def test_required_secrets_outside_debug(missing: str, message: str) -> None:
    env = {k: v for k, v in PRODUCTION.items() if k != missing}
    result = manage("check", env=env)
    assert result.returncode != 0
    assert message in result.stderr


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DEBUG", "maybe", "DEBUG must be one of true/false"),
        ("OUTBOUND_RETRIES", "three", "OUTBOUND_RETRIES must be a whole number, not 'three'"),
        ("SESSION_COOKIE_AGE", "5", "SESSION_COOKIE_AGE must be at least 60"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR"),
        ("DATABASE_URL", "nosuchdb://x/y", "DATABASE_URL"),
    ],
)
def test_malformed_values_stop_startup_naming_the_variable(name: str, value: str, message: str) -> None:
    result = manage("check", env={**PRODUCTION, name: value})
    assert result.returncode != 0
    assert message in result.stderr


def test_debug_runs_without_secrets() -> None:
    result = manage("check", env={"DEBUG": "true"})
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(("raw", "expected"), [("true", True), ("ON", True), ("0", False), ("", False)])
def test_env_bool(raw: str, expected: bool) -> None:
    assert Env({"X": raw}).bool("X") is expected


def test_env_list_and_float() -> None:
    env = Env({"L": " a, b ,,c ", "F": "2.5", "BAD": "x"})
    assert env.list("L") == ["a", "b", "c"]
    assert env.float("F", 1.0) == 2.5
    with pytest.raises(ImproperlyConfigured, match="BAD must be a number"):
        env.float("BAD", 1.0)
