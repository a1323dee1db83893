"""Providers behind one interface (issue 15 point 2) and recording with consent (point 5).

BigBlueButton: its API's own checksum example, and a stand-in BBB server on loopback that
checks every call's checksum the way BBB does and answers in BBB's XML (no real BBB runs here).
Jitsi and LiveKit: the tokens decoded by an independent verifier (PyJWT; LiveKit's own SDK),
LiveKit's webhooks signed as its server signs them.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jwt
import pytest
from django.test import Client
from django.utils import timezone
from livekit.api import AccessToken, TokenVerifier

from tests import factories as f
from tests.scheduling.factories import SessionFactory, SessionParticipantFactory
from tutoring_core.accounts.models import AuditLog, GuardianLink
from tutoring_core.scheduling import api as scheduling
from tutoring_core.video import services
from tutoring_core.video.models import (
    Attendance,
    Presence,
    ProviderEvent,
    Recording,
    RecordingConsent,
    Room,
    VideoPolicy,
)
from tutoring_core.video.protocol import bbb, jitsi

BBB_SECRET = "639259d4-9dd8-4b25-bf01-95f9567eaf4b"  # the API reference's example secret
LK_KEY, LK_SECRET = "APIhubtest", "lk-secret-0123456789abcdef0123456789"


def test_bbb_checksum_is_the_api_reference_example() -> None:
    # BigBlueButton API reference, "Usage": create with this query and secret.
    query = bbb.query_string(
        {"name": "Test Meeting", "meetingID": "abc123", "attendeePW": "111222", "moderatorPW": "333444"}
    )
    assert query == "name=Test+Meeting&meetingID=abc123&attendeePW=111222&moderatorPW=333444"
    assert (
        bbb.checksum(call="create", query=query, secret=BBB_SECRET)
        == "1fcbb0c4fc1f039f73aa6d697d2db9ba7f803f17"
    )
    assert (
        bbb.checksum(call="create", query=query, secret=BBB_SECRET, algorithm="sha256")
        == hashlib.sha256(f"create{query}{BBB_SECRET}".encode()).hexdigest()
    )
    assert bbb.call_url(
        base_url="https://bbb.example.org/bigbluebutton/",
        call="create",
        params=[
            ("name", "Test Meeting"),
            ("meetingID", "abc123"),
            ("attendeePW", "111222"),
            ("moderatorPW", "333444"),
        ],
        secret=BBB_SECRET,
    ) == (
        "https://bbb.example.org/bigbluebutton/api/create?name=Test+Meeting&meetingID=abc123"
        "&attendeePW=111222&moderatorPW=333444&checksum=1fcbb0c4fc1f039f73aa6d697d2db9ba7f803f17"
    )
    with pytest.raises(ValueError, match="one of sha1, sha256"):
        bbb.checksum(call="create", query=query, secret=BBB_SECRET, algorithm="md5")


class FakeBBB:
    """Answers /bigbluebutton/api/<call> like BigBlueButton: FAILED checksumError unless the
    checksum is SHA(call + query + secret) over the query exactly as sent."""

    def __init__(self, secret: str, algorithm: str = "sha1") -> None:
        self.secret, self.algorithm = secret, algorithm
        self.calls: list[tuple[str, list[tuple[str, str]]]] = []
        self.meetings: dict[str, dict[str, str]] = {}

    def answer(self, path: str, raw_query: str) -> str:
        call = path.rsplit("/", 1)[-1]
        query, _, given = raw_query.rpartition("&checksum=")
        if not raw_query.startswith("checksum=") and not given:
            return self.failed("checksumError", "You did not pass the checksum security check")
        if raw_query.startswith("checksum="):
            query, given = "", raw_query[len("checksum=") :]
        expected = hashlib.new(self.algorithm, f"{call}{query}{self.secret}".encode()).hexdigest()
        if given != expected:
            return self.failed("checksumError", "You did not pass the checksum security check")
        params = parse_qsl(query, keep_blank_values=True)
        self.calls.append((call, params))
        values = dict(params)
        if call == "create":
            self.meetings.setdefault(values["meetingID"], values)
            return "<response><returncode>SUCCESS</returncode><meetingID>{}</meetingID></response>".format(
                values["meetingID"]
            )
        if call == "getMeetings":
            items = "".join(
                f"<meeting><meetingName>{m['name']}</meetingName><meetingID>{mid}</meetingID>"
                f"<running>true</running><recording>{m['record']}</recording>"
                "<participantCount>2</participantCount></meeting>"
                for mid, m in self.meetings.items()
            )
            return f"<response><returncode>SUCCESS</returncode><meetings>{items}</meetings></response>"
        if call == "getRecordings":
            return (
                "<response><returncode>SUCCESS</returncode><recordings><recording>"
                f"<recordID>rec-1</recordID><meetingID>{values['meetingID']}</meetingID>"
                "<state>published</state><published>true</published><playback><format><type>presentation</type>"
                "<url>https://bbb.example.org/playback/presentation/2.3/rec-1</url></format></playback>"
                "</recording></recordings></response>"
            )
        if call == "end":
            if self.meetings.pop(values["meetingID"], None) is None:
                return self.failed("notFound", "We could not find a meeting with that meeting ID")
            return "<response><returncode>SUCCESS</returncode><messageKey>sentEndMeetingRequest</messageKey></response>"
        if call == "deleteRecordings":
            return "<response><returncode>SUCCESS</returncode><deleted>true</deleted></response>"
        return self.failed("unsupportedRequest", "This request is not supported.")

    @staticmethod
    def failed(key: str, message: str) -> str:
        return (
            f"<response><returncode>FAILED</returncode><messageKey>{key}</messageKey>"
            f"<message>{message}</message></response>"
        )


@pytest.fixture
def fake_bbb() -> Iterator[tuple[FakeBBB, str]]:
    fake = FakeBBB(BBB_SECRET)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            body = fake.answer(parts.path, parts.query).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_port}/bigbluebutton/"
    finally:
        server.shutdown()
        server.server_close()


def _session(tenant: Any, *, minutes_from_now: int = -1) -> dict[str, Any]:
    tutor = f.UserFactory(tenant=tenant, first_name="Tess", last_name="Tutor")
    student = f.UserFactory(tenant=tenant, first_name="Sam", last_name="Student")
    guardian = f.UserFactory(tenant=tenant, first_name="Gail", last_name="Guardian")
    GuardianLink.objects.create(tenant=tenant, guardian=guardian, student=student)
    start = timezone.now().replace(microsecond=0) + dt.timedelta(minutes=minutes_from_now)
    session = SessionFactory(tutor=tutor, start=start, end=start + dt.timedelta(hours=1), subject="Algebra")
    SessionParticipantFactory(session=session, student=student)
    return {"tutor": tutor, "student": student, "guardian": guardian, "session": session}


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def bbb_tenant(db: Any, fake_bbb: tuple[FakeBBB, str]) -> dict[str, Any]:
    tenant = f.TenantFactory(slug="north")
    VideoPolicy.objects.create(
        tenant=tenant, provider="bbb", server_url=fake_bbb[1], secret=BBB_SECRET, recording_allowed=True
    )
    return {"tenant": tenant, "fake": fake_bbb[0], **_session(tenant)}


def test_bbb_join_without_consent_creates_an_unrecorded_meeting(bbb_tenant: dict[str, Any]) -> None:
    data, fake = bbb_tenant, bbb_tenant["fake"]
    tutor_page = _client(data["tutor"]).get(f"/video/sessions/{data['session'].pk}/")
    assert tutor_page.status_code == 200
    body = tutor_page.content.decode()
    assert "Join the session on BigBlueButton" in body
    assert 'id="recording-banner" class="problem" role="status" hidden' in body

    # The tutor asked for a recording, but no guardian consented: the meeting does not record.
    services.recording_request(actor=data["tutor"], session_id=data["session"].pk)
    answer = _client(data["student"]).post(f"/video/sessions/{data['session'].pk}/join/")
    assert answer.status_code == 302
    room = Room.objects.get(session_id=data["session"].pk)
    assert (room.provider, room.recorded) == ("bbb", False)
    assert fake.calls[0] == (
        "create",
        [
            ("name", "Algebra"),
            ("meetingID", room.pk.hex),
            ("record", "false"),
            ("autoStartRecording", "false"),
            ("allowStartStopRecording", "false"),
            ("meta_hub-room", str(room.pk)),
        ],
    )
    # The join URL is BBB's, signed over exactly its own query.
    join = urlsplit(answer["Location"])
    assert join.path == "/bigbluebutton/api/join"
    query, _, checksum = join.query.rpartition("&checksum=")
    assert checksum == hashlib.sha1(f"join{query}{BBB_SECRET}".encode()).hexdigest()  # noqa: S324 (BBB's checksum)
    assert parse_qsl(query) == [
        ("fullName", "Sam Student"),
        ("meetingID", room.pk.hex),
        ("role", "VIEWER"),
        ("userID", data["student"].pk.hex),
        ("redirect", "true"),
    ]
    assert Presence.objects.get().person == data["student"]  # the join counts for attendance

    provider = services.provider_for_room(room)
    assert [(m.meeting_id, m.recording, m.participants) for m in provider.meetings()] == [
        (room.pk.hex, False, 2)
    ]
    assert [
        (r.record_id, r.published) for r in provider.recordings(room=services._provider_room(room, ""))
    ] == [("rec-1", True)]
    # Consent given after the room started does not turn recording on.
    services.consent_set(
        actor=data["guardian"], session_id=data["session"].pk, student_id=data["student"].pk, given=True
    )
    _client(data["tutor"]).post(f"/video/sessions/{data['session'].pk}/join/")
    assert Room.objects.get(pk=room.pk).recorded is False
    assert [c for c, _ in fake.calls] == ["create", "getMeetings", "getRecordings", "create"]


def test_bbb_records_with_guardian_consent_and_shows_it(bbb_tenant: dict[str, Any], settings: Any) -> None:
    data, fake = bbb_tenant, bbb_tenant["fake"]
    settings.PUBLIC_BASE_URL = "https://hub.example.org"
    url = f"/video/sessions/{data['session'].pk}/recording/"
    assert _client(data["tutor"]).post(url, {"request": "on"}).status_code == 302
    page = _client(data["tutor"]).get(url).content.decode()
    assert "No consent to record yet (a guardian&#x27;s is needed) for: Sam Student." in page
    # The student (a minor) cannot consent for themself; an unrelated adult neither.
    assert (
        _client(data["student"])
        .post(url, {"student": str(data["student"].pk), "consent": "give"})
        .status_code
        == 403
    )
    other = f.UserFactory(tenant=data["tenant"])
    assert _client(other).get(url).status_code == 403
    assert RecordingConsent.objects.count() == 0
    assert (
        _client(data["guardian"])
        .post(url, {"student": str(data["student"].pk), "consent": "give"})
        .status_code
        == 302
    )
    consent = RecordingConsent.objects.get()
    assert (consent.given_by, consent.given_as, consent.withdrawn_at) == (data["guardian"], "guardian", None)
    assert AuditLog.objects.filter(action="video.recording.consent", actor=data["guardian"]).count() == 1

    answer = _client(data["tutor"]).post(f"/video/sessions/{data['session'].pk}/join/")
    assert answer.status_code == 302
    room = Room.objects.get(session_id=data["session"].pk)
    assert room.recorded is True
    create = dict(fake.calls[0][1])
    assert (create["record"], create["autoStartRecording"], create["allowStartStopRecording"]) == (
        "true",
        "true",
        "false",
    )
    assert create["meta_bbb-recording-ready-url"] == (
        f"https://hub.example.org/video/hooks/bbb/{data['tenant'].pk}/recording-ready/"
    )
    assert dict(parse_qsl(urlsplit(answer["Location"]).query))["role"] == "MODERATOR"
    # Everyone in the room sees the banner, on the page and in what the page polls.
    for who in ("tutor", "student"):
        page = _client(data[who]).get(f"/video/sessions/{data['session'].pk}/").content.decode()
        assert '<p id="recording-banner" class="problem" role="status">' in page
        status = _client(data[who]).get(f"/video/sessions/{data['session'].pk}/status/").json()
        assert status == {"open": True, "reason": "", "recorded": True}
    # Once started, the choice is fixed.
    assert _client(data["tutor"]).post(url, {"request": "off"}).status_code == 400


def _ready(tenant: Any, meeting_id: str, secret: str = BBB_SECRET) -> Any:
    token = jwt.encode({"meeting_id": meeting_id, "record_id": "rec-1"}, secret, algorithm="HS256")
    return Client().post(f"/video/hooks/bbb/{tenant.pk}/recording-ready/", {"signed_parameters": token})


def test_bbb_recording_ready_callback_is_verified(bbb_tenant: dict[str, Any]) -> None:
    data, fake = bbb_tenant, bbb_tenant["fake"]
    services.consent_set(
        actor=data["guardian"], session_id=data["session"].pk, student_id=data["student"].pk, given=True
    )
    services.recording_request(actor=data["tutor"], session_id=data["session"].pk)
    access = services.room_access(user=data["tutor"], session_id=data["session"].pk)
    services.provider_join(access=access)
    room = Room.objects.get()

    forged = _ready(data["tenant"], room.pk.hex, secret="not-the-shared-secret-0123456789abcdef")
    assert forged.status_code == 401
    assert forged.json()["reason"] == (
        "The recording-ready callback's signature is not valid (Signature verification failed)."
    )
    garbage = Client().post(
        f"/video/hooks/bbb/{data['tenant'].pk}/recording-ready/", {"signed_parameters": "x"}
    )
    assert garbage.status_code == 401
    assert _ready(f.TenantFactory(slug="south"), room.pk.hex).status_code == 404  # no BBB there
    assert (Recording.objects.count(), ProviderEvent.objects.count()) == (0, 0)

    good = _ready(data["tenant"], room.pk.hex)
    assert (good.status_code, good.json()) == (200, {"outcome": "recorded"})
    assert _ready(data["tenant"], room.pk.hex).json() == {"outcome": "duplicate"}  # a replay
    assert list(Recording.objects.values_list("external_id", "state")) == [("rec-1", "ready")]
    assert "deleteRecordings" not in [c for c, _ in fake.calls]


def test_recording_whose_consent_was_withdrawn_is_deleted_when_ready(bbb_tenant: dict[str, Any]) -> None:
    data, fake = bbb_tenant, bbb_tenant["fake"]
    services.consent_set(
        actor=data["guardian"], session_id=data["session"].pk, student_id=data["student"].pk, given=True
    )
    services.recording_request(actor=data["tutor"], session_id=data["session"].pk)
    services.provider_join(access=services.room_access(user=data["tutor"], session_id=data["session"].pk))
    services.consent_set(
        actor=data["guardian"], session_id=data["session"].pk, student_id=data["student"].pk, given=False
    )
    room = Room.objects.get()
    assert _ready(data["tenant"], room.pk.hex).json() == {"outcome": "deleted"}
    assert fake.calls[-1] == ("deleteRecordings", [("recordID", "rec-1")])
    assert Recording.objects.get().state == "deleted"
    assert AuditLog.objects.filter(action="video.recording.consent_withdrawn").count() == 1


def test_recording_is_refused_where_the_provider_does_not_record(db: Any) -> None:
    tenant = f.TenantFactory(slug="north")
    VideoPolicy.objects.create(tenant=tenant, recording_allowed=True)  # built-in rooms
    data = _session(tenant)
    page = _client(data["tutor"]).post(f"/video/sessions/{data['session'].pk}/recording/", {"request": "on"})
    assert page.status_code == 400
    assert "The district&#x27;s video provider (Built-in (WebRTC)) does not record." in page.content.decode()
    VideoPolicy.objects.filter(tenant=tenant).update(provider="bbb", recording_allowed=False)
    data = _session(tenant)
    page = _client(data["tutor"]).post(f"/video/sessions/{data['session'].pk}/recording/", {"request": "on"})
    assert "Your district does not allow recording sessions." in page.content.decode()
    assert Room.objects.filter(recording_requested_by__isnull=False).count() == 0


def test_jitsi_join_is_a_jwt_room(db: Any) -> None:
    tenant = f.TenantFactory(slug="north")
    VideoPolicy.objects.create(
        tenant=tenant,
        provider="jitsi",
        server_url="https://meet.example.org",
        app_id="hub",
        secret="jitsi-app-secret-0123456789abcdef0123",
    )
    data = _session(tenant)
    answer = _client(data["tutor"]).post(f"/video/sessions/{data['session'].pk}/join/")
    room = Room.objects.get()
    location = urlsplit(answer["Location"])
    assert (location.scheme, location.netloc, location.path) == (
        "https",
        "meet.example.org",
        f"/{room.pk.hex}",
    )
    token = dict(parse_qsl(location.query))["jwt"]
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT"}
    claims = jwt.decode(
        token, "jitsi-app-secret-0123456789abcdef0123", algorithms=["HS256"], audience="jitsi", issuer="hub"
    )
    assert claims["sub"] == "meet.example.org"
    assert claims["room"] == room.pk.hex
    assert claims["context"]["user"] == {
        "id": data["tutor"].pk.hex,
        "name": "Tess Tutor",
        "email": "",
        "moderator": "true",
    }
    assert claims["context"]["features"] == {"recording": "false", "livestreaming": "false"}
    assert claims["exp"] - claims["nbf"] == 3 * 3600 + 10
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, "another-app-secret-0123456789abcdef012", algorithms=["HS256"], audience="jitsi")
    assert jitsi.join_url(base_url="https://meet.example.org/", room="a b", token="t") == (
        "https://meet.example.org/a%20b?jwt=t"
    )


@pytest.fixture
def livekit_tenant(db: Any) -> dict[str, Any]:
    tenant = f.TenantFactory(slug="north")
    VideoPolicy.objects.create(
        tenant=tenant,
        provider="livekit",
        server_url="wss://lk.example.org",
        client_url="https://meet.example.org/custom",
        app_id=LK_KEY,
        secret=LK_SECRET,
    )
    return {"tenant": tenant, **_session(tenant)}


def _signed(body: str, secret: str = LK_SECRET) -> str:
    digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
    return AccessToken(LK_KEY, secret).with_sha256(digest).to_jwt()


def _hook(tenant: Any, event: dict[str, Any], *, auth: str | None = None) -> Any:
    body = json.dumps(event)
    return Client().post(
        f"/video/hooks/livekit/{tenant.pk}/",
        data=body,
        content_type="application/webhook+json",
        headers={"Authorization": _signed(body) if auth is None else auth},
    )


def test_livekit_token_and_webhooks_record_attendance(livekit_tenant: dict[str, Any]) -> None:
    data = livekit_tenant
    answer = _client(data["student"]).post(f"/video/sessions/{data['session'].pk}/join/")
    room = Room.objects.get()
    location = urlsplit(answer["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == "https://meet.example.org/custom"
    query = dict(parse_qsl(location.query))
    assert query["liveKitUrl"] == "wss://lk.example.org"
    claims = TokenVerifier(LK_KEY, LK_SECRET).verify(query["token"])
    assert claims.identity == data["student"].pk.hex
    assert claims.name == "Sam Student"
    assert claims.video is not None
    assert (claims.video.room, claims.video.room_join, claims.video.room_admin, claims.video.room_record) == (
        room.pk.hex,
        True,
        False,
        False,
    )
    assert Presence.objects.count() == 0  # LiveKit's joins come from its webhooks

    start = int(data["session"].start.timestamp())
    joined = {
        "event": "participant_joined",
        "id": "EV_join1",
        "createdAt": str(start + 60),
        "room": {"sid": "RM_1", "name": room.pk.hex},
        "participant": {"sid": "PA_sam1", "identity": data["student"].pk.hex, "name": "Sam Student"},
    }
    # A bad signature, a body that is not the one signed, no signature: 401, nothing changes.
    assert _hook(data["tenant"], joined, auth=_signed(json.dumps(joined), secret="x" * 36)).status_code == 401
    assert (
        _hook(data["tenant"], joined, auth=_signed(json.dumps({**joined, "id": "EV_other"}))).status_code
        == 401
    )
    missing = _hook(data["tenant"], joined, auth="")
    assert (missing.status_code, missing.json()["reason"]) == (
        401,
        "The webhook has no Authorization header.",
    )
    assert (Presence.objects.count(), ProviderEvent.objects.count()) == (0, 0)

    assert _hook(data["tenant"], joined).json() == {"outcome": "participant_joined"}
    assert _hook(data["tenant"], joined).json() == {"outcome": "duplicate"}  # LiveKit retries
    left = {**joined, "event": "participant_left", "id": "EV_left1", "createdAt": str(start + 20 * 60)}
    assert _hook(data["tenant"], left).json() == {"outcome": "participant_left"}
    presence = Presence.objects.get()
    assert (presence.person, presence.peer_id) == (data["student"], "PA_sam1")
    assert presence.joined_at == data["session"].start + dt.timedelta(minutes=1)
    assert presence.left_at == data["session"].start + dt.timedelta(minutes=20)

    rows = services.attendance_finalize(
        actor=data["tutor"], room_id=room.pk, now=data["session"].end + dt.timedelta(minutes=1)
    )
    assert [(r.person_id, r.outcome) for r in rows] == [(data["student"].pk, "left_early")]
    assert Attendance.objects.get().outcome == "left_early"


def test_bbb_meeting_ends_when_the_tutor_ends_it_or_the_session_is_cancelled(
    bbb_tenant: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    data, fake = bbb_tenant, bbb_tenant["fake"]
    services.provider_join(access=services.room_access(user=data["student"], session_id=data["session"].pk))
    room = Room.objects.get()
    assert _client(data["student"]).post(f"/video/sessions/{data['session'].pk}/end/").status_code == 403
    ended = _client(data["tutor"]).post(f"/video/sessions/{data['session'].pk}/end/")
    assert (ended.status_code, ended["Location"]) == (
        302,
        f"/video/sessions/{data['session'].pk}/attendance/",
    )
    assert fake.calls[-1] == ("end", [("meetingID", room.pk.hex)])
    # Joined through the hub at the start; the tutor ended it 59 minutes early.
    assert Attendance.objects.get().outcome == "left_early"
    assert _client(data["student"]).post(f"/video/sessions/{data['session'].pk}/join/").status_code == 410

    later = _session(data["tenant"], minutes_from_now=10)
    services.provider_join(access=services.room_access(user=later["tutor"], session_id=later["session"].pk))
    later_room = Room.objects.get(session_id=later["session"].pk)
    with django_capture_on_commit_callbacks(execute=True):
        scheduling.booking_cancel(actor=later["tutor"], session_id=later["session"].pk)
    assert fake.calls[-1] == ("end", [("meetingID", later_room.pk.hex)])
    refused = _client(later["student"]).post(f"/video/sessions/{later['session'].pk}/join/")
    assert refused.status_code == 410
    assert "This session was cancelled; its room is closed." in refused.content.decode()
