"""The database connection policy for the web tier (issue 14: 100 learners
committing at once ran PostgreSQL out of connections): web processes pool their
PostgreSQL connections (gunicorn.conf.py turns DATABASE_POOL_MAX_SIZE on), everything
else keeps one connection per process; a pool on SQLite is a start-up error."""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PG = "postgres://hub:secret@db.internal:5432/hub"
SHOW = (
    "import json, django; django.setup(); from django.conf import settings; "
    "db = settings.DATABASES['default']; "
    "print(json.dumps({'pool': db.get('OPTIONS', {}).get('pool'), 'conn_max_age': db['CONN_MAX_AGE']}))"
)


def _settings(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/tmp"),
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-c", SHOW], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"DATABASE_URL": PG}, {"pool": None, "conn_max_age": 60}),
        (
            {"DATABASE_URL": PG, "DATABASE_POOL_MAX_SIZE": "8"},
            {"pool": {"min_size": 2, "max_size": 8, "timeout": 10}, "conn_max_age": 0},
        ),
        (
            {"DATABASE_URL": PG, "DATABASE_POOL_MAX_SIZE": "1", "DATABASE_POOL_TIMEOUT": "3"},
            {"pool": {"min_size": 1, "max_size": 1, "timeout": 3}, "conn_max_age": 0},
        ),
        ({"DATABASE_URL": PG, "DATABASE_POOL_MAX_SIZE": "0"}, {"pool": None, "conn_max_age": 60}),
        ({"DATABASE_URL": "sqlite:////tmp/hub-policy.sqlite3"}, {"pool": None, "conn_max_age": 0}),
    ],
)
def test_the_pool_settings(env: dict[str, str], expected: dict[str, object]) -> None:
    result = _settings(env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == expected


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"DATABASE_URL": "sqlite:////tmp/hub-policy.sqlite3", "DATABASE_POOL_MAX_SIZE": "8"},
            "DATABASE_POOL_MAX_SIZE is for PostgreSQL; set it to 0 (or unset) here.",
        ),
        ({"DATABASE_URL": PG, "DATABASE_POOL_MAX_SIZE": "-1"}, "DATABASE_POOL_MAX_SIZE must be at least 0"),
        (
            {"DATABASE_URL": PG, "DATABASE_POOL_MAX_SIZE": "many"},
            "DATABASE_POOL_MAX_SIZE must be a whole number",
        ),
    ],
)
def test_a_bad_pool_setting_stops_start_up_naming_it(env: dict[str, str], message: str) -> None:
    result = _settings(env)
    assert result.returncode != 0
    assert message in result.stderr


@pytest.mark.parametrize(
    ("env", "pool"),
    [
        ({"DATABASE_URL": PG}, "8"),
        ({"DATABASE_URL": PG, "DATABASE_POOL_MAX_SIZE": ""}, "8"),
        ({"DATABASE_URL": PG, "DATABASE_POOL_MAX_SIZE": "20"}, "20"),
        ({"DATABASE_URL": PG, "DATABASE_POOL_MAX_SIZE": "0"}, "0"),
        ({"DATABASE_URL": "sqlite:////tmp/x.sqlite3"}, None),
        ({}, None),
    ],
)
def test_gunicorn_turns_the_pool_on_for_the_web_tier_on_postgresql(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], pool: str | None
) -> None:
    for name in ("DATABASE_URL", "DATABASE_POOL_MAX_SIZE"):
        # Set, then delete: monkeypatch restores only what it recorded, and gunicorn.conf.py
        # writes os.environ itself (a leaked pool size broke later SQLite subprocesses).
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    runpy.run_path(str(ROOT / "deploy" / "gunicorn.conf.py"))
    assert os.environ.get("DATABASE_POOL_MAX_SIZE") == pool
