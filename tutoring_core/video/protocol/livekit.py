"""LiveKit access tokens and webhooks, through LiveKit's own Python SDK (``livekit-api``):
a token is an HS256 JWT from the API key/secret with a ``video`` grant for one room; a webhook
carries ``Authorization: <JWT>`` whose ``sha256`` claim is the base64 SHA-256 of the body."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from google.protobuf.json_format import MessageToDict
from livekit.api import AccessToken, TokenVerifier, VideoGrants, WebhookReceiver


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
    )
