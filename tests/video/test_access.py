"""Who may enter a room, and what the socket answers everyone else: refusals carry a close
code and a reason the page shows; other tenants' rooms do not exist."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest
import time_machine
from django.test import Client
from django.utils import timezone
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect
from websockets.typing import Origin

from tests import factories as f
from tests.scheduling.factories import SessionFactory, SessionParticipantFactory
from tests.video.harness import asgi_server
from tutoring_core.accounts.models import GuardianLink
from tutoring_core.scheduling import api as scheduling
from tutoring_core.video import services
from tutoring_core.video.data import RoomAccess
from tutoring_core.video.models import Presence, VideoPolicy
from tutoring_core.video.protocol.turn import TurnCredential, turn_credential


@pytest.fixture
def room(db: Any) -> dict[str, Any]:
    tenant = f.TenantFactory(slug="north")
    tutor = f.UserFactory(tenant=tenant)
    student = f.UserFactory(tenant=tenant)
    start = timezone.now().replace(microsecond=0) - dt.timedelta(minutes=1)
    session = SessionFactory(tutor=tutor, start=start, end=start + dt.timedelta(hours=1))
    SessionParticipantFactory(session=session, student=student)
    return {"tenant": tenant, "tutor": tutor, "student": student, "session": session}


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_participants_get_the_room_and_a_token(room: dict[str, Any]) -> None:
    for who, role in (("tutor", "tutor"), ("student", "student")):
        client = _client(room[who])
        page = client.get(f"/video/sessions/{room['session'].pk}/")
        assert page.status_code == 200
        assert page["Permissions-Policy"] == "camera=(self), microphone=(self), display-capture=(self)"
        assert f"you join as {role}" in page.content.decode()
        answer = client.post(f"/video/sessions/{room['session'].pk}/token/")
        assert answer.status_code == 200
        body = answer.json()
        assert body["iceServers"] == []
        room_id = services.Room.objects.get(session_id=room["session"].pk).pk
        assert body["wsPath"] == f"/ws/video/rooms/{room_id}/"
        assert services.join_token_check(token=body["token"], room_id=room_id) == room[who].pk


def test_non_participant_same_tenant_is_refused_other_tenant_gets_404(room: dict[str, Any]) -> None:
    outsider = f.UserFactory(tenant=room["tenant"])
    page = _client(outsider).get(f"/video/sessions/{room['session'].pk}/")
    assert page.status_code == 403
    assert "Only the session&#x27;s tutor and booked students can join this room." in page.content.decode()
    assert _client(outsider).post(f"/video/sessions/{room['session'].pk}/token/").status_code == 403
    stranger = f.UserFactory(tenant=f.TenantFactory(slug="south"))
    assert _client(stranger).get(f"/video/sessions/{room['session'].pk}/").status_code == 404
    assert _client(stranger).post(f"/video/sessions/{room['session'].pk}/token/").status_code == 404
    assert _client(stranger).get(f"/video/sessions/{room['session'].pk}/attendance/").status_code == 404
    assert services.Room.objects.count() == 0  # nobody allowed in: no room made


def test_guardians_join_only_where_the_tenant_allows(room: dict[str, Any]) -> None:
    guardian = f.UserFactory(tenant=room["tenant"])
    GuardianLink.objects.create(tenant=room["tenant"], guardian=guardian, student=room["student"])
    assert _client(guardian).get(f"/video/sessions/{room['session'].pk}/").status_code == 403
    VideoPolicy.objects.create(tenant=room["tenant"], guardians_may_join=True)
    page = _client(guardian).get(f"/video/sessions/{room['session'].pk}/")
    assert page.status_code == 200
    assert "you join as guardian" in page.content.decode()


def test_turn_credential_matches_openssl() -> None:
    # printf '1804090200:alice' | openssl dgst -sha1 -hmac s3cret -binary | base64
    assert turn_credential(
        secret="s3cret", person_id="alice", now=1804089600, ttl_seconds=600
    ) == TurnCredential(
        username="1804090200:alice", credential="4MjT36Xd8OATSEUqcZCnB6zb+BM=", expires_at=1804090200
    )


def test_turn_credentials_in_the_ice_servers(room: dict[str, Any], settings: Any) -> None:
    settings.TURN_URLS = ["turn:127.0.0.1:3478?transport=tcp"]
    settings.TURN_SECRET = "s3cret"
    settings.VIDEO_TURN_TTL = 600
    settings.STUN_URLS = ["stun:127.0.0.1:3478"]
    moment = dt.datetime(2027, 3, 3, 16, 0, tzinfo=dt.UTC)  # 1804089600
    with time_machine.travel(moment, tick=False):
        servers = services.ice_servers_for(person_id=room["student"].pk)
    expected = turn_credential(
        secret="s3cret", person_id=room["student"].pk.hex, now=1804089600, ttl_seconds=600
    )
    assert expected.username == f"1804090200:{room['student'].pk.hex}"
    assert servers == [
        {"urls": ["stun:127.0.0.1:3478"]},
        {
            "urls": ["turn:127.0.0.1:3478?transport=tcp"],
            "username": expected.username,
            "credential": expected.credential,
        },
    ]


@pytest.fixture
def live(transactional_db: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with asgi_server() as base:
        yield base


def _socket(base: str, room_id: Any, token: str) -> tuple[dict[str, Any], int | None]:
    url = base.replace("http://", "ws://") + f"/ws/video/rooms/{room_id}/?token={token}"
    with connect(url, origin=Origin(base)) as ws:
        first = json.loads(ws.recv(timeout=10))
        try:
            ws.recv(timeout=10)
        except ConnectionClosed:
            pass
        return first, ws.close_code


def _access(room: dict[str, Any], person: Any) -> RoomAccess:
    access = services.room_access(user=room["tutor"], session_id=room["session"].pk)
    return RoomAccess(**{**access.__dict__, "person_id": person.pk, "role": "student"})


def test_socket_refuses_expired_token_non_participant_and_cancelled_session(live: str) -> None:
    tenant = f.TenantFactory(slug="north")
    tutor = f.UserFactory(tenant=tenant)
    student = f.UserFactory(tenant=tenant)
    # Starts in ten minutes: the room is open (15 minutes before) and the tutor may still cancel.
    start = timezone.now().replace(microsecond=0) + dt.timedelta(minutes=10)
    session = SessionFactory(tutor=tutor, start=start, end=start + dt.timedelta(hours=1))
    SessionParticipantFactory(session=session, student=student)
    data = {"tenant": tenant, "tutor": tutor, "student": student, "session": session}
    access = services.room_access(user=student, session_id=session.pk)

    with time_machine.travel(timezone.now() - dt.timedelta(minutes=3), tick=False):
        expired = services.join_token_issue(access=access)
    assert _socket(live, access.room_id, expired) == (
        {
            "type": "refused",
            "code": 4001,
            "reason": "Your join link has expired; reload the page to join again.",
        },
        4001,
    )
    assert _socket(live, access.room_id, "forged")[1] == 4001

    outsider = f.UserFactory(tenant=tenant)
    token = services.join_token_issue(access=_access(data, outsider))  # signed by us, but not a participant
    assert _socket(live, access.room_id, token) == (
        {
            "type": "refused",
            "code": 4003,
            "reason": "Only the session's tutor and booked students can join this room.",
        },
        4003,
    )

    welcome_token = services.join_token_issue(access=access)
    url = live.replace("http://", "ws://") + f"/ws/video/rooms/{access.room_id}/?token={welcome_token}"
    with connect(url, origin=Origin(live)) as ws:
        assert json.loads(ws.recv(timeout=10)) == {"type": "waiting"}  # not admitted yet

    token = services.join_token_issue(access=access)
    scheduling.booking_cancel(actor=tutor, session_id=session.pk, reason="ill")
    assert _socket(live, access.room_id, token) == (
        {"type": "refused", "code": 4009, "reason": "This session was cancelled; its room is closed."},
        4009,
    )
    page = _client(student).get(f"/video/sessions/{session.pk}/")
    assert page.status_code == 410
    assert "This session was cancelled; its room is closed." in page.content.decode()
    assert Presence.objects.count() == 0  # nobody was let in


def test_socket_checks_the_origin(live: str, room: dict[str, Any]) -> None:
    access = services.room_access(user=room["tutor"], session_id=room["session"].pk)
    url = live.replace("http://", "ws://") + f"/ws/video/rooms/{access.room_id}/?token=x"
    with pytest.raises(Exception) as refused:
        with connect(url, origin=Origin("http://evil.example")):
            pass
    assert "403" in str(refused.value)
