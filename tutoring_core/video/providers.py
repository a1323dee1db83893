"""The video providers behind one interface, chosen per tenant (VideoPolicy.provider).

The built-in WebRTC rooms need nothing from here; BigBlueButton, Jitsi Meet and LiveKit hand
each participant a join URL made for them. Calls to a provider go through the one outbound
HTTP client (tutoring_core.http). Rules without Django (checksums, tokens, webhook checks)
live in ``protocol/``.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlencode

from django.conf import settings
from django.urls import reverse

from tutoring_core import http
from tutoring_core.video.data import RoomAccess
from tutoring_core.video.errors import InvalidInput, ProviderUnavailable
from tutoring_core.video.models import VideoPolicy
from tutoring_core.video.protocol import bbb, jitsi, livekit

JOIN_TTL_SECONDS = 3 * 3600  # a provider's token lasts the session: the hub's own check came first


@dataclass(frozen=True)
class ProviderRoom:
    """What a provider needs of a room: its stable name and whether it may record."""

    room_id: uuid.UUID
    tenant_id: uuid.UUID
    title: str
    record: bool

    @property
    def name(self) -> str:
        return self.room_id.hex


class Provider(Protocol):
    key: str
    records: bool  # can this provider record at all (issue 15 point 5)

    def join_url(self, *, room: ProviderRoom, access: RoomAccess) -> str: ...

    def end(self, *, room: ProviderRoom) -> None: ...


class BuiltIn:
    key: str = VideoPolicy.Provider.BUILTIN.value
    records = False

    def join_url(self, *, room: ProviderRoom, access: RoomAccess) -> str:
        raise InvalidInput("Built-in rooms are joined on the room page.")

    def end(self, *, room: ProviderRoom) -> None:
        return None  # the signaling consumers close themselves (services.room_close)


class BigBlueButton:
    key: str = VideoPolicy.Provider.BBB.value
    records = True

    def __init__(self, policy: VideoPolicy) -> None:
        self.base_url = policy.server_url
        self.secret = policy.secret or ""
        self.algorithm = policy.checksum_algorithm

    def url(self, call: str, params: dict[str, object] | list[tuple[str, object]]) -> str:
        return bbb.call_url(
            base_url=self.base_url, call=call, params=params, secret=self.secret, algorithm=self.algorithm
        )

    def _call(
        self, call: str, params: dict[str, object] | list[tuple[str, object]]
    ) -> bbb.ElementTree.Element:
        try:
            response = http.get(self.url(call, params))
        except http.OutboundHTTPError as exc:
            raise ProviderUnavailable(f"BigBlueButton could not be reached ({exc}).") from None
        try:
            return bbb.parse(response.content)
        except bbb.BBBError as exc:
            raise ProviderUnavailable(f"BigBlueButton refused {call}: {exc}") from None

    def create_params(self, room: ProviderRoom) -> list[tuple[str, object]]:
        params: list[tuple[str, object]] = [
            ("name", room.title),
            ("meetingID", room.name),
            # Record only with consent: then the whole session is recorded from the start and
            # nobody can pause it, so the banner everyone sees is always true.
            ("record", room.record),
            ("autoStartRecording", room.record),
            ("allowStartStopRecording", False),
            ("meta_hub-room", str(room.room_id)),
        ]
        if room.record:
            callback = reverse("video:bbb_recording_ready", kwargs={"tenant_id": room.tenant_id})
            params.append(("meta_bbb-recording-ready-url", settings.PUBLIC_BASE_URL + callback))
        return params

    def create(self, room: ProviderRoom) -> None:
        """Create the meeting; BigBlueButton answers a repeat with the existing meeting."""
        self._call("create", self.create_params(room))

    def join_url(self, *, room: ProviderRoom, access: RoomAccess) -> str:
        self.create(room)
        return self.url(
            "join",
            [
                ("fullName", access.person_name),
                ("meetingID", room.name),
                ("role", "MODERATOR" if access.role == "tutor" else "VIEWER"),
                ("userID", access.person_id.hex),
                ("redirect", True),
            ],
        )

    def end(self, *, room: ProviderRoom) -> None:
        try:
            self._call("end", [("meetingID", room.name)])
        except ProviderUnavailable as exc:
            if "notFound" not in exc.reason and "not found" not in exc.reason.lower():
                raise  # a meeting nobody started is already ended

    def meetings(self) -> list[bbb.Meeting]:
        return bbb.meetings(self._call("getMeetings", []))

    def recordings(self, *, room: ProviderRoom) -> list[bbb.RecordingInfo]:
        return bbb.recordings(self._call("getRecordings", [("meetingID", room.name)]))

    def delete_recordings(self, *, record_ids: list[str]) -> None:
        self._call("deleteRecordings", [("recordID", ",".join(record_ids))])


class Jitsi:
    key: str = VideoPolicy.Provider.JITSI.value
    records = False  # recording is switched off in every token (protocol/jitsi.py says why)

    def __init__(self, policy: VideoPolicy) -> None:
        self.base_url = policy.server_url
        self.app_id = policy.app_id
        self.secret = policy.secret or ""

    def join_url(self, *, room: ProviderRoom, access: RoomAccess) -> str:
        token = jitsi.room_token(
            app_id=self.app_id,
            secret=self.secret,
            domain=_host(self.base_url),
            room=room.name,
            user_id=access.person_id.hex,
            name=access.person_name,
            email="",
            moderator=access.role == "tutor",
            now=int(time.time()),
            ttl_seconds=JOIN_TTL_SECONDS,
        )
        return jitsi.join_url(base_url=self.base_url, room=room.name, token=token)

    def end(self, *, room: ProviderRoom) -> None:
        return None  # Jitsi has no server API to end a room; the tokens expire


class LiveKit:
    key: str = VideoPolicy.Provider.LIVEKIT.value
    # Through LiveKit Egress: a room-composite recording the hub starts (consent first) when the
    # meeting starts, and stops when the tutor ends it or a consent is withdrawn.
    records = True

    def __init__(self, policy: VideoPolicy) -> None:
        self.server_url = policy.server_url
        self.client_url = policy.client_url
        self.api_key = policy.app_id
        self.secret = policy.secret or ""

    def token(self, *, room: ProviderRoom, access: RoomAccess) -> str:
        return livekit.access_token(
            api_key=self.api_key,
            api_secret=self.secret,
            room=room.name,
            identity=access.person_id.hex,
            name=access.person_name,
            admin=access.role == "tutor",
            ttl_seconds=JOIN_TTL_SECONDS,
        )

    def join_url(self, *, room: ProviderRoom, access: RoomAccess) -> str:
        query = urlencode({"liveKitUrl": self.server_url, "token": self.token(room=room, access=access)})
        return f"{self.client_url}?{query}"

    def end(self, *, room: ProviderRoom) -> None:
        return None  # LiveKit closes an empty room itself; its room_finished webhook follows

    def _egress(self, call: livekit.TwirpCall, what: str) -> livekit.Egress:
        try:
            response = http.post(call.url, headers=call.headers, data=call.body, raise_for_status=False)
        except http.OutboundHTTPError as exc:
            raise ProviderUnavailable(f"LiveKit could not be reached ({exc}).") from None
        try:
            return livekit.egress_reply(status_code=response.status_code, body=response.content)
        except livekit.LiveKitError as exc:
            raise ProviderUnavailable(f"LiveKit refused to {what} the recording: {exc}") from None

    def egress_start(self, *, room: ProviderRoom, filepath: str) -> livekit.Egress:
        call = livekit.egress_start_call(
            server_url=self.server_url,
            api_key=self.api_key,
            api_secret=self.secret,
            room=room.name,
            filepath=filepath,
        )
        return self._egress(call, "start")

    def egress_stop(self, *, egress_id: str) -> livekit.Egress:
        call = livekit.egress_stop_call(
            server_url=self.server_url, api_key=self.api_key, api_secret=self.secret, egress_id=egress_id
        )
        return self._egress(call, "stop")


def _host(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).hostname or ""


def policy_for(tenant_id: uuid.UUID) -> VideoPolicy:
    return VideoPolicy.objects.filter(tenant_id=tenant_id).first() or VideoPolicy(tenant_id=tenant_id)


def provider_named(key: str, policy: VideoPolicy) -> Provider:
    if key == VideoPolicy.Provider.BBB:
        return BigBlueButton(policy)
    if key == VideoPolicy.Provider.JITSI:
        return Jitsi(policy)
    if key == VideoPolicy.Provider.LIVEKIT:
        return LiveKit(policy)
    return BuiltIn()
