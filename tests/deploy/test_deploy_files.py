"""The deployment files are valid as their tools read them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_compose_file_is_accepted_by_compose() -> None:
    env = {
        "PATH": os.environ["PATH"],
        "SECRET_KEY": "k",
        "FIELD_ENCRYPTION_KEYS": "f",
        "POSTGRES_PASSWORD": "p",
        "ALLOWED_HOSTS": "hub.example.org",
    }
    result = subprocess.run(
        ["docker-compose", "-f", "deploy/docker-compose.yml", "config"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    assert set(config["services"]) == {"migrate", "web", "worker", "beat", "db", "redis"}
    web_env = config["services"]["web"]["environment"]
    assert web_env["DATABASE_URL"] == "postgres://hub:p@db:5432/hub"
    assert web_env["CELERY_BROKER_URL"] == "redis://redis:6379/0"


def test_compose_refuses_to_start_without_secrets() -> None:
    result = subprocess.run(
        ["docker-compose", "-f", "deploy/docker-compose.yml", "config"],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "set SECRET_KEY" in result.stderr


def _gunicorn_conf(env: dict[str, str]) -> dict[str, Any]:
    """What gunicorn reads from deploy/gunicorn.conf.py, and the environment it leaves
    its workers, under ``env``: read in a child process (the file sets
    DATABASE_POOL_MAX_SIZE in the environment; in this process it would leak into
    every later test's subprocesses)."""
    script = (
        "import json, os, runpy, sys; conf = runpy.run_path(sys.argv[1]);"
        " print(json.dumps({'conf': {k: v for k, v in conf.items() if isinstance(v, (str, int))},"
        " 'pool': os.environ.get('DATABASE_POOL_MAX_SIZE')}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(ROOT / "deploy" / "gunicorn.conf.py")],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(json.loads(out))


def test_gunicorn_config_serves_asgi_with_uvicorn_workers() -> None:
    read = _gunicorn_conf({})
    conf = read["conf"]
    assert conf["worker_class"] == "uvicorn.workers.UvicornWorker"
    assert conf["bind"] == "0.0.0.0:8000"
    assert conf["workers"] >= 3
    assert read["pool"] is None  # no PostgreSQL, no pool (tests/scorm/test_connection_policy.py: with)


def test_dockerfile_runs_as_non_root() -> None:
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    assert "\nUSER hub\n" in text
    assert "FROM python:3.11-slim" in text
