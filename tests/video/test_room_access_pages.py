"""Access (issue 15 point 3): a room link is shown only to people the room lets in, and a
live room closes when its session is cancelled (every socket in it is told why)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect
from websockets.typing import Origin

from tests import factories as f
from tests.scheduling.factories import SessionFactory, SessionParticipantFactory, TutorProfileFactory
from tests.video.harness import asgi_server
from tutoring_core.accounts.models import GuardianLink
from tutoring_core.scheduling import api as scheduling
from tutoring_core.video import api as video_api
from tutoring_core.video import services
from tutoring_core.video.models import VideoPolicy


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_room_links_only_for_people_the_room_lets_in(db: Any) -> None:
    tenant = f.TenantFactory(slug="north")
    admin = f.district_admin(tenant)
    profile = TutorProfileFactory(user=f.UserFactory(tenant=tenant))
    tutor = profile.user
    student = f.UserFactory(tenant=tenant, first_name="Sam")
    guardian = f.UserFactory(tenant=tenant)
    GuardianLink.objects.create(tenant=tenant, guardian=guardian, student=student)
    start = (timezone.now() + dt.timedelta(days=1)).replace(microsecond=0)
    session = SessionFactory(tutor=tutor, start=start, end=start + dt.timedelta(hours=1), created_by=admin)
    SessionParticipantFactory(session=session, student=student, booked_by=admin)
    room = f'href="/video/sessions/{session.pk}/"'

    def sessions_page(user: Any) -> str:
        page = _client(user).get("/scheduling/sessions/")
        assert page.status_code == 200
        assert "Cancel the session" in page.content.decode()  # the session is listed for them
        return page.content.decode()

    assert room in sessions_page(tutor)
    assert room in sessions_page(student)
    assert room not in sessions_page(admin)  # booked it, but the room would answer 403
    assert _client(admin).get(f"/video/sessions/{session.pk}/").status_code == 403
    week = _client(admin).get(f"/scheduling/tutors/{tutor.pk}/week/?week={start.date().isoformat()}")
    assert week.status_code == 200
    assert room not in week.content.decode()
    assert room not in sessions_page(guardian)
    VideoPolicy.objects.create(tenant=tenant, guardians_may_join=True)
    assert room in sessions_page(guardian)
    info = scheduling.session_info(session.pk)
    assert [video_api.room_joinable(user=u, info=info) for u in (tutor, student, guardian, admin)] == [
        True,
        True,
        True,
        False,
    ]


@pytest.fixture
def live(transactional_db: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with asgi_server() as base:
        yield base


def _socket(base: str, room_id: Any, token: str) -> Any:
    return connect(
        base.replace("http://", "ws://") + f"/ws/video/rooms/{room_id}/?token={token}", origin=Origin(base)
    )


def _until(ws: Any, kind: str) -> dict[str, Any]:
    while True:
        message = json.loads(ws.recv(timeout=10))
        if message["type"] == kind:
            return dict(message)


def _closed(ws: Any) -> int | None:
    with pytest.raises(ConnectionClosed):
        while True:
            ws.recv(timeout=10)
    return int(ws.close_code) if ws.close_code is not None else None


def test_cancelling_a_session_closes_its_live_room(live: str) -> None:
    tenant = f.TenantFactory(slug="north")
    tutor = f.UserFactory(tenant=tenant)
    first, second = f.UserFactory(tenant=tenant), f.UserFactory(tenant=tenant)
    # Starts in ten minutes: the room is open and the session may still be cancelled.
    start = timezone.now().replace(microsecond=0) + dt.timedelta(minutes=10)
    session = SessionFactory(tutor=tutor, start=start, end=start + dt.timedelta(hours=1), capacity=3)
    SessionParticipantFactory(session=session, student=first)
    SessionParticipantFactory(session=session, student=second)
    tutor_access = services.room_access(user=tutor, session_id=session.pk)
    tokens = {
        who: services.join_token_issue(access=services.room_access(user=who, session_id=session.pk))
        for who in (tutor, first, second)
    }
    with (
        _socket(live, tutor_access.room_id, tokens[tutor]) as tutor_ws,
        _socket(live, tutor_access.room_id, tokens[first]) as first_ws,
        _socket(live, tutor_access.room_id, tokens[second]) as second_ws,
    ):
        assert _until(tutor_ws, "welcome")["role"] == "tutor"
        assert _until(first_ws, "waiting") == {"type": "waiting"}
        assert _until(second_ws, "waiting") == {"type": "waiting"}
        # One student's place is cancelled: only their socket closes, with the reason.
        scheduling.booking_cancel(actor=first, session_id=session.pk, student=first)
        assert _until(first_ws, "refused") == {
            "type": "refused",
            "code": 4009,
            "reason": "Your place in this session was cancelled; its room is closed to you.",
        }
        assert _closed(first_ws) == 4009
        # The whole session is cancelled: everyone in the room is told and closed.
        scheduling.booking_cancel(actor=tutor, session_id=session.pk, reason="ill")
        for ws in (tutor_ws, second_ws):
            assert _until(ws, "refused") == {
                "type": "refused",
                "code": 4009,
                "reason": "This session was cancelled; its room is closed.",
            }
            assert _closed(ws) == 4009
