"""Video rooms (issue 15): signaling messages per second and concurrent rooms held, each beside
a bare Channels echo consumer measured in the same run, and the join time of a Chromium peer.

    .venv/bin/python bench/video.py             # full
    .venv/bin/python bench/video.py --quick     # smaller; < 1 minute
    .venv/bin/python bench/video.py --redis     # the Redis channel layer (and cache) instead of in-memory
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/hub_bench_video .venv/bin/python bench/video.py
        (PostgreSQL: that database is dropped and made again for the run; SQLite in a
        temporary folder otherwise)

The server is what ``make run`` serves: uvicorn (one process, ``--ws websockets-sansio``)
running ``config.asgi`` on a fresh database, with the settings of ``config.settings_test``
plus the echo route (``VIDEO_ECHO_ENDPOINT``) and join tokens that outlive the run. Clients
use the ``websockets`` package from this process, on the same machine: both rows of each
pair carry that cost alike.

(a) Signaling: P rooms (a tutor and an admitted student on their room's socket, as the
    browser page does) and 2P sockets on the echo route, all open at once. Every socket
    keeps four messages in flight: a message the size of an ICE candidate; in a room the
    peer that receives it answers its sender (``signal`` -> group -> the addressee), on the
    echo route the server sends it straight back. Messages delivered per second, delivery
    latency p50/p99, and the server's CPU per message (from /proc); rounds alternate
    echo, room, echo, room and each row pools its two rounds.
(b) Rooms held: on a fresh server, rooms are opened in steps (tutor, then student, each
    waiting for its ``welcome``) and kept open; after each step a signal crosses every room
    at once and must arrive. The largest step where every room opened and every signal
    arrived is "held"; beside it, a fresh server holds the same number of echo sockets,
    each answering once. Server memory (RSS) per room and per socket.
(c) Join time: two headless Chromium peers with fake media (the flags of the browser tests),
    pages served over HTTP from the same server. The tutor waits in the room; a student
    (admitted before, so no human reaction to a knock is timed) opens the room page, the
    page checks camera, microphone and connectivity, the student clicks Join as soon as it
    is enabled, and the time from navigation start to "connected" is read from the page
    (performance.now() when #room-status turns "connected"); then the student leaves. No
    TURN server: on loopback the host candidates connect.

Prints a table, then one JSON line, last.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]
# The settings module the server runs: the test settings plus the echo route and static
# files from the app folders (nothing is collected for a throwaway database).
SETTINGS_MODULE = """from config.settings_test import *  # noqa: F403

VIDEO_ECHO_ENDPOINT = True
WHITENOISE_USE_FINDERS = True
"""
WINDOW = 4  # messages each socket keeps in flight
# What a browser sends most often while a call starts: one ICE candidate (~250 bytes of JSON).
CANDIDATE = {
    "candidate": (
        "candidate:842163049 1 udp 1677729535 203.0.113.7 54321 typ srflx raddr 10.0.0.5 "
        "rport 54321 generation 0 ufrag EsAw network-id 1 network-cost 10"
    ),
    "sdpMid": "0",
    "sdpMLineIndex": 0,
    "usernameFragment": "EsAw",
}
# Marks the moments #room-status changes state (ms since navigation start) and the click on Join.
MARKS_JS = """
window.__marks = {};
document.addEventListener("DOMContentLoaded", () => {
  const status = document.getElementById("room-status");
  if (status) {
    new MutationObserver(() => {
      const state = status.dataset.state;
      if (!(state in window.__marks)) window.__marks[state] = performance.now();
    }).observe(status, {attributes: true, attributeFilter: ["data-state"]});
  }
  const join = document.getElementById("join");
  if (join) join.addEventListener("click", () => { window.__marks.click = performance.now(); });
});
"""


# --- progress, numbers ----------------------------------------------------------------------------


def progress(label: str, done: int, total: int) -> None:
    """A bar on stderr, redrawn in place on a terminal; only the finished bar otherwise."""
    tty = sys.stderr.isatty()
    if not tty and done < total:
        return
    width = 30
    filled = width * done // max(total, 1)
    end = "\n" if done >= total else ""
    sys.stderr.write(f"\r  {label:<34} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}{end}")
    sys.stderr.flush()


def pct(samples: Sequence[float], q: float) -> float:
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, from /proc/<pid>/stat (fields 14 and 15)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# --- the setup child: a fresh database with rooms ready to enter ------------------------------------


def child_setup(rooms: int, out: str) -> None:
    """In a child process: tables straight from the models, ``rooms`` booked sessions (a tutor
    and a student each, the student admitted), a join token per person, and two signed-in
    browser sessions for the join-time room. Writes them to ``out`` as JSON."""
    import django

    django.setup()
    import datetime as dt

    from django.conf import settings
    from django.core.management import call_command
    from django.test import Client
    from django.utils import timezone

    class NoMigrations:
        def __contains__(self, app: str) -> bool:
            return True

        def __getitem__(self, app: str) -> None:
            return None

    settings.MIGRATION_MODULES = NoMigrations()
    call_command("migrate", verbosity=0, interactive=False, run_syncdb=True)
    if settings.CACHES["default"]["BACKEND"].endswith("DatabaseCache"):
        call_command("createcachetable", verbosity=0)

    from tutoring_core.accounts.models import Tenant, User
    from tutoring_core.scheduling.models import Session, SessionParticipant
    from tutoring_core.video import services
    from tutoring_core.video.models import Admission, Room

    tenant = Tenant.objects.create(slug="bench", name="Bench District")
    count = rooms + 1  # the last one is the browsers'
    tutors = User.objects.bulk_create(
        User(
            tenant=tenant,
            username=f"tutor{n}",
            email=f"tutor{n}@bench.example",
            first_name="Tutor",
            last_name=f"{n}",
        )
        for n in range(count)
    )
    students = User.objects.bulk_create(
        User(
            tenant=tenant,
            username=f"student{n}",
            email=f"s{n}@bench.example",
            first_name="Student",
            last_name=f"{n}",
        )
        for n in range(count)
    )
    start = timezone.now().replace(microsecond=0) - dt.timedelta(minutes=1)
    end = start + dt.timedelta(hours=3)
    sessions = Session.objects.bulk_create(
        Session(
            tenant=tenant,
            tutor=tutor,
            start=start,
            end=end,
            block_start=start,
            block_end=end,
            status=Session.Status.BOOKED,
            time_zone="UTC",
            subject="Bench",
        )
        for tutor in tutors
    )
    SessionParticipant.objects.bulk_create(
        SessionParticipant(tenant=tenant, session=session, student=student)
        for session, student in zip(sessions, students, strict=True)
    )
    room_rows = Room.objects.bulk_create(Room(tenant=tenant, session_id=session.pk) for session in sessions)
    Admission.objects.bulk_create(
        Admission(room=room, person=student, admitted_by=tutor)
        for room, student, tutor in zip(room_rows, students, tutors, strict=True)
    )
    # The first room through the service's whole access rule; the others' tokens the same way.
    access = services.room_access(user=tutors[0], session_id=sessions[0].pk)
    assert access.room_id == room_rows[0].pk and access.role == "tutor"

    def token(room: Room, person: User) -> str:
        return services.join_token_issue(
            access=dataclasses.replace(access, room_id=room.pk, person_id=person.pk)
        )

    entries = [
        [str(room.pk), token(room, tutor), token(room, student)]
        for room, tutor, student in zip(room_rows[:rooms], tutors, students, strict=False)
    ]
    cookies = {}
    for who, user in (("tutor", tutors[-1]), ("student", students[-1])):
        client = Client()
        client.force_login(user)
        cookies[who] = client.cookies[settings.SESSION_COOKIE_NAME].value
    Path(out).write_text(
        json.dumps(
            {
                "rooms": entries,
                "browser": {
                    "session": str(sessions[-1].pk),
                    "cookie_name": settings.SESSION_COOKIE_NAME,
                    **cookies,
                },
            }
        )
    )


# --- the server ---------------------------------------------------------------------------------


class Server:
    """uvicorn serving config.asgi in a process of its own."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        uvicorn = shutil.which("uvicorn", path=str(ROOT / ".venv" / "bin")) or "uvicorn"
        self.process = subprocess.Popen(
            [
                uvicorn,
                "config.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--ws",
                "websockets-sansio",
                "--log-level",
                "warning",
                "--no-access-log",
                "--backlog",
                "2048",
            ],
            env={**env, "PUBLIC_BASE_URL": self.base},
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=log.open("ab"),
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                sys.exit(f"the server did not start; its log: {log}")
            time.sleep(0.2)

    @property
    def pid(self) -> int:
        return self.process.pid

    def ws(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=3)  # the figures are taken: nothing to wait for
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# --- websocket clients ----------------------------------------------------------------------------


async def ws_open(server: Server, path: str) -> Any:
    from websockets.asyncio.client import connect

    return await connect(
        server.ws(path),
        origin=server.base,  # type: ignore[arg-type]  # Channels checks it against ALLOWED_HOSTS
        proxy=None,
        open_timeout=60,
        ping_interval=None,
        close_timeout=5,
        max_queue=None,
    )


async def expect(ws: Any, kind: str, timeout: float = 60) -> dict[str, Any]:
    message = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    if message.get("type") != kind:
        raise RuntimeError(f"expected {kind!r}, got {message}")
    return message


@dataclasses.dataclass
class Link:
    """One socket and where its messages go: a peer id in a room, or back on the echo route."""

    ws: Any
    to: str


async def open_room(server: Server, entry: Sequence[str]) -> tuple[Link, Link]:
    room_id, tutor_token, student_token = entry
    path = f"/ws/video/rooms/{room_id}/?token="
    tutor = await ws_open(server, path + quote(tutor_token))
    try:
        await expect(tutor, "welcome")
        student = await ws_open(server, path + quote(student_token))
        try:
            welcome = await expect(student, "welcome")
            joined = await expect(tutor, "peer-joined")
        except BaseException:
            await student.close()
            raise
    except BaseException:
        await tutor.close()
        raise
    return Link(tutor, joined["id"]), Link(student, welcome["peers"][0]["id"])


async def open_echo(server: Server) -> Link:
    return Link(await ws_open(server, "/ws/video/echo/"), "echo")


def message(to: str, sent: float) -> str:
    return json.dumps({"type": "signal", "to": to, "data": {"candidate": CANDIDATE, "t": sent}})


async def close_all(links: Iterable[Link]) -> None:
    await asyncio.gather(*(link.ws.close() for link in links), return_exceptions=True)


async def open_many(
    opener: Any, items: Sequence[Any], label: str, concurrency: int = 16
) -> tuple[list[Any], list[str], float]:
    """Open ``items`` with at most ``concurrency`` handshakes at once; what opened, the errors, seconds."""
    gate = asyncio.Semaphore(concurrency)
    opened: list[Any] = []
    errors: list[str] = []
    done = 0

    async def one(item: Any) -> None:
        nonlocal done
        async with gate:
            try:
                opened.append(await opener(item))
            except Exception as exc:  # counted and reported: a refused or timed-out join
                errors.append(f"{type(exc).__name__}: {exc}"[:200])
            done += 1
            if done % max(1, len(items) // 30) == 0 or done == len(items):
                progress(label, done, len(items))

    started = time.perf_counter()
    await asyncio.gather(*(one(item) for item in items))
    return opened, errors, time.perf_counter() - started


# --- (a) signaling throughput -----------------------------------------------------------------------


async def traffic(
    links: Sequence[Link], seconds: float, pid: int, window: int = WINDOW, starters: int | None = None
) -> dict[str, Any]:
    """The first ``starters`` links (all by default) put ``window`` messages in flight; each
    arrival is answered to its sender (a room's peer, or the echo route) for ``seconds``.
    Counts what arrives inside that time."""
    state = {"running": True, "measuring": False, "count": 0, "in_flight": 0}
    latencies: list[float] = []
    drained = asyncio.Event()

    async def pump(link: Link) -> None:
        while True:
            raw = await link.ws.recv()
            arrived = time.perf_counter()
            incoming = json.loads(raw)
            state["in_flight"] -= 1
            if state["measuring"]:
                state["count"] += 1
                latencies.append(arrived - incoming["data"]["t"])
            if state["running"]:
                # In a room the message came from the peer: answer it; on the echo route, send again.
                to = incoming.get("from", link.to)
                state["in_flight"] += 1
                await link.ws.send(message(to, time.perf_counter()))
            elif state["in_flight"] == 0:
                drained.set()

    readers = [asyncio.create_task(pump(link)) for link in links]
    for link in links[:starters]:
        for _ in range(window):
            state["in_flight"] += 1
            await link.ws.send(message(link.to, time.perf_counter()))
    await asyncio.sleep(min(1.0, seconds / 3))  # warm-up, not counted
    cpu_before, client_before = cpu_seconds(pid), time.process_time()
    started = time.perf_counter()
    state["measuring"] = True
    await asyncio.sleep(seconds)
    state["measuring"] = False
    elapsed = time.perf_counter() - started
    cpu_after, client_after = cpu_seconds(pid), time.process_time()
    state["running"] = False
    try:
        await asyncio.wait_for(drained.wait(), 30)
    except TimeoutError:
        raise RuntimeError(f"{state['in_flight']} messages never arrived") from None
    for reader in readers:
        reader.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    count = state["count"]
    return {
        "messages": count,
        "seconds": elapsed,
        "server_cpu_s": cpu_after - cpu_before,
        "client_cpu_s": client_after - client_before,
        "latencies": latencies,  # type: ignore[dict-item]
    }


def pooled(runs: list[dict[str, Any]]) -> dict[str, float]:
    messages = sum(r["messages"] for r in runs)
    latencies = [x for r in runs for x in r["latencies"]]
    return {
        "messages": messages,
        "per_second": round(messages / sum(r["seconds"] for r in runs), 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(pct(latencies, 99) * 1000, 2),
        "server_cpu_us_per_msg": round(sum(r["server_cpu_s"] for r in runs) / messages * 1e6, 1),
        "client_cpu_us_per_msg": round(sum(r["client_cpu_s"] for r in runs) / messages * 1e6, 1),
    }


async def signaling(server: Server, rooms: list[list[str]], seconds: float) -> dict[str, Any]:
    pairs, errors, _ = await open_many(lambda e: open_room(server, e), rooms, "signaling: open rooms")
    if errors:
        raise RuntimeError(f"{len(errors)} rooms did not open: {errors[0]}")
    room_links = [link for pair in pairs for link in pair]
    echo_links, errors, _ = await open_many(
        lambda _: open_echo(server), range(len(room_links)), "signaling: open echo sockets"
    )
    if errors:
        raise RuntimeError(f"{len(errors)} echo sockets did not open: {errors[0]}")
    # At rest: one message bouncing in one room (tutor -> student -> tutor ...) and on one
    # echo socket, nothing else moving: the delay a single signal adds.
    rest = {}
    for mode, links in (("echo", echo_links[:1]), ("room", room_links[:2])):
        rest[mode] = await traffic(links, min(seconds, 2.0), server.pid, window=1, starters=1)
    runs: dict[str, list[dict[str, Any]]] = {"echo": [], "room": []}
    order = ["echo", "room", "echo", "room"]
    for number, mode in enumerate(order):
        progress("signaling: rounds (echo/room)", number, len(order))
        runs[mode].append(await traffic(echo_links if mode == "echo" else room_links, seconds, server.pid))
    progress("signaling: rounds (echo/room)", len(order), len(order))
    await close_all(room_links + echo_links)
    result: dict[str, Any] = {"sockets": len(room_links), "rooms": len(pairs), "window": WINDOW}
    for mode in ("echo", "room"):
        result[mode] = pooled(runs[mode])
        result[mode]["at_rest_p50_ms"] = round(statistics.median(rest[mode]["latencies"]) * 1000, 2)
        result[mode]["at_rest_p99_ms"] = round(pct(rest[mode]["latencies"], 99) * 1000, 2)
    result["room_over_echo"] = round(result["room"]["per_second"] / result["echo"]["per_second"], 3)
    return result


# --- (b) rooms held -----------------------------------------------------------------------------


async def burst(pairs: Sequence[tuple[Link, Link]], timeout: float = 60) -> tuple[list[float], int]:
    """One signal from each room's tutor to its student, all at once: delivery times, and how many
    never arrived."""

    async def one(pair: tuple[Link, Link]) -> float:
        tutor, student = pair
        sent = time.perf_counter()
        await tutor.ws.send(message(tutor.to, sent))
        incoming = json.loads(await student.ws.recv())
        if incoming.get("type") != "signal":
            raise RuntimeError(f"expected a signal, got {incoming}")
        return time.perf_counter() - sent

    results = await asyncio.wait_for(
        asyncio.gather(*(one(p) for p in pairs), return_exceptions=True), timeout
    )
    times = [r for r in results if isinstance(r, float)]
    return times, len(results) - len(times)


async def echo_once(links: Sequence[Link], timeout: float = 60) -> int:
    async def one(link: Link) -> None:
        await link.ws.send(message("echo", time.perf_counter()))
        json.loads(await link.ws.recv())

    results = await asyncio.wait_for(
        asyncio.gather(*(one(x) for x in links), return_exceptions=True), timeout
    )
    return sum(1 for r in results if isinstance(r, BaseException))


async def hold_rooms(server: Server, rooms: list[list[str]], steps: list[int]) -> dict[str, Any]:
    idle = rss_mb(server.pid)
    pairs: list[tuple[Link, Link]] = []
    held: dict[str, Any] = {"rooms": 0, "steps": []}
    errors: list[str] = []
    try:
        for target in steps:
            opened, errors, seconds = await open_many(
                lambda e: open_room(server, e), rooms[len(pairs) : target], f"hold: rooms up to {target}"
            )
            pairs += opened
            times, lost = await burst(pairs)
            if errors or lost:
                held["failed_at"] = {"rooms": target, "join_errors": len(errors), "signals_lost": lost}
                held["first_error"] = errors[0] if errors else "a signal did not arrive"
                break
            memory = rss_mb(server.pid)
            step = {
                "rooms": len(pairs),
                "sockets": 2 * len(pairs),
                "joins_per_s": round(2 * len(opened) / seconds, 1),  # in this step
                "burst_p50_ms": round(statistics.median(times) * 1000, 1),
                "burst_p99_ms": round(pct(times, 99) * 1000, 1),
                "rss_mb": round(memory, 1),
                "kb_per_room": round((memory - idle) * 1024 / len(pairs), 1),
            }
            held["steps"].append(step)
            held.update(step)
    finally:
        await close_all(link for pair in pairs for link in pair)
    held["idle_rss_mb"] = round(idle, 1)
    return held


async def hold_echo(server: Server, sockets: int) -> dict[str, Any]:
    idle = rss_mb(server.pid)
    links, errors, seconds = await open_many(
        lambda _: open_echo(server), range(sockets), "hold: echo sockets"
    )
    try:
        lost = await echo_once(links)
        memory = rss_mb(server.pid)
    finally:
        await close_all(links)
    return {
        "sockets": len(links),
        "failed": len(errors) + lost,
        "opens_per_s": round(len(links) / seconds, 1),
        "rss_mb": round(memory, 1),
        "idle_rss_mb": round(idle, 1),
        "kb_per_socket": round((memory - idle) * 1024 / max(len(links), 1), 1),
    }


async def warm(server: Server, entry: Sequence[str]) -> None:
    """One room and one echo socket first: imports and connections, not timed."""
    tutor, student = await open_room(server, entry)
    echo = await open_echo(server)
    await echo.ws.send(message("echo", 0.0))
    await echo.ws.recv()
    await close_all([tutor, student, echo])


# --- (c) join time in Chromium --------------------------------------------------------------------


def join_times(server: Server, browser_world: dict[str, str], joins: int) -> dict[str, Any]:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    url = f"{server.base}/video/sessions/{browser_world['session']}/"
    missed_leaves = 0

    def cookie(who: str) -> list[dict[str, str]]:
        return [{"name": browser_world["cookie_name"], "value": browser_world[who], "url": server.base}]

    totals: list[float] = []
    prejoin: list[float] = []
    after_click: list[float] = []
    with sync_playwright() as playwright:  # a fresh profile of its own
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            tutor_context = browser.new_context()
            tutor_context.add_cookies(cookie("tutor"))  # type: ignore[arg-type]
            tutor = tutor_context.new_page()
            tutor.goto(url)
            tutor.click("#join:not([disabled])", timeout=30_000)
            tutor.wait_for_selector("#room-status[data-state=joined]", timeout=30_000)
            for number in range(joins):
                progress("join: Chromium student joins", number, joins)
                context = browser.new_context()
                context.add_cookies(cookie("student"))  # type: ignore[arg-type]
                context.add_init_script(MARKS_JS)
                page = context.new_page()
                page.goto(url)
                page.click("#join:not([disabled])", timeout=30_000)
                page.wait_for_selector("#room-status[data-state=connected]", timeout=30_000)
                tutor.wait_for_selector("#room-status[data-state=connected]", timeout=30_000)
                marks = page.evaluate("window.__marks")
                totals.append(marks["connected"])
                prejoin.append(marks["ready"])
                after_click.append(marks["connected"] - marks["click"])
                page.click("#leave")
                try:
                    tutor.wait_for_selector("#room-status[data-state=joined]", timeout=20_000)
                except PlaywrightTimeout:
                    # The tutor never heard that the student left (seen on the Redis layer after
                    # the signaling rounds): counted, and the tutor rejoins for the next student.
                    missed_leaves += 1
                    tutor.reload()
                    tutor.click("#join:not([disabled])", timeout=30_000)
                    tutor.wait_for_selector("#room-status[data-state=joined]", timeout=30_000)
                context.close()
            progress("join: Chromium student joins", joins, joins)
        finally:
            browser.close()
    return {
        "joins": joins,
        "p50_ms": round(statistics.median(totals)),
        "p99_ms": round(pct(totals, 99)),
        "max_ms": round(max(totals)),
        "prejoin_p50_ms": round(statistics.median(prejoin)),
        "click_to_connected_p50_ms": round(statistics.median(after_click)),
        "click_to_connected_p99_ms": round(pct(after_click, 99)),
        "tutor_missed_leave": missed_leaves,
    }


# --- the run ---------------------------------------------------------------------------------------


def _reset_postgres(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    with psycopg.connect(parts._replace(path="/postgres").geturl(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(url, autocommit=True) as conn:
        # Tables come straight from the models; scheduling's exclusion constraint needs this.
        conn.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")


def _redis_reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=2):
            return True
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="fewer rooms, shorter rounds, 5 joins (< 1 minute)"
    )
    parser.add_argument("--redis", action="store_true", help="the Redis channel layer (channels-redis)")
    parser.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/5",
        help="with --redis (default %(default)s; a database the tests do not use)",
    )
    parser.add_argument("--rooms", type=int, help="rooms in the signaling rounds (default 50, --quick 10)")
    parser.add_argument("--hold", type=int, help="the most rooms to hold (default 2000, --quick 60)")
    parser.add_argument("--joins", type=int, help="Chromium joins to time (default 20, --quick 5)")
    parser.add_argument("--child-setup", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_setup:
        return child_setup(int(args.child_setup[0]), args.child_setup[1])

    signal_rooms = args.rooms or (10 if args.quick else 50)
    hold_max = args.hold or (60 if args.quick else 2000)
    ladder = (30,) if args.quick else (250, 500, 1000, 2000, 4000)
    steps = [n for n in ladder if n < hold_max] + [hold_max]
    joins = args.joins or (5 if args.quick else 20)
    seconds = 1.5 if args.quick else 5.0
    if args.redis and not _redis_reachable(args.redis_url):
        sys.exit(f"--redis: nothing answers at {args.redis_url}")

    with tempfile.TemporaryDirectory(prefix="bench-video-") as tmp:
        work = Path(tmp)
        (work / "bench_video_settings.py").write_text(SETTINGS_MODULE)
        url = os.environ.get("DATABASE_URL", "")
        if url.startswith("postgres"):
            _reset_postgres(url)
            database = "postgresql"
        else:
            url = f"sqlite:///{work / 'bench.sqlite3'}"
            database = "sqlite"
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(work), str(ROOT)]),
            "DJANGO_SETTINGS_MODULE": "bench_video_settings",
            "DATABASE_URL": url,
            "VAR_DIR": str(work / "var"),
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "CACHE_KEY_PREFIX": f"bench-video-{os.getpid()}",
            "VIDEO_JOIN_TOKEN_TTL": "7200",  # the tokens are made once, before the run
            # Under ASGI each sync call may hold its own connection: one per call (see bench/scorm_commit.py).
            "DATABASE_CONN_MAX_AGE": os.environ.get("DATABASE_CONN_MAX_AGE", "0"),
        }
        env.pop("REDIS_URL", None)
        if args.redis:
            env["REDIS_URL"] = args.redis_url
        started = time.perf_counter()
        sys.stderr.write("  setting up the database...\n")
        world_file = work / "world.json"
        setup = subprocess.run(
            [sys.executable, __file__, "--child-setup", str(1 + signal_rooms + hold_max), str(world_file)],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        if setup.returncode != 0:
            sys.exit(f"setup failed:\n{setup.stderr[-3000:]}")
        world = json.loads(world_file.read_text())
        sys.stderr.write(f"  setup {time.perf_counter() - started:.1f} s\n")
        warmup_room, signal_set = world["rooms"][0], world["rooms"][1 : 1 + signal_rooms]
        hold_set = world["rooms"][1 + signal_rooms :]
        log = ROOT / "var" / "log" / "bench-video-server.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_bytes(b"")

        started = time.perf_counter()
        server = Server(env, log)
        sys.stderr.write(f"  server up after {time.perf_counter() - started:.1f} s\n")
        try:
            asyncio.run(warm(server, warmup_room))
            signal_figures = asyncio.run(signaling(server, signal_set, seconds))
            join_figures = join_times(server, world["browser"], joins)
        finally:
            server.stop()
        started = time.perf_counter()
        server = Server(env, log)
        sys.stderr.write(f"  server up after {time.perf_counter() - started:.1f} s\n")
        try:
            asyncio.run(warm(server, warmup_room))
            room_hold = asyncio.run(hold_rooms(server, hold_set, steps))
        finally:
            server.stop()
        started = time.perf_counter()
        server = Server(env, log)
        sys.stderr.write(f"  server up after {time.perf_counter() - started:.1f} s\n")
        try:
            asyncio.run(warm(server, warmup_room))
            echo_hold = asyncio.run(hold_echo(server, max(2 * room_hold["rooms"], 2 * steps[0])))
        finally:
            server.stop()

    layer = "redis" if args.redis else "in-memory"
    figures: dict[str, Any] = {
        "bench": "video",
        "quick": args.quick,
        "channel_layer": layer,
        "database": database,
        "server": "uvicorn config.asgi (1 process, websockets-sansio), clients on loopback",
        "signaling": signal_figures,
        "hold": {"target": hold_max, "steps": steps, "room": room_hold, "echo": echo_hold},
        "join": join_figures,
    }
    print(
        f"Video signaling ({layer} channel layer, {database}; uvicorn config.asgi, one process; "
        f"{signal_figures['rooms']} rooms / {signal_figures['sockets']} sockets beside as many echo sockets, "
        f"{WINDOW} messages in flight per socket; rounds alternate)"
    )
    header = (
        f"{'signaling':<34} {'msg/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'srv µs/msg':>11} "
        f"{'cli µs/msg':>11} {'rest p50':>9} {'rest p99':>9}"
    )
    print(header)
    print("-" * len(header))
    for mode, label in (
        ("echo", "bare echo consumer (baseline)"),
        ("room", "room signal (peer -> group -> peer)"),
    ):
        row = signal_figures[mode]
        print(
            f"{label:<34} {row['per_second']:>9} {row['p50_ms']:>8} {row['p99_ms']:>8} "
            f"{row['server_cpu_us_per_msg']:>11} {row['client_cpu_us_per_msg']:>11} "
            f"{row['at_rest_p50_ms']:>9} {row['at_rest_p99_ms']:>9}"
        )
    print("  (p50/p99: delivery under that load; rest: one message alone, in ms)")
    print()
    header = (
        f"{'held (a fresh server each)':<34} {'sockets':>9} {'opens/s':>8} {'RSS MB':>8} {'KB each':>8} "
        f"{'burst p50':>10} {'burst p99':>10}"
    )
    print(header)
    print("-" * len(header))
    print(
        f"{'echo sockets (baseline)':<34} {echo_hold['sockets']:>9} {echo_hold['opens_per_s']:>8} "
        f"{echo_hold['rss_mb']:>8} {echo_hold['kb_per_socket']:>8} {'':>10} {'':>10}"
    )
    for step in room_hold["steps"]:
        label = f"{step['rooms']} rooms (tutor + student)"
        print(
            f"{label:<34} {step['sockets']:>9} {step['joins_per_s']:>8} {step['rss_mb']:>8} "
            f"{step['kb_per_room']:>8} {step['burst_p50_ms']:>10} {step['burst_p99_ms']:>10}"
        )
    print(
        "  (opens/s: socket joins per second in that step; KB each: per echo socket, per room;\n"
        "   burst: ms for one signal to cross every held room, all sent at once)"
    )
    if "failed_at" in room_hold:
        print(f"  stopped at {room_hold['failed_at']}: {room_hold['first_error']}")
    else:
        print(f"  every step held, up to the target of {hold_max} rooms (--hold raises it)")
    print()
    header = f"{'join (Chromium, fake media)':<34} {'n':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"
    print(header)
    print("-" * len(header))
    print(
        f"{'page load -> connected':<34} {join_figures['joins']:>9} {join_figures['p50_ms']:>8} "
        f"{join_figures['p99_ms']:>8} {join_figures['max_ms']:>8}"
    )
    print(
        f"  of which pre-join checks p50 {join_figures['prejoin_p50_ms']} ms; click -> connected "
        f"p50 {join_figures['click_to_connected_p50_ms']} ms, p99 {join_figures['click_to_connected_p99_ms']} ms"
    )
    if join_figures["tutor_missed_leave"]:
        print(
            f"  the tutor missed the student's leaving {join_figures['tutor_missed_leave']} times (rejoined)"
        )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
