"""Video room writes and the access rule (issue 15)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, transaction
from django.utils import timezone

from tutoring_core.accounts.api import audit_record
from tutoring_core.accounts.models import GuardianLink, User
from tutoring_core.scheduling import api as scheduling
from tutoring_core.video.data import AttendanceInfo, PeerInfo, RoomAccess
from tutoring_core.video.errors import (
    InvalidInput,
    NotFound,
    NotParticipant,
    RoomClosed,
    RoomFull,
    RoomNotOpen,
    SessionCancelled,
    TokenRefused,
)
from tutoring_core.video.models import Admission, Attendance, Presence, Room, VideoPolicy
from tutoring_core.video.protocol import attendance as rules
from tutoring_core.video.protocol.turn import ice_servers, turn_credential

MESH_LIMIT = 4  # a full mesh sends every stream to every peer; past four a school uplink chokes
TOKEN_SALT = "video.join"  # noqa: S105 (a signing salt, not a secret)
# Attendance outcome -> the session outcome scheduling records (it knows attended / no_show).
SCHEDULING_OUTCOME = {
    rules.ATTENDED: "attended",
    rules.LATE: "attended",
    rules.LEFT_EARLY: "attended",
    rules.NO_SHOW: "no_show",
}


def _session(session_id: Any, tenant_id: uuid.UUID | None) -> scheduling.SessionInfo:
    try:
        info = scheduling.session_info(uuid.UUID(str(session_id)))
    except (scheduling.NotFound, ValueError):
        raise NotFound("No such session.") from None
    if tenant_id is None or info.tenant_id != tenant_id:
        raise NotFound("No such session.")  # another tenant's session does not exist for you
    return info


def _role(user: User, info: scheduling.SessionInfo) -> str:
    if user.pk == info.tutor_id:
        return "tutor"
    booked = [p.person_id for p in info.participants if p.status == "booked"]
    if user.pk in booked:
        return "student"
    policy = VideoPolicy.objects.filter(tenant_id=info.tenant_id).first()
    if (
        policy is not None
        and policy.guardians_may_join
        and GuardianLink.objects.filter(guardian=user, student_id__in=booked, is_active=True).exists()
    ):
        return "guardian"
    return ""


def _check_open(info: scheduling.SessionInfo, room: Room, now: dt.datetime) -> None:
    if info.status in ("cancelled", "expired") or info.cancelled:
        raise SessionCancelled("This session was cancelled; its room is closed.")
    if info.status == "held":
        raise RoomNotOpen("This session is not confirmed yet; its room opens once it is booked.")
    if room.ended_at is not None or info.status == "completed":
        raise RoomClosed("This session has ended; its room is closed.")
    if now > info.end + dt.timedelta(minutes=settings.VIDEO_CLOSE_AFTER_MIN):
        raise RoomClosed("This session has ended; its room is closed.")
    if now < info.start - dt.timedelta(minutes=settings.VIDEO_OPEN_BEFORE_MIN):
        raise RoomNotOpen(
            f"The room opens {settings.VIDEO_OPEN_BEFORE_MIN} minutes before the session starts."
        )


def _room(info: scheduling.SessionInfo) -> Room:
    try:
        room, _ = Room.objects.get_or_create(session_id=info.id, defaults={"tenant_id": info.tenant_id})
    except IntegrityError:  # two first visitors at once: the other one made it
        room = Room.objects.get(session_id=info.id)
    return room


def room_access(*, user: User, session_id: Any, now: dt.datetime | None = None) -> RoomAccess:
    """The room of a session for ``user``: NotFound for another tenant's session, NotParticipant
    for anyone but its tutor, booked students (and their guardians where the tenant allows),
    RoomClosed / RoomNotOpen when the session's state refuses everyone."""
    info = _session(session_id, user.tenant_id)
    if info.status in ("cancelled", "expired") or info.cancelled:
        # Before the participant check: a cancel also cancels the participants' places.
        raise SessionCancelled("This session was cancelled; its room is closed.")
    role = _role(user, info)
    if not role:
        raise NotParticipant("Only the session's tutor and booked students can join this room.")
    room = _room(info)
    _check_open(info, room, now or timezone.now())
    return RoomAccess(
        room_id=room.pk,
        session_id=info.id,
        tenant_id=info.tenant_id,
        person_id=user.pk,
        person_name=user.full_name or user.email,
        role=role,
        start=info.start,
        end=info.end,
        time_zone=info.time_zone,
        title=info.subject or info.class_title or f"Session with {info.tutor_name}",
    )


def join_token_issue(*, access: RoomAccess) -> str:
    """A signed token for one websocket join, bound to the room and the person."""
    return signing.dumps({"r": str(access.room_id), "p": str(access.person_id)}, salt=TOKEN_SALT)


def join_token_check(*, token: str, room_id: uuid.UUID) -> uuid.UUID:
    """The person the token was issued to; TokenRefused when forged, for another room or expired."""
    try:
        payload = signing.loads(token, salt=TOKEN_SALT, max_age=settings.VIDEO_JOIN_TOKEN_TTL)
    except signing.SignatureExpired:
        raise TokenRefused("Your join link has expired; reload the page to join again.") from None
    except signing.BadSignature:
        raise TokenRefused("This join token is not valid.") from None
    if not isinstance(payload, dict) or payload.get("r") != str(room_id):
        raise TokenRefused("This join token is for another room.")
    try:
        return uuid.UUID(str(payload.get("p")))
    except ValueError:
        raise TokenRefused("This join token is not valid.") from None


def ice_servers_for(*, person_id: uuid.UUID, now: dt.datetime | None = None) -> list[dict[str, object]]:
    moment = now or timezone.now()
    credential = None
    if settings.TURN_URLS and settings.TURN_SECRET:
        credential = turn_credential(
            secret=settings.TURN_SECRET,
            person_id=person_id.hex,
            now=int(moment.timestamp()),
            ttl_seconds=settings.VIDEO_TURN_TTL,
        )
    return ice_servers(stun_urls=settings.STUN_URLS, turn_urls=settings.TURN_URLS, credential=credential)


def room_enter(*, room_id: Any, token: str, scope_user_id: Any) -> RoomAccess:
    """The websocket's checks: a valid token for this room, the person still a participant of a
    session whose room is open. A signed-in browser must be the token's person."""
    try:
        room = Room.objects.get(pk=room_id)
    except (Room.DoesNotExist, ValueError, TypeError):
        raise NotFound("No such room.") from None
    person_id = join_token_check(token=token, room_id=room.pk)
    if scope_user_id is not None and scope_user_id != person_id:
        raise TokenRefused("This join token was issued to someone else.")
    user = User.objects.filter(pk=person_id, tenant_id=room.tenant_id, is_active=True).first()
    if user is None:
        raise TokenRefused("This join token is not valid.")
    return room_access(user=user, session_id=room.session_id)


def is_admitted(*, access: RoomAccess) -> bool:
    if access.role == "tutor":
        return True
    return Admission.objects.filter(room_id=access.room_id, person_id=access.person_id).exists()


def admission_grant(*, access: RoomAccess, person_id: Any) -> uuid.UUID:
    """The tutor lets a participant in from the waiting room (repeatable)."""
    if access.role != "tutor":
        raise NotParticipant("Only the tutor admits people to the room.")
    room = Room.objects.get(pk=access.room_id)
    pid = _uuid(person_id)
    user = User.objects.filter(pk=pid, tenant_id=access.tenant_id).first() if pid else None
    if user is None:
        raise InvalidInput("No such person.")
    info = scheduling.session_info(room.session_id)
    if not _role(user, info):
        raise NotParticipant("Only the session's participants can be admitted.")
    Admission.objects.get_or_create(room=room, person=user, defaults={"admitted_by_id": access.person_id})
    return user.pk


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


@transaction.atomic
def presence_open(*, access: RoomAccess, peer_id: str) -> list[PeerInfo]:
    """Record the join; the peers already in the room. RoomFull past the mesh limit."""
    room = Room.objects.select_for_update().get(pk=access.room_id)  # serialises joins of one room
    others = list(room.presences.filter(left_at__isnull=True).select_related("person"))
    if len(others) >= MESH_LIMIT:
        raise RoomFull(f"This room is full ({MESH_LIMIT} people).")
    Presence.objects.create(room=room, person_id=access.person_id, peer_id=peer_id, joined_at=timezone.now())
    info = scheduling.session_info(room.session_id)
    return [
        PeerInfo(
            peer_id=row.peer_id,
            person_id=row.person_id,
            name=row.person.full_name or row.person.email,
            role="tutor" if row.person_id == info.tutor_id else "student",
        )
        for row in others
    ]


def presence_close(*, peer_id: str) -> None:
    Presence.objects.filter(peer_id=peer_id, left_at__isnull=True).update(left_at=timezone.now())


def _outcomes(room: Room, info: scheduling.SessionInfo, now: dt.datetime) -> dict[uuid.UUID, Attendance]:
    rows: dict[uuid.UUID, Attendance] = {}
    for participant in info.participants:
        if participant.status != "booked":
            continue
        spans = list(
            room.presences.filter(person_id=participant.person_id).values_list("joined_at", "left_at")
        )
        outcome = rules.attendance_outcome(
            spans=spans,
            start=info.start,
            end=info.end,
            now=now,
            late_after=dt.timedelta(minutes=settings.VIDEO_LATE_AFTER_MIN),
            early_before=dt.timedelta(minutes=settings.VIDEO_LEFT_EARLY_MIN),
        )
        rows[participant.person_id] = Attendance(
            room=room,
            person_id=participant.person_id,
            outcome=outcome,
            first_joined_at=min((j for j, _ in spans), default=None),
            last_left_at=max((left or now for _, left in spans), default=None),
        )
    return rows


@transaction.atomic
def attendance_finalize(*, actor: User, room_id: Any, now: dt.datetime | None = None) -> list[AttendanceInfo]:
    """The tutor ends the room: every booked student's join/leave times become their attendance,
    recorded on the session through scheduling (which marks it completed). Repeating it changes
    nothing: a corrected row is left as the tutor set it."""
    moment = now or timezone.now()
    room = (
        Room.objects.select_for_update()
        .filter(pk=room_id, tenant_id=actor.tenant_id or uuid.UUID(int=0))
        .first()
    )
    if room is None:
        raise NotFound("No such room.")
    info = scheduling.session_info(room.session_id)
    if actor.pk != info.tutor_id:
        raise NotParticipant("Only the tutor ends the session.")
    if room.ended_at is None:
        room.ended_at = moment
        room.save(update_fields=["ended_at"])
    room.presences.filter(left_at__isnull=True).update(left_at=moment)
    if info.start > moment:
        return []  # ended before it began: nobody was due yet, nothing to record
    for person_id, computed in _outcomes(room, info, moment).items():
        existing = Attendance.objects.filter(room=room, person_id=person_id).first()
        if existing is not None:
            continue
        computed.save()
        _record(actor=actor, info=info, person_id=person_id, outcome=computed.outcome)
    return attendance_list(room_id=room.pk)


def _record(*, actor: User, info: scheduling.SessionInfo, person_id: uuid.UUID, outcome: str) -> None:
    student = User.objects.get(pk=person_id)
    try:
        scheduling.session_outcome_set(
            actor=actor, session_id=info.id, outcome=SCHEDULING_OUTCOME[outcome], student=student
        )
    except scheduling.SchedulingError as exc:
        raise InvalidInput(exc.reason) from None


@transaction.atomic
def attendance_correct(*, actor: User, room_id: Any, person_id: Any, outcome: str) -> AttendanceInfo:
    """The tutor corrects one student's attendance (audited)."""
    if outcome not in rules.OUTCOMES:
        raise InvalidInput(f"Give one of: {', '.join(rules.OUTCOMES)}.")
    room = Room.objects.filter(pk=room_id, tenant_id=actor.tenant_id or uuid.UUID(int=0)).first()
    if room is None:
        raise NotFound("No such room.")
    info = scheduling.session_info(room.session_id)
    if actor.pk != info.tutor_id:
        raise NotParticipant("Only the tutor corrects attendance.")
    pid = _uuid(person_id)
    if pid not in {p.person_id for p in info.participants if p.status == "booked"}:
        raise InvalidInput("That person is not booked in this session.")
    if info.start > timezone.now():
        raise InvalidInput("The session has not started yet.")
    row = Attendance.objects.select_for_update().filter(room=room, person_id=pid).first()
    before = row.outcome if row else ""
    if row is None:
        row = Attendance.objects.create(room=room, person_id=pid, outcome=outcome, corrected_by=actor)
    else:
        row.outcome = outcome
        row.corrected_by = actor
        row.save(update_fields=["outcome", "corrected_by", "updated_at"])
    assert pid is not None
    _record(actor=actor, info=info, person_id=pid, outcome=outcome)
    audit_record(
        tenant=actor.tenant,
        actor=actor,
        action="video.attendance.correct",
        target=room,
        details={"person": str(pid), "from": before, "to": outcome},
    )
    return next(a for a in attendance_list(room_id=room.pk) if a.person_id == pid)


def attendance_list(*, room_id: Any) -> list[AttendanceInfo]:
    rows = (
        Attendance.objects.filter(room_id=room_id)
        .select_related("person")
        .order_by("person__last_name", "person__first_name", "person_id")
    )
    return [
        AttendanceInfo(
            person_id=row.person_id,
            name=row.person.full_name or row.person.email,
            outcome=row.outcome,
            first_joined_at=row.first_joined_at,
            last_left_at=row.last_left_at,
            corrected=row.corrected_by_id is not None,
        )
        for row in rows
    ]
