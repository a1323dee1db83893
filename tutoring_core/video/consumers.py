"""The room's signaling socket (issue 15): offers, answers and ICE candidates relayed per
peer, presence, the waiting room, chat, and the tutor ending the room.

Client -> server: {"type": "signal", "to": peer, "data": {...}}, {"type": "chat", "text": ...},
{"type": "media", "muted": bool, "camera": bool, "screen": bool}, {"type": "admit", "person": id},
{"type": "end"}.
Server -> client: "welcome" (you, peers), "waiting", "knock" (to the tutor), "peer-joined",
"peer-left", "signal", "chat", "media", "refused" (code, reason; then the socket closes with it:
also when the session is cancelled while the room is live).
The newcomer makes the offers to the peers already in, so two sides never offer at once.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from tutoring_core.video import services
from tutoring_core.video.data import RoomAccess
from tutoring_core.video.errors import RoomClosed, SessionCancelled, VideoError

CHAT_LIMIT = 1000
SIGNAL_LIMIT = 64_000  # an SDP with many candidates stays well below


class RoomConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    access: RoomAccess | None = None
    peer_id = ""
    group = ""
    admitted = False
    present = False

    async def connect(self) -> None:
        # Accept first: a close before accept is an HTTP 403 and the page would see 1006 with
        # no reason; after accept the reason travels in a message and the close code.
        await self.accept()
        room_id = self.scope["url_route"]["kwargs"]["room_id"]
        query = parse_qs(self.scope.get("query_string", b"").decode())
        token = (query.get("token") or [""])[0]
        user = self.scope.get("user")
        scope_user_id = user.pk if user is not None and user.is_authenticated else None
        try:
            self.access = await database_sync_to_async(services.room_enter)(
                room_id=room_id, token=token, scope_user_id=scope_user_id
            )
        except VideoError as exc:
            await self._refuse(exc)
            return
        self.peer_id = uuid.uuid4().hex
        self.group = f"video.{self.access.room_id.hex}"
        await self.channel_layer.group_add(self.group, self.channel_name)
        if await database_sync_to_async(services.is_admitted)(access=self.access):
            await self._enter()
        else:
            await self.send_json({"type": "waiting"})
            await self._knock()

    async def _refuse(self, exc: VideoError) -> None:
        await self.send_json({"type": "refused", "code": exc.close_code, "reason": exc.reason})
        await self.close(code=exc.close_code)

    async def _knock(self) -> None:
        assert self.access is not None
        await self.channel_layer.group_send(
            self.group,
            {
                "type": "room.knock",
                "person": str(self.access.person_id),
                "name": self.access.person_name,
                "role": self.access.role,
            },
        )

    async def _enter(self) -> None:
        assert self.access is not None
        try:
            peers = await database_sync_to_async(services.presence_open)(
                access=self.access, peer_id=self.peer_id
            )
        except VideoError as exc:
            await self._refuse(exc)
            return
        self.admitted = self.present = True
        await self.send_json(
            {
                "type": "welcome",
                "you": self.peer_id,
                "role": self.access.role,
                "peers": [{"id": p.peer_id, "name": p.name, "role": p.role} for p in peers],
            }
        )
        await self.channel_layer.group_send(
            self.group,
            {
                "type": "room.peer_joined",
                "id": self.peer_id,
                "name": self.access.person_name,
                "role": self.access.role,
            },
        )
        if self.access.role == "tutor":
            await self.channel_layer.group_send(self.group, {"type": "room.who_waits"})

    async def disconnect(self, code: int) -> None:
        if self.present:
            self.present = False
            await database_sync_to_async(services.presence_close)(peer_id=self.peer_id)
            await self.channel_layer.group_send(self.group, {"type": "room.peer_left", "id": self.peer_id})
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if self.access is None or not isinstance(content, dict):
            return
        kind = content.get("type")
        if kind == "admit" and self.access.role == "tutor":
            try:
                person = await database_sync_to_async(services.admission_grant)(
                    access=self.access, person_id=content.get("person")
                )
            except VideoError as exc:
                await self.send_json({"type": "error", "reason": exc.reason})
                return
            await self.channel_layer.group_send(self.group, {"type": "room.admit", "person": str(person)})
            return
        if not self.admitted:
            return
        if kind == "signal":
            data = content.get("data")
            to = content.get("to")
            if not isinstance(to, str) or not isinstance(data, dict) or len(str(data)) > SIGNAL_LIMIT:
                return
            await self.channel_layer.group_send(
                self.group, {"type": "room.signal", "to": to, "from": self.peer_id, "data": data}
            )
        elif kind == "chat":
            text = content.get("text")
            if not isinstance(text, str) or not text.strip():
                return
            await self.channel_layer.group_send(
                self.group,
                {
                    "type": "room.chat",
                    "from": self.peer_id,
                    "name": self.access.person_name,
                    "text": text.strip()[:CHAT_LIMIT],
                },
            )
        elif kind == "media":
            state = {key: bool(content.get(key)) for key in ("muted", "camera", "screen")}
            await self.channel_layer.group_send(
                self.group, {"type": "room.media", "id": self.peer_id, **state}
            )
        elif kind == "end" and self.access.role == "tutor":
            from tutoring_core.accounts.models import User

            def finish() -> None:
                assert self.access is not None
                actor = User.objects.get(pk=self.access.person_id)
                services.attendance_finalize(actor=actor, room_id=self.access.room_id)

            try:
                await database_sync_to_async(finish)()
            except VideoError as exc:
                await self.send_json({"type": "error", "reason": exc.reason})
                return
            await self.channel_layer.group_send(self.group, {"type": "room.ended"})

    # --- group events -------------------------------------------------------------------------

    async def room_knock(self, event: dict[str, Any]) -> None:
        if self.admitted and self.access is not None and self.access.role == "tutor":
            await self.send_json({"type": "knock", "person": event["person"], "name": event["name"]})

    async def room_who_waits(self, event: dict[str, Any]) -> None:
        if self.access is not None and not self.admitted:
            await self._knock()

    async def room_admit(self, event: dict[str, Any]) -> None:
        if self.access is not None and not self.admitted and event["person"] == str(self.access.person_id):
            await self._enter()
        elif self.admitted and self.access is not None and self.access.role == "tutor":
            await self.send_json({"type": "admitted", "person": event["person"]})

    async def room_peer_joined(self, event: dict[str, Any]) -> None:
        if self.admitted and event["id"] != self.peer_id:
            await self.send_json(
                {"type": "peer-joined", "id": event["id"], "name": event["name"], "role": event["role"]}
            )

    async def room_peer_left(self, event: dict[str, Any]) -> None:
        if self.admitted and event["id"] != self.peer_id:
            await self.send_json({"type": "peer-left", "id": event["id"]})

    async def room_signal(self, event: dict[str, Any]) -> None:
        if self.admitted and event["to"] == self.peer_id:
            await self.send_json({"type": "signal", "from": event["from"], "data": event["data"]})

    async def room_chat(self, event: dict[str, Any]) -> None:
        if self.admitted:
            await self.send_json(
                {"type": "chat", "from": event["from"], "name": event["name"], "text": event["text"]}
            )

    async def room_media(self, event: dict[str, Any]) -> None:
        if self.admitted and event["id"] != self.peer_id:
            await self.send_json({"type": "media", **{k: v for k, v in event.items() if k != "type"}})

    async def room_closed(self, event: dict[str, Any]) -> None:
        """The session (or this person's place in it) was cancelled while the room was live."""
        if self.access is None or (event["person"] and event["person"] != str(self.access.person_id)):
            return
        await self._refuse(SessionCancelled(event["reason"]))

    async def room_ended(self, event: dict[str, Any]) -> None:
        await self._refuse(RoomClosed("The tutor has ended this session; its room is closed."))


class EchoConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    """A bare echo: the baseline bench/video.py measures the room's signaling beside."""

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        await self.send_json(content)
