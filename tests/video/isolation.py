"""Isolation makers for the video pages and admin models (helper "video")."""

from __future__ import annotations

from tests import factories as f
from tests.isolation import EXEMPT_URL_NAMES, url_param
from tests.scheduling.factories import SessionFactory, SessionParticipantFactory
from tutoring_core.accounts.models import Tenant


@url_param("video_session_id")
def _video_session_id(tenant: Tenant) -> object:
    """A booked session of ``tenant`` with one student (its room's URL takes the session id)."""
    session = SessionFactory(tutor=f.UserFactory(tenant=tenant))
    SessionParticipantFactory(session=session)
    return session.pk


# --- admin models (tutoring_core/video/admin.py, helper "vbench") ---------------------------------

from django.utils import timezone  # noqa: E402

from tests.isolation import admin_model  # noqa: E402
from tutoring_core.video.models import (  # noqa: E402
    Attendance,
    Presence,
    ProviderEvent,
    Recording,
    RecordingConsent,
    Room,
    VideoPolicy,
)


def _room(tenant: Tenant) -> Room:
    session = SessionFactory(tutor=f.UserFactory(tenant=tenant))
    return Room.objects.create(tenant=tenant, session_id=session.pk)


@admin_model("video.VideoPolicy")
def _policy(tenant: Tenant) -> object:
    return VideoPolicy.objects.create(tenant=tenant, guardians_may_join=True)


@admin_model("video.Room")
def _admin_room(tenant: Tenant) -> object:
    return _room(tenant)


@admin_model("video.Presence")
def _presence(tenant: Tenant) -> object:
    room = _room(tenant)
    return Presence.objects.create(
        room=room, person=f.UserFactory(tenant=tenant), peer_id=room.pk.hex, joined_at=timezone.now()
    )


@admin_model("video.Attendance")
def _attendance(tenant: Tenant) -> object:
    return Attendance.objects.create(
        room=_room(tenant), person=f.UserFactory(tenant=tenant), outcome=Attendance.Outcome.ATTENDED
    )


@admin_model("video.RecordingConsent")
def _consent(tenant: Tenant) -> object:
    participant = SessionParticipantFactory(session=SessionFactory(tutor=f.UserFactory(tenant=tenant)))
    return RecordingConsent.objects.create(
        tenant=tenant,
        session_id=participant.session_id,
        student=participant.student,
        given_by=participant.student,
        given_as="student",
        given_at=timezone.now(),
    )


@admin_model("video.Recording")
def _recording(tenant: Tenant) -> object:
    return Recording.objects.create(room=_room(tenant), external_id="rec-1", state=Recording.State.READY)


@admin_model("video.ProviderEvent")
def _provider_event(tenant: Tenant) -> object:
    return ProviderEvent.objects.create(
        tenant=tenant, provider="livekit", event_id="EV_1", kind="room_started"
    )


EXEMPT_URL_NAMES["bbb_recording_ready"] = (
    "BigBlueButton's machine-to-machine recording-ready callback: authenticated by its JWT signed "
    "with the tenant's shared secret, tested in tests/video/test_providers.py"
)
EXEMPT_URL_NAMES["livekit_webhook"] = (
    "LiveKit's machine-to-machine webhook: authenticated by the Authorization JWT over the body's "
    "SHA-256, tested in tests/video/test_providers.py"
)
EXEMPT_URL_NAMES["bbb_events"] = (
    "bbb-webhooks' machine-to-machine join/leave callback: authenticated by its checksum over the "
    "callback URL, the body and the tenant's shared secret, tested in tests/video/test_bbb_events.py"
)
