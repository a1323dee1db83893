"""The door other apps use for video rooms (issue 15)."""

from __future__ import annotations

import uuid

from tutoring_core.accounts.models import User
from tutoring_core.scheduling.data import SessionInfo
from tutoring_core.video import services
from tutoring_core.video.data import AttendanceInfo
from tutoring_core.video.models import Room

__all__ = ["room_joinable", "session_attendance", "session_cancelled"]


def session_cancelled(*, session_id: uuid.UUID, person_id: uuid.UUID | None = None) -> None:
    """Scheduling cancelled a session (or one student's place, ``person_id``): its live room
    closes for everyone (or that student) once the cancel commits."""
    services.room_close(session_id=session_id, person_id=person_id)


def room_joinable(*, user: User, info: SessionInfo) -> bool:
    """Whether to show ``user`` a link to the session's room: only where the room would let them
    in (a booked session, and they are its tutor, a booked student, or a guardian the tenant
    lets join), so nobody is shown a link that answers 403."""
    if info.status != "booked" or info.cancelled or user.tenant_id != info.tenant_id:
        return False
    return bool(services._role(user, info))


def session_attendance(*, session_id: uuid.UUID) -> list[AttendanceInfo]:
    """The attendance recorded from the session's room (attended, late, left early, no-show),
    with the join and leave times and whether the tutor corrected it; [] before it ends."""
    room = Room.objects.filter(session_id=session_id).first()
    return services.attendance_list(room_id=room.pk) if room else []
