"""A deploy that runs only `migrate` works (issue 11, point 2).

Real processes on a fresh database: `manage.py migrate` (and nothing else the
cache needs), the demo data, then `runserver`, and the launch simulator's LTI
login and launch walked over HTTP. The embedded default cache (a database cache)
holds the login's state and nonce, so this fails if its table is missing.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from django.db import connection

from tests.lti_tool.test_simulator import _walk

pytestmark = pytest.mark.peer
ROOT = Path(__file__).resolve().parents[2]
PYTHON = str(ROOT / ".venv/bin/python")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def fresh_database(tmp_path: Path) -> Iterator[str]:
    """A database no one has touched, on the engine the suite runs on."""
    if connection.vendor != "postgresql":
        yield f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
        return
    import psycopg

    settings = connection.settings_dict
    name = f"hub_fresh_{uuid.uuid4().hex[:10]}"
    server = f"postgres://{settings['USER']}@{settings['HOST'] or '127.0.0.1'}:{settings['PORT'] or 5432}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server}/{name}"
    finally:
        with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _env(tmp: Path, database_url: str, port: int) -> dict[str, str]:
    # No REDIS_URL: the embedded default cache, the database one, is what is tested.
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_", "DATABASE_", "REDIS_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DEBUG="true",
        DEMO_MODE="true",
        SECRET_KEY="fresh-migrate-secret-key-0123456789abcdef0123456789",
        FIELD_ENCRYPTION_KEYS="dGVzdC1rZXktMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDA=",
        OUTBOUND_ALLOW_PRIVATE_ADDRESSES="true",
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        VAR_DIR=str(tmp / "var"),
        DATABASE_URL=database_url,
        CACHE_KEY_PREFIX=f"fresh-{uuid.uuid4().hex[:8]}",
        LOG_LEVEL="WARNING",
    )
    return env


def _run(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _wait_until_serving(base: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert server.poll() is None, "runserver exited"
        try:
            if requests.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            time.sleep(0.2)
    raise AssertionError("runserver did not answer /healthz within 60 s")


def test_migrate_alone_serves_an_lti_launch(tmp_path: Path, fresh_database: str) -> None:
    port = _free_port()
    env = _env(tmp_path, fresh_database, port)
    _run([PYTHON, "manage.py", "migrate", "--noinput"], env)
    # What `createcachetable` would do now finds the table already made by migrate.
    assert "Cache table 'hub_cache' already exists." in _run([PYTHON, "manage.py", "createcachetable"], env)
    _run([PYTHON, "manage.py", "demo_load"], env)

    log = (tmp_path / "runserver.log").open("wb")
    server = subprocess.Popen(
        [PYTHON, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_serving(base, server)
        ready = requests.get(f"{base}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["cache"]["ok"] is True
        landed = _walk(requests.Session(), base, "as=student")
        assert landed.status_code == 200
        assert "<h1>Algebra I — Period 2</h1>" in landed.text
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def test_make_migrate_runs_no_extra_cache_step() -> None:
    makefile = (ROOT / "Makefile").read_text()
    migrate_recipe = makefile.split("\nmigrate:", 1)[1].split("\n\n", 1)[0]
    assert "manage.py migrate --noinput" in migrate_recipe
    assert "createcachetable" not in makefile
