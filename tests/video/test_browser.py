"""Two headless Chromium peers with fake media join one booked session through the hub's
pages (served by uvicorn with the project's ASGI application) and reach "connected" with
frames decoded: directly, and relay-only through a coturn the test starts, over UDP and TCP.
The tutor admits the student from the waiting room; leaving and ending become attendance."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from tests import factories as f
from tests.scheduling.factories import SessionFactory, SessionParticipantFactory
from tests.video.harness import asgi_server, coturn
from tutoring_core.scheduling.models import Session
from tutoring_core.video.models import Attendance, Presence

pytestmark = [pytest.mark.browser, pytest.mark.peer]

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
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

# The selected pair's local candidate and the inbound video's decoded frames.
STATS_JS = """async () => {
  const out = [];
  for (const pc of window.videoRoom.pcs.values()) {
    const stats = await pc.getStats();
    let frames = 0, pairId = null;
    const byId = new Map();
    stats.forEach((s) => {
      byId.set(s.id, s);
      if (s.type === "inbound-rtp" && s.kind === "video") frames += s.framesDecoded || 0;
      if (s.type === "transport" && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
    });
    const pair = pairId && byId.get(pairId);
    const local = pair && byId.get(pair.localCandidateId);
    out.push({state: pc.connectionState, frames, type: local ? local.candidateType : null,
              relayProtocol: local ? (local.relayProtocol || null) : null});
  }
  return out;
}"""


@pytest.fixture
def booked(transactional_db: Any, settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    settings.WHITENOISE_USE_FINDERS = True
    settings.WHITENOISE_AUTOREFRESH = True
    tenant = f.TenantFactory(slug="north", name="North District")
    tutor = f.UserFactory(tenant=tenant, first_name="Tess", last_name="Tutor")
    student = f.UserFactory(tenant=tenant, first_name="Sam", last_name="Student")
    start = timezone.now().replace(microsecond=0) - dt.timedelta(minutes=1)
    session = SessionFactory(tutor=tutor, start=start, end=start + dt.timedelta(hours=1))
    SessionParticipantFactory(session=session, student=student)
    yield {"tenant": tenant, "tutor": tutor, "student": student, "session": session}


def _cookie(user: Any, base: str) -> Any:
    client = Client()
    client.force_login(user)
    return {"name": "sessionid", "value": client.cookies["sessionid"].value, "url": base}


def _decoding(page: Any) -> list[Any]:
    """The stats once the one connection has decoded a video frame. Polled from here: a
    wait_for_function predicate that returns a promise counts as truthy at once."""
    deadline = time.monotonic() + 30
    while True:
        stats = page.evaluate(STATS_JS)
        if len(stats) == 1 and stats[0]["frames"] > 0:
            return list(stats)
        assert time.monotonic() < deadline, f"no video frame decoded: {stats}"
        page.wait_for_timeout(200)


def _run_call(
    base: str, data: dict[str, Any], query: str, *, finish: bool = False
) -> tuple[list[Any], list[Any]]:
    from playwright.sync_api import sync_playwright

    url = f"{base}/video/sessions/{data['session'].pk}/{query}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            pages = {}
            for who in ("tutor", "student"):
                context = browser.new_context()
                context.add_cookies([_cookie(data[who], base)])
                page = context.new_page()
                page.goto(url)
                page.wait_for_selector("#join:not([disabled])", timeout=30_000)
                pages[who] = page
            tutor, student = pages["tutor"], pages["student"]
            tutor.click("#join")
            tutor.wait_for_selector("#room-status[data-state=joined]", timeout=20_000)
            student.click("#join")
            student.wait_for_selector("#room-status[data-state=waiting]", timeout=20_000)
            tutor.click("button[aria-label='Admit Sam Student']", timeout=20_000)
            for page in (tutor, student):
                page.wait_for_selector("#room-status[data-state=connected]", timeout=30_000)
            stats = {}
            for who, page in pages.items():
                stats[who] = _decoding(page)
            # Chat reaches the other side.
            student.fill("#chat-text", "Hello from Sam")
            student.press("#chat-text", "Enter")
            tutor.wait_for_selector("#chat-log li:has-text('Hello from Sam')", timeout=10_000)
            if finish:
                # Mute, camera off and screen sharing reach the other side's tile.
                caption = "figure[data-peer] figcaption"
                student.click("#mute")
                tutor.wait_for_function(
                    f"document.querySelector('{caption}').textContent === 'Sam Student (muted)'",
                    timeout=10_000,
                )
                assert student.get_attribute("#mute", "aria-pressed") == "true"
                student.click("#camera")
                tutor.wait_for_function(
                    f"document.querySelector('{caption}').textContent === 'Sam Student (muted) (camera off)'",
                    timeout=10_000,
                )
                student.click("#screen")
                tutor.wait_for_function(
                    f"document.querySelector('{caption}').textContent"
                    " === 'Sam Student (muted) (sharing their screen)'",
                    timeout=10_000,
                )
                assert student.inner_text("#screen") == "Stop sharing"
                student.click("#leave")
                tutor.wait_for_selector("#room-status[data-state=joined]", timeout=20_000)
                tutor.click("#end")
                tutor.wait_for_selector("#room-status[data-state=refused]", timeout=20_000)
                assert (
                    tutor.inner_text("#room-problem")
                    == "The tutor has ended this session; its room is closed."
                )
        finally:
            browser.close()
    return stats["tutor"], stats["student"]


def test_two_peers_connect_and_attendance_is_recorded(booked: dict[str, Any]) -> None:
    with asgi_server() as base:
        tutor_stats, student_stats = _run_call(base, booked, "", finish=True)
    for stats in (tutor_stats, student_stats):
        assert len(stats) == 1
        assert stats[0]["state"] == "connected"
        assert stats[0]["frames"] > 0
    session = Session.objects.get(pk=booked["session"].pk)
    assert session.status == "completed"
    assert session.outcome == "attended"
    assert session.participants.get().outcome == "attended"
    row = Attendance.objects.get(person=booked["student"])
    # Joined a minute after the start (not late), left 58 minutes before the end.
    assert row.outcome == "left_early"
    assert Presence.objects.filter(person=booked["student"], left_at__isnull=True).count() == 0
    assert Presence.objects.filter(person=booked["student"]).count() == 1


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_relay_only_through_coturn(booked: dict[str, Any], settings: Any, transport: str) -> None:
    with coturn() as turn, asgi_server() as base:
        settings.TURN_URLS = [f"turn:127.0.0.1:{turn.port}?transport={transport}"]
        settings.TURN_SECRET = turn.secret
        tutor_stats, student_stats = _run_call(base, booked, "?ice=relay")
    for stats in (tutor_stats, student_stats):
        assert stats[0]["state"] == "connected"
        assert stats[0]["frames"] > 0
        assert stats[0]["type"] == "relay"
        assert stats[0]["relayProtocol"] == transport


@contextmanager
def _lms_page(html: str) -> Iterator[str]:
    """A stand-in LMS page on its own loopback port: same site as the hub (cookies travel, as
    they do with SameSite=None in production), another origin (the frame is cross-origin)."""

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def test_in_a_frame_without_camera_permission_the_page_offers_a_new_window(
    booked: dict[str, Any], settings: Any
) -> None:
    """An LMS frame without allow="camera; microphone": the pre-join check says the frame blocks
    them and offers the room in a new window."""
    from playwright.sync_api import sync_playwright

    path = f"/video/sessions/{booked['session'].pk}/"
    with (
        asgi_server() as base,
        _lms_page(
            f'<!doctype html><title>LMS</title><iframe src="{base}{path}" title="Tutoring"></iframe>'
        ) as lms,
    ):
        settings.FRAME_ANCESTORS = [lms]
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
            try:
                context = browser.new_context()
                context.add_cookies([_cookie(booked["student"], base)])
                page = context.new_page()
                page.goto(lms)
                frame = page.frame_locator("iframe")
                frame.locator("#new-window:not([hidden])").wait_for(timeout=20_000)
                camera = frame.locator("#check-camera")
                camera.filter(has_text="blocked").wait_for(timeout=20_000)
                assert camera.inner_text() == "blocked in this frame — open the room in a new window"
                link = frame.locator("#new-window a")
                assert link.get_attribute("target") == "_blank"
                assert link.get_attribute("href") == path
            finally:
                browser.close()
