"""Two headless Chromium peers with fake media join one booked session through the hub's
pages (served by uvicorn with the project's ASGI application) and reach "connected" with
frames decoded: directly, and relay-only through a coturn the test starts, over UDP and TCP.
The tutor admits the student from the waiting room; leaving and ending become attendance."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
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
                page.wait_for_function(
                    "async () => { const r = await ("
                    + STATS_JS
                    + ")(); return r.length === 1 && r[0].frames > 0; }",
                    timeout=30_000,
                )
                stats[who] = page.evaluate(STATS_JS)
            # Chat reaches the other side.
            student.fill("#chat-text", "Hello from Sam")
            student.press("#chat-text", "Enter")
            tutor.wait_for_selector("#chat-log li:has-text('Hello from Sam')", timeout=10_000)
            if finish:
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
