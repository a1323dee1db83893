"""LiveKit access tokens and webhooks, through LiveKit's own Python SDK (``livekit-api``):
a token is an HS256 JWT from the API key/secret with a ``video`` grant for one room; a webhook
carries ``Authorization: <JWT>`` whose ``sha256`` claim is the base64 SHA-256 of the body."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import DecodeError
from livekit.api import AccessToken, TokenVerifier, VideoGrants, WebhookReceiver
from livekit.protocol import egress as egress_proto


class LiveKitError(Exception):
    pass


def access_token(
    *,
    api_key: str,
    api_secret: str,
    room: str,
    identity: str,
    name: str,
    admin: bool,
    ttl_seconds: int,
) -> str:
    if not api_key or not api_secret:
        raise ValueError("LiveKit needs an API key and secret.")
    grants = VideoGrants(
        room_join=True,
        room=room,
        room_admin=admin,
        can_publish=True,
        can_subscribe=True,
        can_publish_data=True,
        room_record=False,  # recordings start from the hub (consent first), never from a client
    )
    return (
        AccessToken(api_key, api_secret)
        .with_identity(identity)
        .with_name(name)
        .with_grants(grants)
        .with_ttl(dt.timedelta(seconds=ttl_seconds))
        .to_jwt()
    )


@dataclass(frozen=True)
class WebhookEvent:
    id: str
    event: str  # participant_joined, participant_left, room_finished, egress_started, egress_ended, ...
    room: str
    identity: str
    participant_sid: str
    created_at: int  # unix seconds
    egress_id: str
    egress_status: str
    egress_error: str = ""
    file_name: str = ""  # the recording's key in the storage the egress wrote to
    file_location: str = ""  # where the egress says it put it (a URL)


def webhook_event(*, body: str, authorization: str, api_key: str, api_secret: str) -> WebhookEvent:
    """The verified event, or LiveKitError (bad or missing signature, a body that does not match)."""
    if not authorization:
        raise LiveKitError("The webhook has no Authorization header.")
    try:
        event = WebhookReceiver(TokenVerifier(api_key, api_secret)).receive(body, authorization)
    except Exception as exc:  # the SDK raises bare Exception and PyJWT's errors
        raise LiveKitError(f"The webhook's signature is not valid ({exc}).") from None
    data = MessageToDict(event, preserving_proto_field_name=True)
    room = data.get("room") or {}
    participant = data.get("participant") or {}
    egress = data.get("egress_info") or {}
    return WebhookEvent(
        id=str(data.get("id") or ""),
        event=str(data.get("event") or ""),
        room=str(room.get("name") or egress.get("room_name") or ""),
        identity=str(participant.get("identity") or ""),
        participant_sid=str(participant.get("sid") or ""),
        created_at=int(data.get("created_at") or 0),
        egress_id=str(egress.get("egress_id") or ""),
        egress_status=str(egress.get("status") or ""),
        egress_error=str(egress.get("error") or ""),
        file_name=str(_first_file(egress).get("filename") or ""),
        file_location=str(_first_file(egress).get("location") or ""),
    )


def _first_file(egress: dict[str, object]) -> dict[str, object]:
    files = egress.get("file_results") or ([egress["file"]] if egress.get("file") else [])
    return dict(files[0]) if isinstance(files, list) and files else {}


# --- Egress (room-composite recordings) over LiveKit's Twirp API ------------------------------
# The request, its token and its reply are livekit-api's own (the messages of livekit.protocol,
# the grant its EgressService signs, protobuf on the wire as its TwirpClient sends); the call
# itself goes through the hub's one HTTP client, which the caller makes.

EGRESS_START_PATH = "/twirp/livekit.Egress/StartRoomCompositeEgress"
EGRESS_STOP_PATH = "/twirp/livekit.Egress/StopEgress"
# Egress states that leave a file behind (EGRESS_LIMIT_REACHED stops at the limit, file kept).
EGRESS_DONE = ("EGRESS_COMPLETE", "EGRESS_LIMIT_REACHED")
EGRESS_FAILED = ("EGRESS_FAILED", "EGRESS_ABORTED")


@dataclass(frozen=True)
class TwirpCall:
    url: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Egress:
    egress_id: str
    status: str
    error: str


def api_base(server_url: str) -> str:
    """The HTTP(S) base of the server the clients reach over ws(s)://, as the SDK derives it."""
    base = server_url.rstrip("/")
    if base.startswith("wss://"):
        return "https://" + base[len("wss://") :]
    if base.startswith("ws://"):
        return "http://" + base[len("ws://") :]
    return base


def _twirp(*, server_url: str, path: str, api_key: str, api_secret: str, message: Any) -> TwirpCall:
    if not api_key or not api_secret:
        raise ValueError("LiveKit needs an API key and secret.")
    token = AccessToken(api_key, api_secret).with_grants(VideoGrants(room_record=True)).to_jwt()
    return TwirpCall(
        url=api_base(server_url) + path,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/protobuf"},
        body=message.SerializeToString(),
    )


def egress_start_call(
    *, server_url: str, api_key: str, api_secret: str, room: str, filepath: str
) -> TwirpCall:
    """Start a room-composite recording of ``room`` into one MP4 at ``filepath`` (a key in the
    storage the egress service is configured with: the hub's own media bucket)."""
    request = egress_proto.RoomCompositeEgressRequest(
        room_name=room,
        layout="grid",
        file_outputs=[
            egress_proto.EncodedFileOutput(file_type=egress_proto.EncodedFileType.MP4, filepath=filepath)
        ],
    )
    return _twirp(
        server_url=server_url, path=EGRESS_START_PATH, api_key=api_key, api_secret=api_secret, message=request
    )


def egress_stop_call(*, server_url: str, api_key: str, api_secret: str, egress_id: str) -> TwirpCall:
    request = egress_proto.StopEgressRequest(egress_id=egress_id)
    return _twirp(
        server_url=server_url, path=EGRESS_STOP_PATH, api_key=api_key, api_secret=api_secret, message=request
    )


def egress_reply(*, status_code: int, body: bytes) -> Egress:
    """The EgressInfo LiveKit answered, or LiveKitError with Twirp's error message."""
    if status_code != 200:
        try:
            message = json.loads(body).get("msg") or body[:200].decode(errors="replace")
        except (ValueError, AttributeError):
            message = body[:200].decode(errors="replace")
        raise LiveKitError(f"LiveKit answered {status_code}: {message}")
    info = egress_proto.EgressInfo()
    try:
        info.ParseFromString(body)
    except DecodeError:
        raise LiveKitError("LiveKit's answer is not an EgressInfo.") from None
    if not info.egress_id:
        raise LiveKitError("LiveKit's answer has no egress id.")
    return Egress(
        egress_id=info.egress_id,
        status=egress_proto.EgressStatus.Name(info.status),
        error=info.error,
    )
