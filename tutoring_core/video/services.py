"""Video room writes and the access rule (issue 15)."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from tutoring_core.accounts.api import audit_record
from tutoring_core.accounts.models import GuardianLink, User
from tutoring_core.progress import api as progress
from tutoring_core.rows import save_changed
from tutoring_core.scheduling import api as scheduling
from tutoring_core.video import providers
from tutoring_core.video.data import AttendanceInfo, PeerInfo, RoomAccess
from tutoring_core.video.errors import (
    InvalidInput,
    NotFound,
    NotParticipant,
    ProviderUnavailable,
    RoomClosed,
    RoomFull,
    RoomNotOpen,
    SessionCancelled,
    SignatureRefused,
    TokenRefused,
    VideoError,
)
from tutoring_core.video.models import (
    Admission,
    Attendance,
    Presence,
    ProviderEvent,
    Recording,
    RecordingConsent,
    Room,
    VideoPolicy,
)
from tutoring_core.video.protocol import attendance as rules
from tutoring_core.video.protocol import bbb, livekit
from tutoring_core.video.protocol.turn import ice_servers, turn_credential
from tutoring_core.video.providers import ProviderRoom

logger = logging.getLogger(__name__)

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
        policy = VideoPolicy.objects.filter(tenant_id=info.tenant_id).first()
        room, _ = Room.objects.get_or_create(
            session_id=info.id,
            defaults={
                "tenant_id": info.tenant_id,
                "provider": policy.provider if policy else VideoPolicy.Provider.BUILTIN,
            },
        )
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
        provider=room.provider,
        recorded=room.recorded,
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


# Where a room's join and leave times come from, by provider (progress records it).
ATTENDANCE_SOURCE: dict[str, str] = {
    VideoPolicy.Provider.BUILTIN: progress.AttendanceSource.SIGNALING,
    VideoPolicy.Provider.LIVEKIT: progress.AttendanceSource.PROVIDER_WEBHOOK,
    VideoPolicy.Provider.BBB: progress.AttendanceSource.PROVIDER_WEBHOOK,
    VideoPolicy.Provider.JITSI: progress.AttendanceSource.JOIN_PAGE,
}


def _figures(room: Room, info: scheduling.SessionInfo, now: dt.datetime) -> dict[uuid.UUID, rules.Figures]:
    """Each booked student's outcome and figures from their presences in the room."""
    booked = _booked(info)
    spans: dict[uuid.UUID, list[tuple[dt.datetime, dt.datetime | None]]] = {pid: [] for pid in booked}
    for person_id, joined, left in room.presences.filter(person_id__in=booked).values_list(
        "person_id", "joined_at", "left_at"
    ):
        spans[person_id].append((joined, left))
    return {
        pid: rules.attendance_figures(
            spans=spans[pid],
            start=info.start,
            end=info.end,
            now=now,
            late_after=dt.timedelta(minutes=settings.VIDEO_LATE_AFTER_MIN),
            early_before=dt.timedelta(minutes=settings.VIDEO_LEFT_EARLY_MIN),
        )
        for pid in booked
    }


def _facts(
    room: Room, info: scheduling.SessionInfo, person_id: uuid.UUID, fig: rules.Figures
) -> progress.AttendanceFacts:
    return progress.AttendanceFacts(
        tenant_id=room.tenant_id,
        session_id=info.id,
        class_id=info.class_id,
        person_id=person_id,
        session_start=info.start,
        session_end=info.end,
        outcome=fig.outcome,
        first_joined_at=fig.first_joined_at,
        last_left_at=fig.last_left_at,
        minutes_present=fig.minutes_present,
        late_minutes=fig.late_minutes,
        left_early_minutes=fig.left_early_minutes,
        source=_attendance_source(room),
    )


def _attendance_source(room: Room) -> str:
    if room.provider == VideoPolicy.Provider.BBB and not providers.policy_for(room.tenant_id).bbb_webhooks:
        return progress.AttendanceSource.JOIN_PAGE  # no leaves known: joins through the hub only
    return ATTENDANCE_SOURCE.get(room.provider, progress.AttendanceSource.SIGNALING)


def _attendance_compute(
    *, actor: User, room: Room, info: scheduling.SessionInfo, now: dt.datetime, on_session: bool = True
) -> None:
    """Work out every booked student's attendance from the room's presences and record it: on
    the room, in progress (for reports and billing) and, when its kind changes (and
    ``on_session``), on the session through scheduling. A row the tutor corrected is left as
    they set it (here and in progress), so a provider's late webhook running this again loses
    no correction."""
    for person_id, fig in _figures(room, info, now).items():
        row = Attendance.objects.filter(room=room, person_id=person_id).first()
        if row is not None and row.corrected_by_id is not None:
            continue
        if row is None:
            before = ""
            row = Attendance(room=room, person_id=person_id)
        else:
            before = SCHEDULING_OUTCOME[row.outcome]
        changes = {
            "outcome": fig.outcome,
            "first_joined_at": fig.first_joined_at,
            "last_left_at": fig.last_left_at,
        }
        if row.pk is None:
            for name, value in changes.items():
                setattr(row, name, value)
            row.save()
        else:
            save_changed(row, changes)
        progress.attendance_record(facts=_facts(room, info, person_id, fig))
        if on_session and SCHEDULING_OUTCOME[fig.outcome] != before:
            _record(actor=actor, info=info, person_id=person_id, outcome=fig.outcome)


@transaction.atomic
def attendance_finalize(*, actor: User, room_id: Any, now: dt.datetime | None = None) -> list[AttendanceInfo]:
    """The tutor ends the room: every booked student's join/leave times become their attendance,
    recorded in progress and on the session through scheduling (which marks it completed).
    Repeating it changes nothing: a corrected row is left as the tutor set it."""
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
    if not _room_end(room=room, moment=moment, info=info):
        return []  # ended before it began: nobody was due yet, nothing to record
    _attendance_compute(actor=actor, room=room, info=info, now=moment)
    return attendance_list(room_id=room.pk)


def _room_end(*, room: Room, moment: dt.datetime, info: scheduling.SessionInfo) -> bool:
    """Close the (locked) room and every presence still open at ``moment``; False when that is
    before the session began (nobody was due yet)."""
    if room.ended_at is None:
        room.ended_at = moment
        room.save(update_fields=["ended_at"])
    room.presences.filter(left_at__isnull=True).update(left_at=moment)
    return info.start <= moment


def attendance_sweep(*, now: dt.datetime | None = None, limit: int | None = None) -> list[uuid.UUID]:
    """Rooms nobody ended (everyone closed the tab, or nobody came): every booked session that
    ended more than VIDEO_ATTENDANCE_GRACE_MIN ago with no outcome recorded is worked out as the
    tutor's end would have done it at the scheduled end (presences still open are closed there,
    the room is closed). A tutor who never joined makes the session a tutor_no_show. Each
    session is claimed and written in its own transaction, skipping one another worker holds;
    a worked-out session is completed, so a second run finds nothing. Returns the sessions done."""
    moment = now or timezone.now()
    ended_before = moment - dt.timedelta(minutes=settings.VIDEO_ATTENDANCE_GRACE_MIN)
    batch = limit if limit is not None else settings.VIDEO_ATTENDANCE_SWEEP_BATCH
    done: list[uuid.UUID] = []
    refused: list[uuid.UUID] = []
    while len(done) + len(refused) < batch:
        claimed: uuid.UUID | None = None
        try:
            with transaction.atomic():
                claimed = scheduling.session_claim_unsettled(ended_before=ended_before, skip=done + refused)
                if claimed is None:
                    break
                _attendance_sweep_one(session_id=claimed)
            done.append(claimed)
        except (VideoError, scheduling.SchedulingError, progress.ProgressError) as exc:
            # Nothing of this session was written (its transaction rolled back); the others go on.
            logger.warning("attendance sweep: session %s left as it was: %s", claimed, exc)
            if claimed is None:
                break
            refused.append(claimed)
    return done


def _attendance_sweep_one(*, session_id: uuid.UUID) -> None:
    info = scheduling.session_info(session_id)
    room = Room.objects.select_for_update().filter(pk=_room(info).pk).get()
    tutor = User.objects.get(pk=info.tutor_id)
    tutor_came = room.presences.filter(person_id=info.tutor_id).exists()
    _room_end(room=room, moment=info.end, info=info)
    # The tutor's absence is the session's outcome (payments settles it once, as such); the
    # students' own attendance is still recorded, on the room and in progress.
    _attendance_compute(actor=tutor, room=room, info=info, now=info.end, on_session=tutor_came)
    if not tutor_came:
        outcome = "tutor_no_show"
    elif not _booked(info):
        outcome = "attended"  # the tutor came and nobody was booked any more: nothing to settle
    else:
        return
    try:
        scheduling.session_outcome_set(
            actor=tutor, session_id=info.id, outcome=outcome, record_attendance=False
        )
    except scheduling.SchedulingError as exc:
        raise InvalidInput(exc.reason) from None


def _record(*, actor: User, info: scheduling.SessionInfo, person_id: uuid.UUID, outcome: str) -> None:
    student = User.objects.get(pk=person_id)
    try:
        scheduling.session_outcome_set(
            actor=actor,
            session_id=info.id,
            outcome=SCHEDULING_OUTCOME[outcome],
            student=student,
            record_attendance=False,  # the room records its own figures in progress
        )
    except scheduling.SchedulingError as exc:
        raise InvalidInput(exc.reason) from None


@transaction.atomic
def attendance_correct(*, actor: User, room_id: Any, person_id: Any, outcome: str) -> AttendanceInfo:
    """The tutor corrects one student's attendance: on the room, on the session and in progress
    (which keeps the replaced state and audits the correction)."""
    if outcome not in rules.OUTCOMES:
        raise InvalidInput(f"Give one of: {', '.join(rules.OUTCOMES)}.")
    room = Room.objects.filter(pk=room_id, tenant_id=actor.tenant_id or uuid.UUID(int=0)).first()
    if room is None:
        raise NotFound("No such room.")
    info = scheduling.session_info(room.session_id)
    if actor.pk != info.tutor_id:
        raise NotParticipant("Only the tutor corrects attendance.")
    pid = _uuid(person_id)
    if pid is None or pid not in _booked(info):
        raise InvalidInput("That person is not booked in this session.")
    now = timezone.now()
    if info.start > now:
        raise InvalidInput("The session has not started yet.")
    row = Attendance.objects.select_for_update().filter(room=room, person_id=pid).first()
    if row is None:
        row = Attendance.objects.create(room=room, person_id=pid, outcome=outcome, corrected_by=actor)
    else:
        row.outcome = outcome
        row.corrected_by = actor
        row.save(update_fields=["outcome", "corrected_by", "updated_at"])
    _record(actor=actor, info=info, person_id=pid, outcome=outcome)
    figures = _figures(room, info, min(now, room.ended_at or now))[pid]
    progress.attendance_correct(actor=actor, facts=_facts(room, info, pid, figures), outcome=outcome)
    return next(a for a in attendance_list(room_id=room.pk) if a.person_id == pid)


def attendance_list(*, room_id: Any) -> list[AttendanceInfo]:
    rows = list(
        Attendance.objects.filter(room_id=room_id)
        .select_related("person", "room")
        .order_by("person__last_name", "person__first_name", "person_id")
    )
    figures = (
        {r.person_id: r for r in progress.attendance_for_session(session_id=rows[0].room.session_id)}
        if rows
        else {}
    )
    return [
        AttendanceInfo(
            person_id=row.person_id,
            name=row.person.full_name or row.person.email,
            outcome=row.outcome,
            first_joined_at=row.first_joined_at,
            last_left_at=row.last_left_at,
            corrected=row.corrected_by_id is not None,
            minutes_present=figures[row.person_id].minutes_present if row.person_id in figures else None,
            late_minutes=figures[row.person_id].late_minutes if row.person_id in figures else None,
            left_early_minutes=figures[row.person_id].left_early_minutes
            if row.person_id in figures
            else None,
        )
        for row in rows
    ]


# --- providers (issue 15 point 2) -------------------------------------------------------------


def _provider_room(room: Room, title: str) -> ProviderRoom:
    return ProviderRoom(room_id=room.pk, tenant_id=room.tenant_id, title=title, record=room.recorded)


def provider_for_room(room: Room) -> providers.Provider:
    return providers.provider_named(room.provider, providers.policy_for(room.tenant_id))


def provider_join(*, access: RoomAccess, now: dt.datetime | None = None) -> str:
    """The URL that takes this participant into the provider's meeting. The first join fixes
    whether the meeting records (consent complete beforehand, issue 15 point 5); BigBlueButton
    and Jitsi joins count as the person's join time (LiveKit's come from its webhooks)."""
    moment = now or timezone.now()
    with transaction.atomic():
        room = Room.objects.select_for_update().get(pk=access.room_id)
        if room.provider == VideoPolicy.Provider.BUILTIN:
            raise InvalidInput("This room is joined on its page, not through a provider.")
        policy = providers.policy_for(room.tenant_id)
        provider = providers.provider_named(room.provider, policy)
        if room.provider_started_at is None:
            info = scheduling.session_info(room.session_id)
            room.recorded = room.recording_requested_by_id is not None and not recording_blockers(
                info=info, policy=policy, provider=provider
            )
            room.provider_started_at = moment
            room.save(update_fields=["recorded", "provider_started_at"])
        # LiveKit's joins come from its webhooks, and BigBlueButton's too where bbb-webhooks
        # sends them; otherwise the join through the hub is the only join time there is.
        if room.provider == VideoPolicy.Provider.JITSI or (
            room.provider == VideoPolicy.Provider.BBB and not policy.bbb_webhooks
        ):
            Presence.objects.create(
                room=room, person_id=access.person_id, peer_id=uuid.uuid4().hex, joined_at=moment
            )
    # The provider call runs after the lock is released; BigBlueButton's create is repeatable.
    return provider.join_url(room=_provider_room(room, access.title), access=access)


def room_close(*, session_id: uuid.UUID, person_id: uuid.UUID | None = None) -> None:
    """A session (or one student's place in it) was cancelled: after the commit, every socket
    in its room (or that student's) is told and closed, and the provider's meeting is ended."""
    room = Room.objects.filter(session_id=session_id).first()
    if room is None:
        return
    reason = (
        "Your place in this session was cancelled; its room is closed to you."
        if person_id
        else "This session was cancelled; its room is closed."
    )

    def tell() -> None:
        from asgiref.sync import async_to_sync
        from channels.layers import get_channel_layer

        layer = get_channel_layer()
        if layer is not None:
            async_to_sync(layer.group_send)(
                f"video.{room.pk.hex}",
                {"type": "room.closed", "reason": reason, "person": str(person_id) if person_id else ""},
            )
        if person_id is None and room.provider_started_at is not None:
            try:
                provider_for_room(room).end(room=_provider_room(room, ""))
            except VideoError:
                pass  # the provider's meeting ends by itself when empty; the hub refuses joins already

    transaction.on_commit(tell)


# --- recording and consent (issue 15 point 5) --------------------------------------------------


def _booked(info: scheduling.SessionInfo) -> list[uuid.UUID]:
    return [p.person_id for p in info.participants if p.status == "booked"]


def consents_of(*, session_id: uuid.UUID) -> dict[uuid.UUID, RecordingConsent]:
    return {
        c.student_id: c
        for c in RecordingConsent.objects.filter(session_id=session_id, withdrawn_at__isnull=True)
    }


def recording_blockers(
    *, info: scheduling.SessionInfo, policy: VideoPolicy, provider: providers.Provider
) -> list[str]:
    """Why this session may not be recorded; [] when it may."""
    if not policy.recording_allowed:
        return ["Your district does not allow recording sessions."]
    if not provider.records:
        return [
            f"The district's video provider ({VideoPolicy.Provider(provider.key).label}) does not record."
        ]
    given = consents_of(session_id=info.id)
    missing = [p.name for p in info.participants if p.status == "booked" and p.person_id not in given]
    if missing:
        who = "a guardian's" if policy.consent_from == VideoPolicy.ConsentFrom.GUARDIAN else "the student's"
        return [f"No consent to record yet ({who} is needed) for: {', '.join(missing)}."]
    return []


@transaction.atomic
def recording_request(*, actor: User, session_id: Any, on: bool = True) -> None:
    """The tutor asks for (or drops) a recording of the session, before its room starts."""
    info = _session(session_id, actor.tenant_id)
    if actor.pk != info.tutor_id:
        raise NotParticipant("Only the session's tutor asks for a recording.")
    if info.status != "booked":
        raise InvalidInput("Only a booked session can be recorded.")
    room = Room.objects.select_for_update().get(pk=_room(info).pk)
    if room.provider_started_at is not None:
        raise InvalidInput("The room has started; a recording is decided before the session begins.")
    if on:
        policy = providers.policy_for(info.tenant_id)
        provider = providers.provider_named(room.provider, policy)
        if not policy.recording_allowed or not provider.records:
            raise InvalidInput(recording_blockers(info=info, policy=policy, provider=provider)[0])
    room.recording_requested_by = actor if on else None
    room.save(update_fields=["recording_requested_by"])
    audit_record(
        tenant=actor.tenant,
        actor=actor,
        action="video.recording.request" if on else "video.recording.drop",
        target=room,
        details={"session": str(info.id)},
    )


def consent_students_for(*, user: User, info: scheduling.SessionInfo) -> list[uuid.UUID]:
    """The booked students whose consent ``user`` may give: themselves (adult learners) or their
    wards (minors), by the tenant's policy."""
    policy = providers.policy_for(info.tenant_id)
    booked = _booked(info)
    if policy.consent_from == VideoPolicy.ConsentFrom.STUDENT:
        return [user.pk] if user.pk in booked else []
    wards = set(
        GuardianLink.objects.filter(guardian=user, student_id__in=booked, is_active=True).values_list(
            "student_id", flat=True
        )
    )
    return [pid for pid in booked if pid in wards]


def consent_set(*, actor: User, session_id: Any, student_id: Any, given: bool) -> None:
    """Give or withdraw consent to record one student in one session (audited). Withdrawing
    stops the session's recording if one runs and deletes its recordings at the provider (or
    from storage); repeating a withdrawal retries whatever deletion failed before."""
    info = _consent_write(actor=actor, session_id=session_id, student_id=student_id, given=given)
    if not given:
        try:
            recordings_withdraw(session_id=info.id)
        except ProviderUnavailable as exc:
            raise ProviderUnavailable(
                f"Your consent is withdrawn, but the recording is not deleted yet: {exc.reason} "
                "Withdraw again to retry."
            ) from None


@transaction.atomic
def _consent_write(*, actor: User, session_id: Any, student_id: Any, given: bool) -> scheduling.SessionInfo:
    info = _session(session_id, actor.tenant_id)
    sid = _uuid(student_id)
    if sid is None or sid not in consent_students_for(user=actor, info=info):
        raise NotParticipant("You cannot consent for that student in this session.")
    now = timezone.now()
    row = RecordingConsent.objects.select_for_update().filter(session_id=info.id, student_id=sid).first()
    policy = providers.policy_for(info.tenant_id)
    if given:
        fields = {"given_by": actor, "given_as": policy.consent_from, "given_at": now, "withdrawn_at": None}
        if row is None:
            RecordingConsent.objects.create(
                tenant_id=info.tenant_id, session_id=info.id, student_id=sid, **fields
            )
        else:
            for name, value in fields.items():
                setattr(row, name, value)
            row.save()
    elif row is not None and row.withdrawn_at is None:
        row.withdrawn_at = now
        row.save(update_fields=["withdrawn_at"])
    else:
        return info  # nothing was given: nothing to withdraw, nothing to audit
    audit_record(
        tenant=actor.tenant,
        actor=actor,
        action="video.recording.consent" if given else "video.recording.consent_withdrawn",
        target=None,
        details={"session": str(info.id), "student": str(sid), "as": policy.consent_from},
    )
    return info


# --- LiveKit recordings (Egress) and withdrawn consent ------------------------------------------

RECORDINGS_PREFIX = "video-recordings"  # LiveKit Egress writes here, in the hub's default storage
LIVE_STATES = (Recording.State.STARTING, Recording.State.RECORDING)
STARTING_GIVEN_UP_AFTER = dt.timedelta(minutes=2)


def _consent_complete(room: Room) -> bool:
    info = scheduling.session_info(room.session_id)
    return set(_booked(info)) <= set(consents_of(session_id=info.id))


def livekit_recording_start(*, room_id: uuid.UUID) -> Recording | None:
    """Start a room-composite egress of a LiveKit room whose meeting records (consent was
    complete when it started, and still is), unless one is starting or running already. The
    row is claimed first under the room's lock, so two webhooks never start two egresses."""
    with transaction.atomic():
        room = Room.objects.select_for_update().get(pk=room_id)
        # A start whose process died between the claim and LiveKit's answer would block the
        # room for good: past the HTTP client's own limits it is given up.
        room.recordings.filter(
            state=Recording.State.STARTING, updated_at__lt=timezone.now() - STARTING_GIVEN_UP_AFTER
        ).update(
            state=Recording.State.FAILED,
            failure_reason="LiveKit's answer to the start never came back.",
            updated_at=timezone.now(),
        )
        if (
            room.provider != VideoPolicy.Provider.LIVEKIT
            or not room.recorded
            or room.ended_at is not None
            or room.recordings.filter(state__in=LIVE_STATES).exists()
            or not _consent_complete(room)
        ):
            return None
        recording = Recording.objects.create(
            room=room, external_id=f"starting:{uuid.uuid4().hex}", state=Recording.State.STARTING
        )
    filepath = f"{RECORDINGS_PREFIX}/{room.tenant_id}/{room.pk.hex}/{recording.pk}.mp4"
    provider = providers.LiveKit(providers.policy_for(room.tenant_id))
    try:
        egress = provider.egress_start(room=_provider_room(room, ""), filepath=filepath)
    except VideoError as exc:
        recording.state, recording.failure_reason = Recording.State.FAILED, exc.reason
        recording.save(update_fields=["state", "failure_reason", "updated_at"])
        return recording
    recording.external_id, recording.file_name = egress.egress_id, filepath
    recording.state = Recording.State.RECORDING
    recording.save(update_fields=["external_id", "file_name", "state", "updated_at"])
    return recording


def livekit_recording_stop(*, room: Room) -> None:
    """Stop the room's running egress (the tutor ended the room, or a consent was withdrawn);
    LiveKit's egress_ended webhook then says where the file is (or why it failed)."""
    policy = providers.policy_for(room.tenant_id)
    for recording in room.recordings.filter(state=Recording.State.RECORDING):
        providers.LiveKit(policy).egress_stop(egress_id=recording.external_id)
        Recording.objects.filter(pk=recording.pk, state=Recording.State.RECORDING).update(
            state=Recording.State.PROCESSING, updated_at=timezone.now()
        )


def _livekit_egress_event(*, room: Room, event: livekit.WebhookEvent) -> None:
    recording = room.recordings.filter(external_id=event.egress_id).first()
    if recording is None or recording.state in (Recording.State.DELETED, Recording.State.FAILED):
        return  # an egress the hub did not start, or one already settled
    if event.event == "egress_started":
        if recording.state == Recording.State.STARTING:
            save_changed(recording, {"state": Recording.State.RECORDING})
        return
    if event.egress_status in livekit.EGRESS_FAILED:
        save_changed(
            recording,
            {"state": Recording.State.FAILED, "failure_reason": event.egress_error or event.egress_status},
        )
        return
    if event.egress_status not in livekit.EGRESS_DONE:
        return
    save_changed(
        recording,
        {
            "state": Recording.State.READY,
            "file_name": event.file_name or recording.file_name,
            "file_location": event.file_location,
            "failure_reason": "",
        },
    )
    if not _consent_complete(room):  # withdrawn while it ran: the file goes at once
        _recordings_delete(room=room)


def _recordings_delete(*, room: Room) -> None:
    """Delete the room's finished recordings where they are kept: BigBlueButton's through its
    deleteRecordings call, LiveKit's file from the hub's storage. A failure leaves the rows as
    they were (a repeated withdrawal retries) and is raised."""
    kept = list(room.recordings.filter(state__in=(Recording.State.READY, Recording.State.PROCESSING)))
    if room.provider == VideoPolicy.Provider.BBB:
        ids = [r.external_id for r in kept]
        if ids:
            providers.BigBlueButton(providers.policy_for(room.tenant_id)).delete_recordings(record_ids=ids)
        gone = [r.pk for r in kept]
    else:
        gone = []
        for recording in kept:
            if recording.state != Recording.State.READY:
                continue  # LiveKit is still writing it: its egress_ended webhook deletes it
            if recording.file_name:
                try:
                    default_storage.delete(recording.file_name)
                except Exception as exc:  # any storage backend's error (S3's are botocore's)
                    raise ProviderUnavailable(f"The recording's file could not be deleted ({exc}).") from None
            gone.append(recording.pk)
    Recording.objects.filter(pk__in=gone).update(
        state=Recording.State.DELETED, playback_url="", file_location="", updated_at=timezone.now()
    )


def recordings_withdraw(*, session_id: uuid.UUID) -> None:
    """A consent to record the session was withdrawn: the meeting stops recording (LiveKit: its
    egress is stopped; BigBlueButton records a whole meeting and has no call to stop that, so
    the meeting is ended) and will not record again, and the recordings made are deleted."""
    room = Room.objects.filter(session_id=session_id).first()
    if room is None:
        return
    if room.provider == VideoPolicy.Provider.LIVEKIT:
        livekit_recording_stop(room=room)
    elif room.provider == VideoPolicy.Provider.BBB and room.recorded and room.ended_at is None:
        if room.provider_started_at is not None:
            provider_for_room(room).end(room=_provider_room(room, ""))
    # Only once it has stopped (a failure above leaves it for the retry to stop): the banner
    # goes, and a rejoin makes a meeting that does not record.
    if room.recorded:
        Room.objects.filter(pk=room.pk).update(recorded=False)
        room.recorded = False
    _recordings_delete(room=room)


def recordings_of(*, room_id: uuid.UUID) -> list[Recording]:
    return list(Recording.objects.filter(room_id=room_id).order_by("created_at"))


# --- provider webhooks -------------------------------------------------------------------------


def _policy_with_secret(tenant_id: Any, provider: str) -> VideoPolicy:
    tid = _uuid(tenant_id)
    policy = VideoPolicy.objects.filter(tenant_id=tid).first() if tid else None
    if policy is None or not policy.secret:
        raise NotFound("No such video provider.")
    if provider == VideoPolicy.Provider.LIVEKIT and not policy.app_id:
        raise NotFound("No such video provider.")
    return policy


def _room_named(tenant_id: uuid.UUID, name: str) -> Room | None:
    rid = _uuid(name)
    return Room.objects.filter(tenant_id=tenant_id, pk=rid).first() if rid else None


def _first_time(tenant_id: uuid.UUID, provider: str, event_id: str, kind: str) -> bool:
    """Record an inbound event once; False when its sender's id was seen already."""
    try:
        with transaction.atomic():
            ProviderEvent.objects.create(tenant_id=tenant_id, provider=provider, event_id=event_id, kind=kind)
    except IntegrityError:
        return False
    return True


def bbb_recording_ready(*, tenant_id: Any, signed_parameters: str) -> str:
    """BigBlueButton's recording-ready callback, verified by its JWT (signed with the shared
    secret). A recording whose consent was withdrawn meanwhile is deleted at once."""
    policy = _policy_with_secret(tenant_id, VideoPolicy.Provider.BBB)
    try:
        claims = bbb.recording_ready_claims(signed_parameters=signed_parameters, secret=policy.secret or "")
    except bbb.BBBError as exc:
        raise SignatureRefused(str(exc)) from None
    room = _room_named(policy.tenant_id, claims["meeting_id"])
    if room is None:
        raise NotFound("No such meeting.")
    record_id = claims["record_id"] or claims["meeting_id"]
    with transaction.atomic():
        if not _first_time(policy.tenant_id, "bbb", f"recording-ready:{record_id}", "recording_ready"):
            return "duplicate"
        info = scheduling.session_info(room.session_id)
        keep = room.recorded and set(_booked(info)) <= set(consents_of(session_id=info.id))
        recording = Recording.objects.create(
            room=room,
            external_id=record_id,
            state=Recording.State.READY if keep else Recording.State.DELETED,
        )
    if not keep:
        try:
            providers.BigBlueButton(policy).delete_recordings(record_ids=[record_id])
        except VideoError:
            Recording.objects.filter(pk=recording.pk).update(state=Recording.State.PROCESSING)
            raise
        return "deleted"
    return "recorded"


def bbb_hook_events(*, tenant_id: Any, body: str, checksum: str) -> str:
    """bbb-webhooks' callback, verified by its checksum: users' joins and leaves become
    presences (as LiveKit's do), and the meeting's end works attendance out."""
    policy = _policy_with_secret(tenant_id, VideoPolicy.Provider.BBB)
    callback_url = settings.PUBLIC_BASE_URL + reverse(
        "video:bbb_events", kwargs={"tenant_id": policy.tenant_id}
    )
    try:
        events = bbb.hook_events(
            callback_url=callback_url,
            body=body,
            given=checksum,
            secret=policy.secret or "",
            algorithm=policy.checksum_algorithm,
        )
    except bbb.BBBError as exc:
        raise SignatureRefused(str(exc)) from None
    outcome = "ignored"
    for event in events:
        room = _room_named(policy.tenant_id, event.meeting_id)
        if room is None or event.kind not in ("user-joined", "user-left", "meeting-ended"):
            continue
        at = dt.datetime.fromtimestamp(event.ts_ms / 1000, tz=dt.UTC) if event.ts_ms else timezone.now()
        peer = f"bbb:{event.internal_user_id}"[:32]
        with transaction.atomic():
            if not _first_time(policy.tenant_id, "bbb", event.key[:200], event.kind):
                outcome = "duplicate" if outcome == "ignored" else outcome
                continue
            if event.kind == "user-joined" and event.internal_user_id:
                person = _uuid(event.user_id)
                if person is None or not User.objects.filter(pk=person, tenant_id=room.tenant_id).exists():
                    continue
                Presence.objects.get_or_create(
                    peer_id=peer, defaults={"room": room, "person_id": person, "joined_at": at}
                )
            elif event.kind == "user-left" and event.internal_user_id:
                Presence.objects.filter(room=room, peer_id=peer, left_at__isnull=True).update(left_at=at)
            elif event.kind == "meeting-ended":
                room.presences.filter(left_at__isnull=True).update(left_at=at)
        outcome = event.kind
        if event.kind == "meeting-ended" or room.ended_at is not None:
            _provider_attendance(room=room, at=at)
    return outcome


def livekit_webhook(*, tenant_id: Any, body: str, authorization: str) -> str:
    """LiveKit's webhook, verified (JWT over the body's SHA-256): participants' joins and leaves
    become presences, which attendance reads as it reads the built-in rooms'."""
    policy = _policy_with_secret(tenant_id, VideoPolicy.Provider.LIVEKIT)
    try:
        event = livekit.webhook_event(
            body=body, authorization=authorization, api_key=policy.app_id, api_secret=policy.secret or ""
        )
    except livekit.LiveKitError as exc:
        raise SignatureRefused(str(exc)) from None
    room = _room_named(policy.tenant_id, event.room)
    if room is None or not event.id:
        return "ignored"  # a room the hub did not make (the server may host others)
    at = dt.datetime.fromtimestamp(event.created_at, tz=dt.UTC) if event.created_at else timezone.now()
    with transaction.atomic():
        if not _first_time(policy.tenant_id, "livekit", event.id, event.event):
            return "duplicate"
        if event.event == "participant_joined" and event.participant_sid:
            person = _uuid(event.identity)
            if person is None or not User.objects.filter(pk=person, tenant_id=room.tenant_id).exists():
                return "ignored"
            Presence.objects.get_or_create(
                peer_id=event.participant_sid[:32],
                defaults={"room": room, "person_id": person, "joined_at": at},
            )
        elif event.event == "participant_left" and event.participant_sid:
            Presence.objects.filter(
                room=room, peer_id=event.participant_sid[:32], left_at__isnull=True
            ).update(left_at=at)
        elif event.event == "room_finished":
            room.presences.filter(left_at__isnull=True).update(left_at=at)
        if event.event in ("egress_started", "egress_ended") and event.egress_id:
            _livekit_egress_event(room=room, event=event)
    if event.event in ("room_started", "participant_joined") and room.recorded and room.ended_at is None:
        livekit_recording_start(room_id=room.pk)
    if event.event == "room_finished" or room.ended_at is not None:
        _provider_attendance(room=room, at=at)
    return event.event


def _provider_attendance(*, room: Room, at: dt.datetime) -> None:
    """The provider's meeting finished (or a leave came in after the tutor ended it): attendance
    is worked out again from the presences, as the tutor's end does, in the tutor's name (the
    provider's events are the tutor's room's record). Corrections stay as the tutor set them."""
    info = scheduling.session_info(room.session_id)
    if info.cancelled or info.status not in ("booked", "completed") or info.start > at:
        return
    tutor = User.objects.get(pk=info.tutor_id)
    attendance_finalize(actor=tutor, room_id=room.pk, now=at)


def provider_room_end(*, actor: User, session_id: Any) -> list[AttendanceInfo]:
    """The tutor ends a provider room: attendance is recorded as for a built-in room, then the
    provider's meeting is ended for everyone in it."""
    info = _session(session_id, actor.tenant_id)
    room = Room.objects.filter(session_id=info.id).first()
    if room is None:
        raise NotFound("No such room.")
    rows = attendance_finalize(actor=actor, room_id=room.pk)
    if room.provider_started_at is not None:
        if room.provider == VideoPolicy.Provider.LIVEKIT:
            livekit_recording_stop(room=room)
        provider_for_room(room).end(room=_provider_room(room, ""))
    return rows
