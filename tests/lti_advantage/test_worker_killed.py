"""A Celery worker killed (SIGKILL) in the middle of a delivery loses nothing: a
second worker finishes the work, and every score lands once at its value.

Real processes on a real broker: the web side (seeding) and two `celery worker`
processes share a SQLite file database; the broker is Redis (127.0.0.1:6379,
its own db and queue) or the embedded filesystem transport.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.peers.lti_advantage_platform import AdvantagePlatform

pytestmark = pytest.mark.peer
ROOT = Path(__file__).resolve().parents[2]
CONTEXT = "Ctx-Kill"
SUBS = [f"Sub-K{i}" for i in range(6)]
LEARNER = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"


def _env(tmp: Path, broker: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_", "DATABASE_", "REDIS_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DEBUG="true",
        SECRET_KEY="kill-test-secret-key-0123456789abcdef0123456789",
        FIELD_ENCRYPTION_KEYS="dGVzdC1rZXktMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDA=",
        OUTBOUND_ALLOW_PRIVATE_ADDRESSES="true",
        VAR_DIR=str(tmp / "var"),
        DATABASE_URL=f"sqlite:///{tmp / 'hub.sqlite3'}",
        CACHE_KEY_PREFIX=f"kill-{uuid.uuid4().hex[:8]}",
        CELERY_BROKER_URL=broker,
        CELERY_TASK_DEFAULT_QUEUE=f"ags-kill-{uuid.uuid4().hex[:8]}",
        LTI_AGS_LEASE_SECONDS="3",
        LTI_AGS_SWEEP_SECONDS="1",
        # The killed worker's dispatcher lock runs out after this; and one score in
        # flight at a time, so exactly one is inside its HTTP call when it dies.
        LTI_AGS_DISPATCH_LOCK_SECONDS="3",
        LTI_AGS_MAX_CONCURRENCY="1",
        # Long enough for the parked request to outlive its worker; short enough that
        # the dead worker's concurrency slot (held for connect + read timeout + 10 s)
        # frees well within the test's deadline.
        LTI_ADVANTAGE_READ_TIMEOUT="10",
        LOG_LEVEL="WARNING",
    )
    return env


def _run(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _worker(env: dict[str, str], log: Path, *, beat: bool) -> subprocess.Popen[bytes]:
    args = [
        str(ROOT / ".venv/bin/celery"),
        "-A",
        "config",
        "worker",
        "--pool",
        "solo",
        "-Q",
        env["CELERY_TASK_DEFAULT_QUEUE"],
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "-l",
        "warning",
    ]
    if beat:
        args += ["-B", "-s", str(Path(env["VAR_DIR"]) / "beat-schedule")]
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def _redis_up() -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


@pytest.mark.parametrize("broker", ["filesystem", "redis"])
def test_killed_worker_loses_no_score(tmp_path: Path, broker: str) -> None:
    if broker == "redis":
        assert _redis_up(), "Redis must run on 127.0.0.1:6379 (see TESTING.md)"
        # Database 11 is this test's own: cleared so a killed worker's unacked
        # message from an earlier run cannot linger.
        broker_url = "redis://127.0.0.1:6379/11"
        import redis

        redis.Redis.from_url(broker_url).flushdb()
    else:
        broker_url = "filesystem://"
    env = _env(tmp_path, broker_url)
    (tmp_path / "var").mkdir()
    python = str(ROOT / ".venv/bin/python")
    _run([python, "manage.py", "migrate", "--noinput"], env)
    _run([python, "manage.py", "createcachetable"], env)

    with AdvantagePlatform(issuer="https://lms.kill.test", client_id="kill-client") as lms:
        item = lms.add_lineitem(CONTEXT, label="Lab report", scoreMaximum=20, resourceLinkId="rl-Lab")
        for sub in SUBS:
            lms.add_member(CONTEXT, sub, [LEARNER])
        lms.hold.set()  # the first score post parks until we say so
        seeded = json.loads(
            _run(
                [
                    python,
                    "-m",
                    "tests.lti_advantage.kill_scenario",
                    "seed",
                    json.dumps(
                        {
                            "issuer": lms.issuer,
                            "client_id": lms.client_id,
                            "base_url": lms.base_url,
                            "token_url": lms.token_url,
                            "context": CONTEXT,
                            "lineitem_url": item["id"],
                            "subs": SUBS,
                        }
                    ),
                ],
                env,
            )
        )
        lms.set_tool_jwks(seeded["jwks"])

        first = _worker(env, tmp_path / "worker1.log", beat=False)
        try:
            assert lms.held.wait(60), (tmp_path / "worker1.log").read_text()[-3000:]
            # The worker is inside its HTTP call with the entry claimed: kill it.
            os.kill(first.pid, signal.SIGKILL)
            first.wait(10)
        finally:
            if first.poll() is None:
                first.kill()
        assert first.returncode == -signal.SIGKILL
        # Let the parked request through: the platform applies the score, but the
        # answer goes nowhere (the worker is dead), so the tool cannot know.
        lms.release_held()

        second = _worker(env, tmp_path / "worker2.log", beat=True)
        try:
            deadline = time.monotonic() + 60
            while True:
                states = json.loads(_run([python, "-m", "tests.lti_advantage.kill_scenario", "report"], env))
                if all(e["status"] == "delivered" for e in states["entries"]):
                    break
                assert time.monotonic() < deadline, (states, (tmp_path / "worker2.log").read_text()[-3000:])
                time.sleep(0.5)
        finally:
            second.terminate()
            second.wait(20)

        assert len(states["entries"]) == len(SUBS)
        # Every score is on the platform at its value, applied once.
        assert {sub: lms.latest_score(item["id"], sub)["scoreGiven"] for sub in SUBS} == {
            sub: i + 1 for i, sub in enumerate(SUBS)
        }
        assert lms.stats.scores_applied == len(SUBS)
        assert lms.stats.duplicates == 0
        # The killed worker's delivery was sent again (its answer was lost) and the
        # platform, holding that same timestamp already, did not apply it twice.
        assert lms.stats.resent_after_accept == 1
        assert sorted(e["attempts"] for e in states["entries"]) == [1] * (len(SUBS) - 1) + [2]
        assert lms.stats.token_requests == 1
