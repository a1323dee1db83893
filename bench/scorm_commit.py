"""SCORM commit latency at 100 concurrent learners, beside a bare request, in one run (issue 14).

A live server (uvicorn serving config.asgi, as ``make run`` does; one process) on a
fresh database; 100 learners, each with an open attempt at a SCORM 1.2 course placed
in their class, each a client thread with its own keep-alive connection. All threads
start together (a barrier) and post commits to ``/scorm/runtime/commit`` over HTTP,
one after another, as scorm-again does (the next commit after the answer):

- commit: the runtime's JSON (signed attempt token, session, sequence, CMI data with
  lesson_location, ~2 KB suspend_data, session_time; the first commit and every tenth
  also change lesson_status / score, so the server records a progress result);
  the server checks every element, merges under the attempt's row lock, works out the
  outcome and answers.
- baseline: the same threads, the same count, GET ``/healthz`` (a trivial view
  through the same middleware stack): the floor the server, the client threads and
  the loopback set.

Baseline and commit runs alternate (baseline, commit, baseline, commit) so a change
in the machine's load weighs on both; each row pools its two runs.

    .venv/bin/python bench/scorm_commit.py            # 100 learners x 30 commits
    .venv/bin/python bench/scorm_commit.py --quick    # 100 learners x 5 commits (< 1 minute)
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/hub_bench_scorm_commit .venv/bin/python bench/scorm_commit.py
        (PostgreSQL: the database is dropped and made again for the run; the server pools
        its connections as the web tier does, DATABASE_POOL_MAX_SIZE, default 8; 0 shows
        what happens without: "too many clients" failures)

The client threads share one Python process (and its GIL) on the same machine as the
server: both rows carry that cost alike. Prints a table, then one JSON line last.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CONTENT_ORIGIN = "http://127.0.0.2:8999"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_setup(learners: int) -> None:
    """In a child process: tables straight from the models, a class with ``learners``
    students and a SCORM 1.2 course, an open attempt each; prints their commit tokens."""
    import django

    django.setup()
    import uuid

    from django.conf import settings
    from django.core.management import call_command

    class NoMigrations:
        def __contains__(self, app: str) -> bool:
            return True

        def __getitem__(self, app: str) -> None:
            return None

    settings.MIGRATION_MODULES = NoMigrations()
    call_command("migrate", verbosity=0, interactive=False, run_syncdb=True)
    if settings.CACHES["default"]["BACKEND"].endswith("DatabaseCache"):
        call_command("createcachetable", verbosity=0)

    from scorm import content
    from scorm.models import ScormPackage, ScormSco
    from scorm.player_services import activity_for_class, attempt_for_launch
    from tutoring_core.accounts.models import Role, Tenant, User
    from tutoring_core.classes.models import Class, Enrollment

    tenant = Tenant.objects.create(slug="bench", name="Bench District")
    klass = Class.objects.create(tenant=tenant, title="Golf 101")
    package = ScormPackage.objects.create(
        tenant=tenant,
        title="Golf",
        version="1.2",
        identifier="bench",
        content_hash="0" * 64,
        storage_root=f"scorm/{'0' * 64}/",
    )
    sco = ScormSco.objects.create(
        package=package, identifier="item_1", title="Golf", href="index.html", mastery_score=80
    )
    activity = activity_for_class(tenant=tenant, class_id=klass.pk, package=package)
    tokens = []
    for n in range(learners):
        learner = User.objects.create(
            tenant=tenant, username=f"learner{n}", email=f"learner{n}@bench.example", first_name=f"L{n}"
        )
        Enrollment.objects.create(tenant=tenant, klass=klass, user=learner, role=Role.STUDENT)
        attempt = attempt_for_launch(activity=activity, sco=sco, learner=learner)
        tokens.append(content.commit_token(attempt_id=attempt.pk))
    print(json.dumps({"tokens": tokens, "session": uuid.uuid4().hex}))


def _cmi(learner: int, sequence: int) -> dict[str, str]:
    values = {
        "cmi.core.lesson_location": f"page-{sequence}",
        "cmi.suspend_data": (f"{learner}:{sequence};" * 400)[:2048],
        "cmi.core.session_time": f"00:{sequence // 60:02d}:{sequence % 60:02d}",
        "cmi.core.exit": "suspend",
    }
    if sequence == 0:
        values["cmi.core.lesson_status"] = "incomplete"
    elif sequence % 10 == 0:
        values["cmi.core.score.raw"] = str(50 + sequence % 50)
    return values


def _load(
    host: str, port: int, tokens: list[str], session: str, per_learner: int, mode: str, offset: int
) -> tuple[list[float], int]:
    """Every learner a thread; returns the latencies (ms) and how many answers were not 200."""
    barrier = threading.Barrier(len(tokens))
    latencies: list[list[float]] = [[] for _ in tokens]
    failures = [0] * len(tokens)

    def learner(index: int) -> None:
        connection = http.client.HTTPConnection(host, port, timeout=120)
        headers = {"Content-Type": "application/json", "Origin": CONTENT_ORIGIN, "Host": f"{host}:{port}"}
        barrier.wait()
        for k in range(per_learner):
            sequence = offset + k
            started = time.perf_counter()
            if mode == "commit":
                body = json.dumps(
                    {
                        "token": tokens[index],
                        "session": session,
                        "sequence": sequence,
                        "cmi": _cmi(index, sequence),
                        "terminate": False,
                    }
                )
                connection.request("POST", "/scorm/runtime/commit", body=body, headers=headers)
            else:
                connection.request("GET", "/healthz", headers={"Host": f"{host}:{port}"})
            try:
                response = connection.getresponse()
                payload = response.read()
            except OSError:  # a timeout or a dropped connection: counted, and a fresh one
                failures[index] += 1
                connection.close()
                connection = http.client.HTTPConnection(host, port, timeout=120)
                continue
            latencies[index].append((time.perf_counter() - started) * 1000)
            if response.status != 200 or (mode == "commit" and not json.loads(payload).get("applied")):
                failures[index] += 1
        connection.close()

    threads = [threading.Thread(target=learner, args=(i,)) for i in range(len(tokens))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [ms for per in latencies for ms in per], sum(failures)


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def _reset_postgres(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    # Tables come straight from the models; scheduling's exclusion constraint needs the
    # extension its migration would have made.
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 commits per learner (< 1 minute)")
    parser.add_argument("--learners", type=int, default=100)
    parser.add_argument("--commits", type=int, help="commits per learner per run (default 30, --quick 5)")
    parser.add_argument("--child-setup", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_setup:
        return child_setup(args.child_setup)
    per_learner = args.commits or (5 if args.quick else 30)

    with tempfile.TemporaryDirectory(prefix="bench-scorm-commit-") as tmp:
        work = Path(tmp)
        port = _free_port()
        url = os.environ.get("DATABASE_URL", "")
        pool = "0"
        if url.startswith("postgres"):
            _reset_postgres(url)
            database = "postgresql"
            pool = os.environ.get("DATABASE_POOL_MAX_SIZE") or "8"
        else:
            url = f"sqlite:///{work / 'bench.sqlite3'}"
            database = "sqlite"
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings_test",
            "DATABASE_URL": url,
            "VAR_DIR": str(work / "var"),
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "SCORM_CONTENT_ORIGIN": CONTENT_ORIGIN,
            "ALLOWED_HOSTS": "127.0.0.1,localhost,127.0.0.2",
            "CACHE_KEY_PREFIX": f"bench-scorm-{os.getpid()}",
            # Under ASGI each request runs in a thread of its own, so a persistent
            # connection (CONN_MAX_AGE > 0) outlives its request: 100 learners exhaust
            # PostgreSQL's max_connections ("too many clients"). The web tier's policy
            # (deploy/gunicorn.conf.py): a pool of 8 per process on PostgreSQL.
            "DATABASE_CONN_MAX_AGE": os.environ.get("DATABASE_CONN_MAX_AGE", "0"),
            "DATABASE_POOL_MAX_SIZE": pool,
        }
        setup = subprocess.run(
            [sys.executable, __file__, "--child-setup", str(args.learners)],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        if setup.returncode != 0:
            sys.exit(f"setup failed:\n{setup.stderr[-3000:]}")
        world = json.loads(setup.stdout.strip().splitlines()[-1])
        server_log = ROOT / "var" / "log" / "bench-scorm-commit-server.log"
        server_log.parent.mkdir(parents=True, exist_ok=True)
        uvicorn = shutil.which("uvicorn", path=str(ROOT / ".venv" / "bin")) or "uvicorn"
        server = subprocess.Popen(
            [
                uvicorn,
                "config.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
                "--no-access-log",
                "--backlog",
                "1024",
            ],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=server_log.open("wb"),
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                    conn.request("GET", "/healthz")
                    if conn.getresponse().status == 200:
                        break
                except OSError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"the server did not start; its log: {server_log}")
                time.sleep(0.2)
            # Warm up: the first request of each kind (imports, connections).
            _load("127.0.0.1", port, world["tokens"][:1], world["session"], 1, "baseline", 0)
            samples: dict[str, list[float]] = {"baseline": [], "commit": []}
            failed = {"baseline": 0, "commit": 0}
            seconds = {"baseline": 0.0, "commit": 0.0}
            offset = 0
            for _round in range(2):
                for mode in ("baseline", "commit"):
                    started = time.perf_counter()
                    got, bad = _load(
                        "127.0.0.1", port, world["tokens"], world["session"], per_learner, mode, offset
                    )
                    seconds[mode] += time.perf_counter() - started
                    samples[mode] += got
                    failed[mode] += bad
                    if mode == "commit":
                        offset += per_learner
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()

    rows = []
    figures: dict[str, Any] = {
        "learners": args.learners,
        "requests_per_learner": per_learner * 2,
        "database": database,
        "pool_max_size": int(pool),
        "server": "uvicorn config.asgi (1 process), HTTP over loopback",
    }
    for mode, label in (("baseline", "GET /healthz (baseline)"), ("commit", "POST /scorm/runtime/commit")):
        got = samples[mode]
        entry = {
            "requests": len(got),
            "failed": failed[mode],
            "p50_ms": round(statistics.median(got), 1),
            "p99_ms": round(_pct(got, 99), 1),
            "max_ms": round(max(got), 1),
            "per_second": round(len(got) / seconds[mode], 1),
        }
        figures[mode] = entry
        rows.append((label, entry))
    figures["p50_over_baseline_ms"] = round(figures["commit"]["p50_ms"] - figures["baseline"]["p50_ms"], 1)

    print(
        f"SCORM commit latency: {args.learners} concurrent learners x {per_learner * 2} requests each "
        f"({database}{f', pool of {pool}' if pool != '0' else ''}, uvicorn, loopback HTTP; "
        "baseline and commit runs alternate)"
    )
    header = f"{'request':<30} {'n':>6} {'failed':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'req/s':>8}"
    print(header)
    print("-" * len(header))
    for label, entry in rows:
        print(
            f"{label:<30} {entry['requests']:>6} {entry['failed']:>6} {entry['p50_ms']:>8} "
            f"{entry['p99_ms']:>8} {entry['max_ms']:>8} {entry['per_second']:>8}"
        )
    if failed["commit"] or failed["baseline"]:
        print(f"some requests failed; the server's log: {server_log.relative_to(ROOT)}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
