from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class RoomAccess:
    """Who may enter which room, and as what."""

    room_id: uuid.UUID
    session_id: uuid.UUID
    tenant_id: uuid.UUID
    person_id: uuid.UUID
    person_name: str
    role: str  # "tutor" | "student" | "guardian"
    start: dt.datetime
    end: dt.datetime
    time_zone: str
    title: str
    provider: str = "builtin"  # the room's: builtin | bbb | jitsi | livekit
    recorded: bool = False  # the provider's meeting records (consent was complete)


@dataclass(frozen=True)
class PeerInfo:
    peer_id: str
    person_id: uuid.UUID
    name: str
    role: str


@dataclass(frozen=True)
class AttendanceInfo:
    person_id: uuid.UUID
    name: str
    outcome: str
    first_joined_at: dt.datetime | None
    last_left_at: dt.datetime | None
    corrected: bool
    # As progress recorded them (None before the room's attendance was worked out).
    minutes_present: int | None = None
    late_minutes: int | None = None
    left_early_minutes: int | None = None
