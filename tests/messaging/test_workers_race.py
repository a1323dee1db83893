"""Two real Celery workers run the reminder job at once (it was queued twice) and then
share the sends: every reminder reaches the loopback SMTP sink exactly once.

Real processes on a real broker (Redis on 127.0.0.1:6379, or the embedded
filesystem transport), sharing a SQLite file database, as in
tests/lti_advantage/test_worker_killed.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.peers.smtp import SmtpSink

pytestmark = pytest.mark.peer
ROOT = Path(__file__).resolve().parents[2]
SESSIONS = 4


def _env(tmp: Path, broker: str, smtp_port: int) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "CELERY_", "DATABASE_", "REDIS_", "EMAIL_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DEBUG="true",
        SECRET_KEY="race-test-secret-key-0123456789abcdef0123456789",
        FIELD_ENCRYPTION_KEYS="dGVzdC1rZXktMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDA=",
        VAR_DIR=str(tmp / "var"),
        DATABASE_URL=f"sqlite:///{tmp / 'hub.sqlite3'}",
        CACHE_KEY_PREFIX=f"race-{uuid.uuid4().hex[:8]}",
        CELERY_BROKER_URL=broker,
        CELERY_TASK_DEFAULT_QUEUE=f"race-{uuid.uuid4().hex[:8]}",
        EMAIL_URL=f"smtp+plain://127.0.0.1:{smtp_port}",
        LOG_LEVEL="WARNING",
    )
    return env


def _run(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _worker(env: dict[str, str], log: Path, name: str) -> subprocess.Popen[bytes]:
    args = [
        str(ROOT / ".venv/bin/celery"),
        "-A",
        "config",
        "worker",
        "--pool",
        "solo",
        "-n",
        f"{name}@%h",
        "-Q",
        env["CELERY_TASK_DEFAULT_QUEUE"],
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "-l",
        "warning",
    ]
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def _redis_up() -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


@pytest.mark.parametrize("broker", ["filesystem", "redis"])
def test_two_workers_send_each_reminder_once(tmp_path: Path, broker: str) -> None:
    if broker == "redis":
        assert _redis_up(), "Redis must run on 127.0.0.1:6379 (see TESTING.md)"
        broker_url = "redis://127.0.0.1:6379/12"  # this test's own database, emptied first
        import redis

        redis.Redis.from_url(broker_url).flushdb()
    else:
        broker_url = "filesystem://"
    python = str(ROOT / ".venv/bin/python")
    with SmtpSink() as sink:
        env = _env(tmp_path, broker_url, sink.port)
        (tmp_path / "var").mkdir()
        _run([python, "manage.py", "migrate", "--noinput"], env)
        seeded = json.loads(_run([python, "-m", "tests.messaging.race_scenario", "seed", str(SESSIONS)], env))
        expected = sorted(seeded["emails"][:1] * SESSIONS + seeded["emails"][1:])

        workers = [_worker(env, tmp_path / f"worker{i}.log", f"w{i}") for i in (1, 2)]
        try:
            # The job queued twice at once (two beats, or a beat and a manual run):
            # each worker takes one run, and both then send what they found.
            _run([python, "-m", "tests.messaging.race_scenario", "kick", "2"], env)
            deadline = time.monotonic() + 90
            while True:
                rows = json.loads(_run([python, "-m", "tests.messaging.race_scenario", "report"], env))[
                    "rows"
                ]
                if len(rows) == len(expected) and all(r["status"] == "sent" for r in rows):
                    break
                logs = [(tmp_path / f"worker{i}.log").read_text()[-2000:] for i in (1, 2)]
                assert time.monotonic() < deadline, (rows, logs)
                time.sleep(0.5)
            # Let both workers finish whatever else was queued (the losing sends), then stop them.
            _run([python, "-m", "tests.messaging.race_scenario", "kick", "1"], env)
            deadline = time.monotonic() + 60
            while _queue_length(broker_url, env, tmp_path) > 0:
                assert time.monotonic() < deadline
                time.sleep(0.5)
        finally:
            for worker in workers:
                worker.terminate()
            for worker in workers:
                worker.wait(30)

        assert sorted(to for _sender, (to,) in sink.envelopes) == expected
        assert len(sink.messages) == len(expected)
        assert {m["Subject"].split(",")[0] for m in sink.messages} == {"Reminder: tutoring session in 1 hour"}
        rows = json.loads(_run([python, "-m", "tests.messaging.race_scenario", "report"], env))["rows"]
        assert sorted(r["to"] for r in rows) == expected
        assert {(r["status"], r["attempts"], r["offset"]) for r in rows} == {("sent", 1, 60)}


def _queue_length(broker_url: str, env: dict[str, str], tmp: Path) -> int:
    if broker_url.startswith("redis"):
        import redis

        return int(redis.Redis.from_url(broker_url).llen(env["CELERY_TASK_DEFAULT_QUEUE"]))
    queue = tmp / "var" / "broker" / "queue"
    return len([p for p in queue.iterdir() if p.is_file()]) if queue.exists() else 0
