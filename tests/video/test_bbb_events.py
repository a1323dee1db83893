"""BigBlueButton's join and leave times through bbb-webhooks (issue 15 point 4): the callback is
signed as bbb-webhooks signs it (SHA over the callback URL, the form body and the shared secret,
appended as ?checksum=), and its user-joined/user-left/meeting-ended events reach progress by the
same path as LiveKit's webhooks and the built-in room's signaling."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client

from tests import factories as f
from tests.video.test_providers import BBB_SECRET, FakeBBB, _session
from tests.video.test_recording_egress import _serve
from tutoring_core.progress.models import SessionAttendance
from tutoring_core.scheduling.models import Session
from tutoring_core.video import services
from tutoring_core.video.models import Presence, ProviderEvent, Room, VideoPolicy

HUB = "https://hub.example.org"
M = dt.timedelta(minutes=1)


@pytest.fixture
def bbb(db: Any, settings: Any) -> Iterator[dict[str, Any]]:
    settings.PUBLIC_BASE_URL = HUB
    fake = FakeBBB(BBB_SECRET)
    for address in _serve(fake.answer):
        tenant = f.TenantFactory(slug="north")
        VideoPolicy.objects.create(
            tenant=tenant,
            provider="bbb",
            server_url=f"http://{address}/bigbluebutton/",
            secret=BBB_SECRET,
            bbb_webhooks=True,
        )
        yield {"tenant": tenant, "fake": fake, **_session(tenant)}


def _user_event(kind: str, room: Room, person: Any, internal: str, at: dt.datetime) -> dict[str, Any]:
    return {
        "data": {
            "type": "event",
            "id": kind,
            "attributes": {
                "meeting": {
                    "internal-meeting-id": "183f0bf3a0982a127bdb8161",
                    "external-meeting-id": room.pk.hex,
                },
                "user": {
                    "internal-user-id": internal,
                    "external-user-id": person.pk.hex,
                    "name": "Sam Student",
                    "role": "VIEWER",
                    "presenter": False,
                },
            },
            "event": {"ts": int(at.timestamp() * 1000)},
        }
    }


def _ended(room: Room, at: dt.datetime) -> dict[str, Any]:
    return {
        "data": {
            "type": "event",
            "id": "meeting-ended",
            "attributes": {
                "meeting": {"internal-meeting-id": "183f0bf3", "external-meeting-id": room.pk.hex}
            },
            "event": {"ts": int(at.timestamp() * 1000)},
        }
    }


def _post(tenant: Any, *events: dict[str, Any], secret: str = BBB_SECRET, url: str = "") -> Any:
    """POST as bbb-webhooks does: the form body, and the checksum over URL + body + secret."""
    path = f"/video/hooks/bbb/{tenant.pk}/events/"
    body = urlencode(
        [("domain", "bbb.example.org"), ("event", json.dumps(list(events))), ("timestamp", "1804089600000")]
    )
    checksum = hashlib.sha1(f"{url or HUB + path}{body}{secret}".encode()).hexdigest()  # noqa: S324 (BBB's)
    return Client().post(
        f"{path}?checksum={checksum}", data=body, content_type="application/x-www-form-urlencoded"
    )


def test_bbb_joins_and_leaves_reach_progress(bbb: dict[str, Any]) -> None:
    data = bbb
    tenant, session, student, tutor = data["tenant"], data["session"], data["student"], data["tutor"]
    answer = Client()
    answer.force_login(student)
    assert answer.post(f"/video/sessions/{session.pk}/join/").status_code == 302
    room = Room.objects.get()
    assert Presence.objects.count() == 0  # the join time comes from BigBlueButton's event

    start = session.start
    joined = _user_event("user-joined", room, student, "w_abc123", start + 3 * M)
    left = _user_event("user-left", room, student, "w_abc123", start + 40 * M)
    # A wrong secret, a checksum over another URL, no checksum: 401, nothing changes.
    assert _post(tenant, joined, secret="not-the-shared-secret").status_code == 401
    assert _post(tenant, joined, url=f"{HUB}/video/hooks/bbb/{tenant.pk}/other/").status_code == 401
    missing = Client().post(
        f"/video/hooks/bbb/{tenant.pk}/events/",
        data="event=[]",
        content_type="application/x-www-form-urlencoded",
    )
    assert (missing.status_code, missing.json()["reason"]) == (401, "The callback has no checksum.")
    assert (Presence.objects.count(), ProviderEvent.objects.count()) == (0, 0)

    assert _post(tenant, joined).json() == {"outcome": "user-joined"}
    assert _post(tenant, joined).json() == {"outcome": "duplicate"}  # bbb-webhooks retries
    assert _post(tenant, left).json() == {"outcome": "user-left"}
    presence = Presence.objects.get()
    assert (presence.person, presence.joined_at, presence.left_at) == (student, start + 3 * M, start + 40 * M)
    assert SessionAttendance.objects.count() == 0

    assert _post(tenant, _ended(room, start + 41 * M)).json() == {"outcome": "meeting-ended"}
    record = SessionAttendance.objects.get()
    assert (
        record.person_id,
        record.outcome,
        record.source,
        record.minutes_present,
        record.late_minutes,
        record.left_early_minutes,
    ) == (student.pk, "left_early", "provider_webhook", 37, 3, 20)
    session.refresh_from_db()
    assert session.status == Session.Status.COMPLETED
    assert session.participants.get().outcome == "attended"
    assert tutor.pk == session.tutor_id


def test_without_bbb_webhooks_the_hub_join_is_the_record(bbb: dict[str, Any]) -> None:
    data = bbb
    VideoPolicy.objects.filter(tenant=data["tenant"]).update(bbb_webhooks=False)
    access = services.room_access(user=data["student"], session_id=data["session"].pk)
    services.provider_join(access=access)
    room = Room.objects.get()
    assert Presence.objects.count() == 1
    services.attendance_finalize(actor=data["tutor"], room_id=room.pk, now=data["session"].end)
    record = SessionAttendance.objects.get()
    assert (record.outcome, record.source) == ("attended", "join_page")
    # Another tenant's BigBlueButton hook is not this one's.
    other = f.TenantFactory(slug="south")
    assert _post(other, _ended(room, data["session"].end)).status_code == 404
