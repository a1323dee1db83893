"""LiveKit recordings through Egress (issue 15 point 5) and withdrawn consent.

A loopback HTTP server stands in for LiveKit's Twirp API (no LiveKit server runs here): it checks
each call's path, verifies its bearer JWT with LiveKit's own SDK (the room_record grant) and
decodes the protobuf body with LiveKit's message types. The egress webhooks are signed as
LiveKit's server signs them. BigBlueButton's deleteRecordings goes to the stand-in BBB of
test_providers, which checks the checksum as BBB does.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import time_machine
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client
from django.utils import timezone
from livekit.api import TokenVerifier
from livekit.protocol import egress as egress_proto

from tests import factories as f
from tests.video.test_providers import BBB_SECRET, LK_KEY, LK_SECRET, FakeBBB, _hook, _ready, _session
from tutoring_core.accounts.models import AuditLog
from tutoring_core.video import services
from tutoring_core.video.models import Recording, RecordingConsent, Room, VideoPolicy


@dataclass
class FakeLiveKit:
    """LiveKit's Egress service as far as the hub uses it."""

    calls: list[tuple[str, Any]] = field(default_factory=list)
    fail_start: str = ""  # answer StartRoomCompositeEgress with this Twirp error

    def answer(self, path: str, authorization: str, body: bytes) -> tuple[int, bytes]:
        token = authorization.removeprefix("Bearer ")
        try:
            claims = TokenVerifier(LK_KEY, LK_SECRET).verify(token)
        except Exception:
            return 401, json.dumps({"code": "unauthenticated", "msg": "invalid token"}).encode()
        if claims.video is None or not claims.video.room_record:
            return 403, json.dumps({"code": "permission_denied", "msg": "no permissions"}).encode()
        if path == "/twirp/livekit.Egress/StartRoomCompositeEgress":
            request = egress_proto.RoomCompositeEgressRequest()
            request.ParseFromString(body)
            self.calls.append(("start", request))
            if self.fail_start:
                return 503, json.dumps({"code": "unavailable", "msg": self.fail_start}).encode()
            number = len([c for c in self.calls if c[0] == "start"])
            info = egress_proto.EgressInfo(
                egress_id=f"EG_{number}", room_name=request.room_name, status=egress_proto.EGRESS_STARTING
            )
            return 200, info.SerializeToString()
        if path == "/twirp/livekit.Egress/StopEgress":
            stop = egress_proto.StopEgressRequest()
            stop.ParseFromString(body)
            self.calls.append(("stop", stop))
            info = egress_proto.EgressInfo(egress_id=stop.egress_id, status=egress_proto.EGRESS_ENDING)
            return 200, info.SerializeToString()
        return 404, json.dumps({"code": "bad_route", "msg": f"no handler for {path}"}).encode()


def _serve(answer: Any) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, reply = answer(urlsplit(self.path).path, self.headers.get("Authorization", ""), body)
            self._send(status, reply, "application/protobuf" if status == 200 else "application/json")

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            self._send(200, answer(parts.path, parts.query).encode(), "text/xml")

        def _send(self, status: int, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def livekit(db: Any, settings: Any, tmp_path: Path) -> Iterator[dict[str, Any]]:
    settings.MEDIA_ROOT = str(tmp_path)
    fake = FakeLiveKit()
    for address in _serve(fake.answer):
        tenant = f.TenantFactory(slug="north")
        VideoPolicy.objects.create(
            tenant=tenant,
            provider="livekit",
            server_url=f"ws://{address}",
            client_url="https://meet.example.org/custom",
            app_id=LK_KEY,
            secret=LK_SECRET,
            recording_allowed=True,
        )
        yield {"tenant": tenant, "fake": fake, **_session(tenant)}


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _recorded_room(data: dict[str, Any]) -> Room:
    """Consent given, recording asked for, the student joined: the meeting records."""
    services.consent_set(
        actor=data["guardian"], session_id=data["session"].pk, student_id=data["student"].pk, given=True
    )
    services.recording_request(actor=data["tutor"], session_id=data["session"].pk)
    answer = _client(data["student"]).post(f"/video/sessions/{data['session'].pk}/join/")
    assert answer.status_code == 302
    room = Room.objects.get(session_id=data["session"].pk)
    assert room.recorded is True
    return room


def _event(room: Room, kind: str, event_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "event": kind,
        "id": event_id,
        "createdAt": "1804089600",
        "room": {"sid": "RM_1", "name": room.pk.hex},
        **extra,
    }


def _egress_event(room: Room, kind: str, event_id: str, egress: dict[str, Any]) -> dict[str, Any]:
    return {
        "event": kind,
        "id": event_id,
        "createdAt": "1804089600",
        "egressInfo": {"roomName": room.pk.hex, **egress},
    }


def test_egress_starts_with_consent_and_its_webhooks_make_the_recording_ready(
    livekit: dict[str, Any],
) -> None:
    data, fake = livekit, livekit["fake"]
    room = _recorded_room(data)
    assert fake.calls == []  # the meeting exists only once LiveKit says it started

    assert _hook(data["tenant"], _event(room, "room_started", "EV_rs")).json() == {"outcome": "room_started"}
    recording = Recording.objects.get()
    assert [kind for kind, _ in fake.calls] == ["start"]
    request = fake.calls[0][1]
    filepath = f"video-recordings/{data['tenant'].pk}/{room.pk.hex}/{recording.pk}.mp4"
    assert (request.room_name, request.layout, len(request.file_outputs)) == (room.pk.hex, "grid", 1)
    assert (request.file_outputs[0].filepath, request.file_outputs[0].file_type) == (
        filepath,
        egress_proto.MP4,
    )
    assert (recording.external_id, recording.state, recording.file_name) == ("EG_1", "recording", filepath)

    joined = _event(
        room,
        "participant_joined",
        "EV_pj",
        participant={"sid": "PA_1", "identity": data["student"].pk.hex, "name": "Sam Student"},
    )
    assert _hook(data["tenant"], joined).json() == {"outcome": "participant_joined"}
    assert len(fake.calls) == 1  # one egress per room while it runs
    started = _egress_event(room, "egress_started", "EV_es", {"egressId": "EG_1", "status": "EGRESS_ACTIVE"})
    assert _hook(data["tenant"], started).json() == {"outcome": "egress_started"}
    assert Recording.objects.get().state == "recording"
    page = _client(data["tutor"]).get(f"/video/sessions/{data['session'].pk}/recording/").content.decode()
    assert '<li class="recording" data-state="recording">' in page
    assert "Recording now" in page

    # The tutor ends the room: the egress is stopped; LiveKit's egress_ended says where the file is.
    assert _client(data["tutor"]).post(f"/video/sessions/{data['session'].pk}/end/").status_code == 302
    assert fake.calls[-1][0] == "stop"
    assert fake.calls[-1][1].egress_id == "EG_1"
    assert Recording.objects.get().state == "processing"
    location = f"https://media.example.org/{filepath}"
    ended = _egress_event(
        room,
        "egress_ended",
        "EV_ee",
        {
            "egressId": "EG_1",
            "status": "EGRESS_COMPLETE",
            "fileResults": [{"filename": filepath, "location": location, "size": "1234"}],
        },
    )
    forged = _hook(data["tenant"], ended, auth="not-a-jwt")
    assert forged.status_code == 401
    assert Recording.objects.get().state == "processing"
    assert _hook(data["tenant"], ended).json() == {"outcome": "egress_ended"}
    recording = Recording.objects.get()
    assert (recording.state, recording.file_name, recording.file_location) == ("ready", filepath, location)
    page = _client(data["guardian"]).get(f"/video/sessions/{data['session'].pk}/recording/").content.decode()
    assert '<li class="recording" data-state="ready">' in page
    assert f'<span class="file-location">{location}</span>' in page


def test_a_failed_egress_shows_its_reason(livekit: dict[str, Any]) -> None:
    data, fake = livekit, livekit["fake"]
    room = _recorded_room(data)
    fake.fail_start = "no egress workers available"
    _hook(data["tenant"], _event(room, "room_started", "EV_rs"))
    recording = Recording.objects.get()
    assert (recording.state, recording.failure_reason) == (
        "failed",
        "LiveKit refused to start the recording: LiveKit answered 503: no egress workers available",
    )
    page = _client(data["tutor"]).get(f"/video/sessions/{data['session'].pk}/recording/").content.decode()
    assert (
        '<span class="failure">LiveKit refused to start the recording: LiveKit answered 503: no egress workers available</span>'
        in page
    )

    # A later start succeeds; its egress then fails inside LiveKit.
    fake.fail_start = ""
    joined = _event(
        room,
        "participant_joined",
        "EV_pj",
        participant={"sid": "PA_1", "identity": data["student"].pk.hex, "name": "Sam Student"},
    )
    _hook(data["tenant"], joined)
    second = Recording.objects.get(external_id="EG_2")
    assert second.state == "recording"
    failed = _egress_event(
        room,
        "egress_ended",
        "EV_ef",
        {"egressId": "EG_2", "status": "EGRESS_FAILED", "error": "Start signal not received"},
    )
    assert _hook(data["tenant"], failed).json() == {"outcome": "egress_ended"}
    second.refresh_from_db()
    assert (second.state, second.failure_reason, second.file_location) == (
        "failed",
        "Start signal not received",
        "",
    )


def test_no_egress_without_consent_or_recording_request(livekit: dict[str, Any]) -> None:
    data, fake = livekit, livekit["fake"]
    services.recording_request(actor=data["tutor"], session_id=data["session"].pk)  # no consent given
    _client(data["student"]).post(f"/video/sessions/{data['session'].pk}/join/")
    room = Room.objects.get()
    assert room.recorded is False
    assert _hook(data["tenant"], _event(room, "room_started", "EV_rs")).json() == {"outcome": "room_started"}
    assert (fake.calls, Recording.objects.count()) == ([], 0)


def test_withdrawn_consent_stops_the_egress_and_deletes_the_file(livekit: dict[str, Any]) -> None:
    data, fake = livekit, livekit["fake"]
    room = _recorded_room(data)
    _hook(data["tenant"], _event(room, "room_started", "EV_rs"))
    recording = Recording.objects.get()
    url = f"/video/sessions/{data['session'].pk}/recording/"
    withdrawn = _client(data["guardian"]).post(
        url, {"student": str(data["student"].pk), "consent": "withdraw"}
    )
    assert withdrawn.status_code == 302
    assert fake.calls[-1][0] == "stop"
    assert fake.calls[-1][1].egress_id == "EG_1"
    room.refresh_from_db()
    assert room.recorded is False  # the banner goes, and a rejoin records nothing
    status = _client(data["student"]).get(f"/video/sessions/{data['session'].pk}/status/").json()
    assert status == {"open": True, "reason": "", "recorded": False}
    assert Recording.objects.get().state == "processing"
    assert AuditLog.objects.filter(action="video.recording.consent_withdrawn").count() == 1

    # LiveKit finishes writing the file into the hub's storage, then says so: it is deleted.
    stored = default_storage.save(recording.file_name, ContentFile(b"mp4 bytes"))
    assert stored == recording.file_name
    ended = _egress_event(
        room,
        "egress_ended",
        "EV_ee",
        {
            "egressId": "EG_1",
            "status": "EGRESS_COMPLETE",
            "fileResults": [{"filename": stored, "location": "s3://b/x"}],
        },
    )
    assert _hook(data["tenant"], ended).json() == {"outcome": "egress_ended"}
    assert Recording.objects.get().state == "deleted"
    assert not default_storage.exists(stored)
    # Another participant joining starts no new recording.
    joined = _event(
        room,
        "participant_joined",
        "EV_pj",
        participant={"sid": "PA_2", "identity": data["tutor"].pk.hex, "name": "Tess Tutor"},
    )
    _hook(data["tenant"], joined)
    assert [kind for kind, _ in fake.calls] == ["start", "stop"]


def test_withdrawn_consent_deletes_a_ready_livekit_file(livekit: dict[str, Any]) -> None:
    data = livekit
    room = _recorded_room(data)
    _hook(data["tenant"], _event(room, "room_started", "EV_rs"))
    recording = Recording.objects.get()
    default_storage.save(recording.file_name, ContentFile(b"mp4 bytes"))
    ended = _egress_event(
        room,
        "egress_ended",
        "EV_ee",
        {"egressId": "EG_1", "status": "EGRESS_COMPLETE", "fileResults": [{"filename": recording.file_name}]},
    )
    _hook(data["tenant"], ended)
    assert Recording.objects.get().state == "ready"
    assert default_storage.exists(recording.file_name)
    services.consent_set(
        actor=data["guardian"], session_id=data["session"].pk, student_id=data["student"].pk, given=False
    )
    assert Recording.objects.get().state == "deleted"
    assert not default_storage.exists(recording.file_name)
    assert RecordingConsent.objects.get().withdrawn_at is not None


@pytest.fixture
def bbb(db: Any) -> Iterator[dict[str, Any]]:
    fake = FakeBBB(BBB_SECRET)
    for address in _serve(fake.answer):
        tenant = f.TenantFactory(slug="north")
        VideoPolicy.objects.create(
            tenant=tenant,
            provider="bbb",
            server_url=f"http://{address}/bigbluebutton/",
            secret=BBB_SECRET,
            recording_allowed=True,
        )
        yield {"tenant": tenant, "fake": fake, **_session(tenant)}


def test_withdrawn_consent_ends_a_recording_bbb_meeting_and_deletes_its_recordings(
    bbb: dict[str, Any],
) -> None:
    data, fake = bbb, bbb["fake"]
    room = _recorded_room(data)
    assert _ready(data["tenant"], room.pk.hex).json() == {
        "outcome": "recorded"
    }  # an earlier part's recording
    assert Recording.objects.get().state == "ready"
    calls_before = len(fake.calls)

    url = f"/video/sessions/{data['session'].pk}/recording/"
    answer = _client(data["guardian"]).post(url, {"student": str(data["student"].pk), "consent": "withdraw"})
    assert answer.status_code == 302
    # BigBlueButton cannot stop a meeting's recording: the meeting is ended; then the recording
    # is deleted through deleteRecordings (the stand-in checked both checksums).
    assert fake.calls[calls_before:] == [
        ("end", [("meetingID", room.pk.hex)]),
        ("deleteRecordings", [("recordID", "rec-1")]),
    ]
    assert Recording.objects.get().state == "deleted"
    room.refresh_from_db()
    assert room.recorded is False
    # Rejoining makes an unrecorded meeting.
    _client(data["student"]).post(f"/video/sessions/{data['session'].pk}/join/")
    assert fake.calls[-1][0] == "create"
    create = dict(fake.calls[-1][1])
    assert (create["record"], create["autoStartRecording"]) == ("false", "false")


def test_a_failed_deletion_is_reported_and_retried(bbb: dict[str, Any], settings: Any) -> None:
    data, fake = bbb, bbb["fake"]
    room = _recorded_room(data)
    _ready(data["tenant"], room.pk.hex)
    VideoPolicy.objects.filter(tenant=data["tenant"]).update(checksum_algorithm="sha256")  # BBB refuses
    url = f"/video/sessions/{data['session'].pk}/recording/"
    answer = _client(data["guardian"]).post(url, {"student": str(data["student"].pk), "consent": "withdraw"})
    assert answer.status_code == 503
    assert (
        "Your consent is withdrawn, but the recording is not deleted yet: BigBlueButton refused end: "
        in answer.content.decode()
    )
    assert RecordingConsent.objects.get().withdrawn_at is not None
    assert Recording.objects.get().state == "ready"
    room.refresh_from_db()
    assert room.recorded is True  # still recording: the banner stays until it stops
    assert "deleteRecordings" not in [c for c, _ in fake.calls]

    VideoPolicy.objects.filter(tenant=data["tenant"]).update(checksum_algorithm="sha1")
    calls_before = len(fake.calls)
    again = _client(data["guardian"]).post(url, {"student": str(data["student"].pk), "consent": "withdraw"})
    assert again.status_code == 302
    assert fake.calls[calls_before:] == [
        ("end", [("meetingID", room.pk.hex)]),
        ("deleteRecordings", [("recordID", "rec-1")]),
    ]
    assert Recording.objects.get().state == "deleted"
    assert AuditLog.objects.filter(action="video.recording.consent_withdrawn").count() == 1


def test_a_start_that_never_answered_is_given_up_and_started_again(livekit: dict[str, Any]) -> None:
    data, fake = livekit, livekit["fake"]
    room = _recorded_room(data)
    moment = timezone.now()
    with time_machine.travel(moment, tick=False):
        stuck = Recording.objects.create(room=room, external_id="starting:dead", state="starting")
    with time_machine.travel(moment + dt.timedelta(minutes=1), tick=False):
        _hook(data["tenant"], _event(room, "room_started", "EV_rs1"))
    assert fake.calls == []  # still within its time: no second egress
    with time_machine.travel(moment + dt.timedelta(minutes=3), tick=False):
        _hook(data["tenant"], _event(room, "room_started", "EV_rs2"))
    stuck.refresh_from_db()
    assert (stuck.state, stuck.failure_reason) == ("failed", "LiveKit's answer to the start never came back.")
    assert [kind for kind, _ in fake.calls] == ["start"]
    assert Recording.objects.get(external_id="EG_1").state == "recording"
