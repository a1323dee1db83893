"""LTI 1.3 launch throughput and latency against gunicorn on PostgreSQL.

Full round trips (tool login -> platform auth -> tool launch, which validates the
id_token, provisions and signs in) at 1, 4 and 16 concurrent clients, side by
side with a bare Django view that writes a session, on the same gunicorn server
in the same run. The platform is the loopback lti1p3platform peer
(tests/peers/lti_platform.py); the JWKS is fetched once per TTL (counted).

    .venv/bin/python bench/lti_launch.py [--quick]

Needs PostgreSQL at 127.0.0.1:5432 (a database of its own is created and
dropped) and Redis at 127.0.0.1:6379 (the shared cache, as in production; keys
under a prefix of their own). Prints a table, then one JSON object as the very
last line.

What is measured, and changes to the harness (issue #3):
- A launch round trip is three HTTP requests (tool login, platform auth, tool
  launch) against one request for the baseline; both are driven by the same
  clients, with ``requests``. Each client (one browser, its own cookies) runs in
  a process of its own (they were threads of this process, serialised by its
  GIL), and the platform peer in another. All of it shares the machine's cores
  with gunicorn, PostgreSQL and Redis, so the clients' and the platform's CPU
  (about a fifth of a launch round trip's) counts against the launch, three
  requests' worth, and against the baseline, one request's worth.
- "cpu ms" is the CPU gunicorn's processes (the server under test) spent per
  baseline request / per launch round trip (its login and launch requests),
  read from /proc: a figure the other processes on the machine disturb less
  than throughput.
- "bare rt" is the launch's shape with no LTI work: the same three requests
  (a login view that only redirects to a second platform peer, its auth, and a
  POST back to a view that writes a session, as the baseline does), the same
  clients, the same server. It is the ceiling this machine and harness put on
  the launch: the platform's signing and the clients' three requests share the
  two cores with the server, so even a launch that did nothing but write its
  session would reach only about half the baseline's rate, with a p99 at 16
  clients above 50 ms (issue #3's targets are 50% and 50 ms).
- Every timed launch is a repeat launch of a person the warm-up already
  provisioned. Quick runs used to warm 40 people and then launch 200, so most
  of their "repeat" launches were first launches; they now launch the 40 they warmed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
import requests  # noqa: E402

from tests.peers.lti_platform import LaunchSpec, LtiPlatform, PlatformResponse  # noqa: E402

PG = "postgres://postgres@127.0.0.1:5432"
CONCURRENCY = (1, 4, 16)
ROLE_LEARNER = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_bench_modules(folder: Path) -> None:
    """A settings module adding one bare view (the baseline) to the project's URLs."""
    (folder / "lti_bench_urls.py").write_text(
        textwrap.dedent(
            """
            from urllib.parse import urlencode

            from django.http import HttpResponse, HttpResponseRedirect
            from django.urls import include, path
            from django.views.decorators.csrf import csrf_exempt

            def session_write(request):
                request.session["n"] = request.session.get("n", 0) + 1
                return HttpResponse("ok")

            # The bare round trip: the launch's shape (a login that redirects to the
            # platform, a cross-site POST back that writes a session) with no LTI
            # work at all: no state, no registration, no token check, no provisioning.
            def bare_login(request):
                q = request.GET
                params = {"scope": "openid", "response_type": "id_token", "response_mode": "form_post",
                          "prompt": "none", "client_id": q["client_id"], "redirect_uri": q["target_link_uri"],
                          "login_hint": q["login_hint"], "lti_message_hint": q["lti_message_hint"],
                          "state": "bare-state", "nonce": "bare-nonce"}
                return HttpResponseRedirect(q["auth_url"] + "?" + urlencode(params))

            @csrf_exempt
            def bare_launch(request):
                request.session["n"] = request.session.get("n", 0) + 1
                return HttpResponseRedirect("/classes/bare/")

            urlpatterns = [
                path("bench/session-write/", session_write),
                path("bench/bare-login/", bare_login),
                path("bench/bare-launch/", bare_launch),
                path("", include("config.urls")),
            ]
            """
        )
    )
    (folder / "lti_bench_settings.py").write_text(
        "from config.settings import *  # noqa\nROOT_URLCONF = 'lti_bench_urls'\n"
    )


def run(cmd: list[str], env: dict[str, str]) -> None:
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)


class Client:
    """One browser: its own cookies, one connection per request (gunicorn's sync
    workers close each one). Plain http.client rather than requests: requests spent
    about 2.5 ms of CPU per request here, more than the baseline view itself, and on
    a machine the clients share with the server that measured the client, three
    requests' worth against the launch and one against the baseline."""

    def __init__(self, tool: str, platform: dict[str, Any], subs: list[str]) -> None:
        self.tool = tool
        self.platform = platform
        self.subs = subs
        self.cookies: dict[str, str] = {}

    def _request(
        self, method: str, url: str, body: str | None = None
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        parts = urlsplit(url)
        headers = {"Host": parts.netloc}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
        try:
            conn.request(method, parts.path + ("?" + parts.query if parts.query else ""), body, headers)
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        for cookie in response.msg.get_all("Set-Cookie") or ():
            name, _, rest = cookie.partition("=")
            value, _, attributes = rest.partition(";")
            if not value or "max-age=0" in attributes.lower().replace(" ", ""):
                self.cookies.pop(name.strip(), None)
            else:
                self.cookies[name.strip()] = value
        return response.status, response.msg, data

    def launch(self, *, bare: bool = False) -> float:
        """One login+launch round trip; ``bare``: the same three requests against the
        bench's bare login and launch views and the second platform."""
        platform = self.platform["bare"] if bare else self.platform
        params = {
            "iss": platform["issuer"],
            "login_hint": random.choice(self.subs),
            "target_link_uri": self.tool + ("/bench/bare-launch/" if bare else "/lti/launch/"),
            "lti_message_hint": "bench",
            "client_id": platform["client_id"],
            "lti_deployment_id": platform["deployment_id"],
        }
        if bare:
            params["auth_url"] = platform["issuer"] + "/auth"
        login = "/bench/bare-login/" if bare else "/lti/login/"
        start = time.perf_counter()
        status, headers, data = self._request("GET", self.tool + login + "?" + urlencode(params))
        assert status == 302, data[:300]
        status, headers, data = self._request("GET", headers["Location"])
        assert status == 200, data[:300]
        action, fields = LtiPlatform.parse_form(data.decode())
        status, headers, data = self._request("POST", action, urlencode(fields))
        elapsed = time.perf_counter() - start
        assert status == 302 and "/classes/" in headers["Location"], data[:500]
        return elapsed

    def baseline(self) -> float:
        start = time.perf_counter()
        status, _headers, _data = self._request("GET", self.tool + "/bench/session-write/")
        elapsed = time.perf_counter() - start
        assert status == 200
        return elapsed


def serve_platform(port: int, tool: str, launch_path: str = "/lti/launch/") -> None:
    """The LMS in a process of its own, so its signing does not share a GIL with
    the clients; every login_hint is a student of the bench course."""

    def resolve(hint: str, login_hint: str) -> LaunchSpec:
        return LaunchSpec(
            sub=login_hint, roles=[ROLE_LEARNER], context_id="bench-course", hint=hint, login_hint=login_hint
        )

    platform = LtiPlatform(
        tool_launch_url=tool + launch_path,
        tool_login_url=tool + "/lti/login/",
        port=port,
        spec_resolver=resolve,
    )
    platform.add_route(
        "GET",
        "/stats",
        lambda _r: PlatformResponse(200, json.dumps({"jwks": platform.jwks_requests}), "application/json"),
    )
    platform.start()
    threading.Event().wait()


def _client_process(
    tool: str,
    platform: dict[str, Any],
    subs: list[str],
    kind: str,
    start_at: float,
    stop_at: float,
    conn: Any,
) -> None:
    """One client (one browser) in a process of its own, so 16 of them are not
    serialised by one GIL; requests start from ``start_at`` and stop at ``stop_at``."""
    client = Client(tool, platform, subs)
    latencies = []
    time.sleep(max(0.0, start_at - time.time()))
    while time.time() < stop_at:
        latencies.append(client.baseline() if kind == "baseline" else client.launch(bare=kind == "bare"))
    conn.send((latencies, time.time()))
    conn.close()


def server_cpu_seconds(master_pid: int) -> float:
    """CPU (user + system) gunicorn's master and workers used so far (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(proc.name) == master_pid or int(fields[1]) == master_pid:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def measure(
    tool: str, platform: dict[str, Any], subs: list[str], clients: int, kind: str, duration: float
) -> dict[str, float]:
    context = multiprocessing.get_context("fork")
    start_at = time.time() + 0.5  # every client forked and waiting before the clock starts
    stop_at = start_at + duration
    pipes, processes = [], []
    for _ in range(clients):
        receiver, sender = context.Pipe(duplex=False)
        process = context.Process(
            target=_client_process, args=(tool, platform, subs, kind, start_at, stop_at, sender), daemon=True
        )
        process.start()
        sender.close()
        pipes.append(receiver)
        processes.append(process)
    latencies: list[float] = []
    finished = start_at
    for receiver in pipes:
        mine, done_at = receiver.recv()
        latencies.extend(mine)
        finished = max(finished, done_at)
    for process in processes:
        process.join()
    wall = finished - start_at
    latencies.sort()
    return {
        "per_second": len(latencies) / wall,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "count": len(latencies),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="short runs (finishes in under a minute)")
    parser.add_argument("--workers", type=int, default=(os.cpu_count() or 1) * 2 + 1)
    args = parser.parse_args()
    duration = 3.0 if args.quick else 15.0

    db_name = f"lti_bench_{os.getpid()}"
    port = free_port()
    tool = f"http://127.0.0.1:{port}"
    with psycopg.connect(PG + "/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db_name}"')
    server = None
    folder = Path(tempfile.mkdtemp(prefix="lti-bench-"))
    write_bench_modules(folder)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "lti_bench_settings",
        "PYTHONPATH": f"{folder}{os.pathsep}{ROOT}",
        "DATABASE_URL": f"{PG}/{db_name}",
        "DATABASE_CONN_MAX_AGE": "600",
        "REDIS_URL": "redis://127.0.0.1:6379/3",
        "CACHE_KEY_PREFIX": f"lti-bench-{os.getpid()}",
        "DEBUG": "false",
        "SECRET_KEY": "bench-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
        "FIELD_ENCRYPTION_KEYS": "YmVuY2gta2V5LTAwMDAwMDAwMDAwMDAwMDAwMDAwMDA=",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "false",
        "SESSION_COOKIE_SECURE": "false",
        "CSRF_COOKIE_SECURE": "false",
        "OUTBOUND_ALLOW_PRIVATE_ADDRESSES": "true",
        "PUBLIC_BASE_URL": tool,
        "LOG_LEVEL": "WARNING",
        "VAR_DIR": str(folder / "var"),
    }
    python = str(ROOT / ".venv/bin/python")
    try:
        run([python, "manage.py", "migrate", "--noinput"], env)
        platform_port = free_port()
        base = f"http://127.0.0.1:{platform_port}"
        bare_port = free_port()
        platform: dict[str, Any] = {
            "issuer": base,
            "client_id": "hub-tool-client",
            "deployment_id": "deployment-1",
            # A second platform of the same kind, posting to the bare launch view.
            "bare": {
                "issuer": f"http://127.0.0.1:{bare_port}",
                "client_id": "hub-tool-client",
                "deployment_id": "deployment-1",
            },
        }
        peer = multiprocessing.get_context("fork").Process(
            target=serve_platform, args=(platform_port, tool), daemon=True
        )
        peer.start()
        bare_peer = multiprocessing.get_context("fork").Process(
            target=serve_platform, args=(bare_port, tool, "/bench/bare-launch/"), daemon=True
        )
        bare_peer.start()
        setup = textwrap.dedent(
            f"""
            from lti_tool.models import Deployment, PlatformRegistration
            from tutoring_core.accounts.services import tenant_create
            tenant, _ = tenant_create(slug="bench", name="Bench District", time_zone="UTC")
            r = PlatformRegistration.objects.create(tenant=tenant, issuer={base!r},
                client_id="hub-tool-client", auth_login_url={base + "/auth"!r},
                auth_token_url={base + "/token"!r}, key_set_url={base + "/jwks"!r})
            Deployment.objects.create(tenant=tenant, registration=r, deployment_id="deployment-1")
            """
        )
        run([python, "manage.py", "shell", "-c", setup], env)
        server = subprocess.Popen(
            [str(ROOT / ".venv/bin/gunicorn"), "config.wsgi", "--bind", f"127.0.0.1:{port}",
             "--workers", str(args.workers), "--worker-class", "sync", "--log-level", "warning"],
            cwd=ROOT, env=env, start_new_session=True,
        )  # fmt: skip
        deadline = time.time() + 30
        while True:
            try:
                if requests.get(tool + "/lti/jwks.json", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.time() > deadline:
                raise SystemExit("gunicorn did not start")
            time.sleep(0.2)

        # Quick runs warm (and then launch) 40 people, full runs 200: the timed
        # launches are all repeat launches of known people, in both modes.
        subs = [f"bench-user-{n}" for n in range(40 if args.quick else 200)]
        # Warm-up: every worker connects to PostgreSQL and every user exists.
        warm = Client(tool, platform, subs)
        for sub in subs:
            warm.subs = [sub]
            warm.launch()
        results: dict[int, dict[str, dict[str, float]]] = {}
        for clients in CONCURRENCY:
            results[clients] = {}
            for kind in ("baseline", "bare", "launch"):
                cpu_before = server_cpu_seconds(server.pid)
                result = measure(tool, platform, subs, clients, kind, duration)
                result["server_cpu_ms"] = (
                    (server_cpu_seconds(server.pid) - cpu_before) / result["count"] * 1000
                )
                results[clients][kind] = result
        jwks_fetches = requests.get(base + "/stats", timeout=5).json()["jwks"]
        peer.terminate()
        bare_peer.terminate()
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=20)
        with psycopg.connect(PG + "/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')

    print(
        f"LTI 1.3 login+launch vs a bare session-writing view; gunicorn ({args.workers} sync workers), PostgreSQL, Redis cache"
    )
    print(
        "baseline: one request that writes a session. bare rt: the launch's three requests (login redirect,"
        " platform auth, POST writing a session) with no LTI work: the ceiling this machine puts on the launch."
    )
    print(
        f"{'clients':>7} | {'baseline/s':>10} {'p99 ms':>7} {'cpu ms':>6} | {'bare rt/s':>9} {'p99 ms':>7} "
        f"{'cpu ms':>6} | {'launch rt/s':>11} {'p50 ms':>7} {'p99 ms':>7} {'cpu ms':>6} | {'ratio':>5} {'bare':>5}"
    )
    print("-" * 118)
    figures: dict[str, object] = {"benchmark": "lti_launch", "quick": args.quick, "workers": args.workers}
    for clients, by_kind in results.items():
        bl, br, ln = by_kind["baseline"], by_kind["bare"], by_kind["launch"]
        ratio = ln["per_second"] / bl["per_second"]
        bare_ratio = br["per_second"] / bl["per_second"]
        print(
            f"{clients:>7} | {bl['per_second']:>10.1f} {bl['p99_ms']:>7.1f} {bl['server_cpu_ms']:>6.2f} | "
            f"{br['per_second']:>9.1f} {br['p99_ms']:>7.1f} {br['server_cpu_ms']:>6.2f} | "
            f"{ln['per_second']:>11.1f} {ln['p50_ms']:>7.1f} {ln['p99_ms']:>7.1f} {ln['server_cpu_ms']:>6.2f} | "
            f"{ratio:>5.2f} {bare_ratio:>5.2f}"
        )
        figures[f"c{clients}"] = {
            **{
                f"{kind}_{name}": round(by_kind[kind][key], 2)
                for kind in ("baseline", "bare", "launch")
                for name, key in (
                    ("per_s", "per_second"),
                    ("p50_ms", "p50_ms"),
                    ("p99_ms", "p99_ms"),
                    ("server_cpu_ms", "server_cpu_ms"),
                )
            },
            "ratio": round(ratio, 3),
            "bare_ratio": round(bare_ratio, 3),
        }
    print("ratio: launch round trips / baseline requests; bare: bare round trips / baseline requests")
    print(f"platform JWKS fetched {jwks_fetches} time(s) over the whole run (TTL {3600}s)")
    figures["jwks_fetches"] = jwks_fetches
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
