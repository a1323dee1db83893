"""Sending notices and reminders: claim a row, build the email, send, record the outcome."""

from __future__ import annotations

import datetime as dt
import logging
import smtplib
import uuid
import zoneinfo
from email.mime.text import MIMEText

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db.models import F, Q
from django.utils import timezone

from tutoring_core.accounts.models import GuardianLink, User
from tutoring_core.calendars import api as calendars_api
from tutoring_core.messaging.models import Notification, NotificationKind, NotificationStatus
from tutoring_core.scheduling import api as scheduling_api
from tutoring_core.scheduling.data import SessionInfo

logger = logging.getLogger(__name__)

CHANGE_KINDS = (
    NotificationKind.BOOKED,
    NotificationKind.RESCHEDULED,
    NotificationKind.CANCELLED,
    NotificationKind.LEFT,
    NotificationKind.JOINED,
)


class NotificationRetry(Exception):
    """The mail server may take the message later (network, timeout, 4xx answer)."""


# --- claiming ----------------------------------------------------------------------------


def _claim(notification_id: uuid.UUID, now: dt.datetime) -> bool:
    """Exactly one caller wins a due row, however many workers hold its id."""
    due = Q(status=NotificationStatus.PENDING, next_attempt_at__lte=now) | Q(
        status=NotificationStatus.SENDING, lease_expires_at__lt=now
    )
    return (
        Notification.objects.filter(due, pk=notification_id).update(
            status=NotificationStatus.SENDING,
            lease_expires_at=now + dt.timedelta(seconds=settings.MESSAGING_LEASE_SECONDS),
            attempts=F("attempts") + 1,
            updated_at=now,
        )
        == 1
    )


def _finish(notification_id: uuid.UUID, status: str, error: str = "") -> str:
    now = timezone.now()
    Notification.objects.filter(pk=notification_id, status=NotificationStatus.SENDING).update(
        status=status,
        last_error=error[:2000],
        lease_expires_at=None,
        sent_at=now if status == NotificationStatus.SENT else None,
        updated_at=now,
    )
    return status


def retry_delay(attempts: int) -> dt.timedelta:
    """Doubling from MESSAGING_RETRY_BASE_SECONDS, at most an hour."""
    return dt.timedelta(seconds=min(3600, settings.MESSAGING_RETRY_BASE_SECONDS * 2 ** max(0, attempts - 1)))


# --- delivery ----------------------------------------------------------------------------


def notification_deliver(*, notification_id: uuid.UUID, now: dt.datetime | None = None) -> str:
    """Send one notice or reminder if it is still due and still true. Returns its status.

    Raises NotificationRetry (the row back to PENDING with a later next_attempt_at)
    when the mail server may accept it later; after MESSAGING_MAX_ATTEMPTS it is FAILED.
    """
    now = now or timezone.now()
    if not _claim(notification_id, now):
        return (
            Notification.objects.filter(pk=notification_id).values_list("status", flat=True).first()
            or "missing"
        )
    row = Notification.objects.select_related("recipient", "recipient__tenant").get(pk=notification_id)
    try:
        info = scheduling_api.session_info(row.session_id)
    except scheduling_api.NotFound:
        return _finish(row.pk, NotificationStatus.DROPPED, "The session no longer exists.")
    stale = _why_stale(row, info, now)
    if stale:
        status = (
            NotificationStatus.SUPERSEDED
            if row.kind != NotificationKind.REMINDER
            else NotificationStatus.DROPPED
        )
        return _finish(row.pk, status, stale)
    recipient = row.recipient
    if not recipient.is_active or not recipient.email or recipient.tenant_id != info.tenant_id:
        return _finish(row.pk, NotificationStatus.FAILED, "The person has no email address in this district.")
    message = build_message(row, info, recipient)
    try:
        with get_connection(timeout=settings.EMAIL_TIMEOUT) as connection:
            message.connection = connection
            message.send()
    except smtplib.SMTPRecipientsRefused as exc:
        return _finish(row.pk, NotificationStatus.FAILED, f"The mail server refused the address: {exc}")
    except smtplib.SMTPResponseException as exc:
        if exc.smtp_code >= 500:
            return _finish(
                row.pk, NotificationStatus.FAILED, f"The mail server refused: {exc.smtp_code} {exc}"
            )
        _release_or_fail(row, f"{exc.smtp_code} {exc}")
        raise NotificationRetry(str(exc)) from exc
    except (smtplib.SMTPException, OSError) as exc:
        _release_or_fail(row, str(exc) or exc.__class__.__name__)
        raise NotificationRetry(str(exc)) from exc
    return _finish(row.pk, NotificationStatus.SENT)


def _why_stale(row: Notification, info: SessionInfo, now: dt.datetime) -> str:
    if row.kind == NotificationKind.REMINDER:
        if info.status != "booked":
            return "The session is no longer booked."
        if info.start != row.session_start:
            return "The session was moved."
        if info.start <= now:
            return "The session had started."
        return ""
    # A newer change told this person of the session as it is now (not every change
    # concerns everyone: a join or a leave notifies the tutor and that student's side).
    from tutoring_core.messaging.services import ONE_PLACE, people_concerned

    newer = Notification.objects.filter(
        session_id=row.session_id,
        recipient_id=row.recipient_id,
        kind__in=CHANGE_KINDS,
        sequence__gt=row.sequence,
    )
    if newer.exclude(kind__in=ONE_PLACE).exists():
        return "A newer change of the session was notified instead."
    if row.kind in ONE_PLACE:
        # A later join or leave of the same student tells where their place now stands.
        if newer.filter(kind__in=ONE_PLACE, about_person_id=row.about_person_id).exists():
            return "A newer change of the session was notified instead."
        return ""
    if (
        info.status == "booked"
        and newer.filter(kind=NotificationKind.LEFT).exists()
        and row.recipient_id not in people_concerned(info, change=NotificationKind.BOOKED)
    ):
        return "The session no longer concerns this person (their student left it)."
    return ""


def _release_or_fail(row: Notification, error: str) -> None:
    attempts = Notification.objects.filter(pk=row.pk).values_list("attempts", flat=True).first() or 0
    now = timezone.now()
    if attempts >= settings.MESSAGING_MAX_ATTEMPTS:
        _finish(row.pk, NotificationStatus.FAILED, f"Gave up after {attempts} attempts: {error}")
        return
    Notification.objects.filter(pk=row.pk, status=NotificationStatus.SENDING).update(
        status=NotificationStatus.PENDING,
        last_error=error[:2000],
        lease_expires_at=None,
        next_attempt_at=now + retry_delay(attempts),
        updated_at=now,
    )


# --- the email ---------------------------------------------------------------------------


def _zone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def local_when(info: SessionInfo, zone_name: str) -> str:
    """'Monday 7 December 2026, 15:00 to 16:00 (Europe/Berlin)' in the reader's zone."""
    zone = _zone(zone_name)
    start = info.start.astimezone(zone)
    end = info.end.astimezone(zone)
    day = f"{start:%A} {start.day} {start:%B %Y}"
    end_text = f"{end:%H:%M}" if end.date() == start.date() else f"{end:%A} {end.day} {end:%B} {end:%H:%M}"
    return f"{day}, {start:%H:%M} to {end_text} ({zone.key})"


def _offset_words(minutes: int) -> str:
    if minutes % 1440 == 0:
        days = minutes // 1440
        return "in 1 day" if days == 1 else f"in {days} days"
    if minutes % 60 == 0:
        hours = minutes // 60
        return "in 1 hour" if hours == 1 else f"in {hours} hours"
    return f"in {minutes} minutes"


def _left_for(info: SessionInfo, recipient: User) -> list[str]:
    """For a leave notice written before notices named their student (``about_person``):
    who left, as the recipient on the leaver's side reads it (the student themself, their
    guardian, whoever booked the place)."""
    gone = [p for p in info.participants if p.status != "booked"]
    wards = set(
        GuardianLink.objects.filter(guardian=recipient, is_active=True).values_list("student_id", flat=True)
    )
    mine = [p for p in gone if p.person_id == recipient.pk or p.person_id in wards]
    names = [p.name or p.email for p in (mine or gone)]
    return list(dict.fromkeys(names)) or ["A student"]


def _about_name(row: Notification, info: SessionInfo, recipient: User) -> str:
    """The student a join or a leave is about, by name."""
    if row.about_person_id is not None:
        for participant in info.participants:
            if participant.person_id == row.about_person_id:
                return participant.name or participant.email
    if row.kind == NotificationKind.LEFT:
        return " and ".join(_left_for(info, recipient))
    return "A student"


def _texts(row: Notification, info: SessionInfo, recipient: User, when: str) -> tuple[str, str]:
    """The subject and the opening line of a notice, as this recipient reads it."""
    kind = NotificationKind(row.kind)
    if kind in (NotificationKind.JOINED, NotificationKind.LEFT):
        name = _about_name(row, info, recipient)
        if recipient.pk == info.tutor_id:  # the session goes on; its attendee list changed
            if kind == NotificationKind.JOINED:
                return (
                    f"{name} joined the tutoring session: {when}",
                    f"{name} has joined a group tutoring session.",
                )
            return (
                f"{name} left the tutoring session: {when}",
                f"{name} has left a group tutoring session; it goes on with the students below.",
            )
        if kind == NotificationKind.JOINED:
            return (
                f"Tutoring session booked: {when}",
                f"A place in a group tutoring session has been booked for {name}.",
            )
        return (
            f"Place in tutoring session cancelled: {when}",
            f"{name}'s place in a group tutoring session has been cancelled; the session goes on without them.",
        )
    offset = _offset_words(row.offset_min or 0)
    return {
        NotificationKind.BOOKED: (
            f"Tutoring session booked: {when}",
            "A tutoring session has been booked.",
        ),
        NotificationKind.RESCHEDULED: (
            f"Tutoring session moved to {when}",
            "A tutoring session has been moved to a new time.",
        ),
        NotificationKind.CANCELLED: (
            f"Tutoring session cancelled: {when}",
            "A tutoring session has been cancelled.",
        ),
        NotificationKind.REMINDER: (
            f"Reminder: tutoring session {offset}, {when}",
            f"A reminder: your tutoring session starts {offset}.",
        ),
    }[kind]


def build_message(row: Notification, info: SessionInfo, recipient: User) -> EmailMessage:
    when = local_when(info, recipient.time_zone)
    subject, opening = _texts(row, info, recipient, when)
    what = info.subject or info.class_title or "tutoring"
    students = ", ".join(
        p.name or p.email for p in info.participants if p.status == "booked" or info.cancelled
    )
    lines = [
        f"Hello {recipient.full_name or recipient.email},",
        "",
        opening,
        "",
        f"When: {when}",
        f"What: {what}",
        f"Tutor: {info.tutor_name}",
    ]
    if students:
        lines.append(f"Student{'s' if ',' in students else ''}: {students}")
    if info.class_title:
        lines.append(f"Class: {info.class_title}")
    lines += ["", f"{settings.PUBLIC_BASE_URL}/"]
    message = EmailMessage(
        subject=subject,
        body="\n".join(lines) + "\n",
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[recipient.email],
        headers={"X-Tutoring-Session": str(info.id)},
    )
    if row.kind == NotificationKind.LEFT and recipient.pk != info.tutor_id:
        # For the student who left (and their side) the session is off their calendar.
        method = "CANCEL"
        text = calendars_api.calendar_text([calendars_api.session_event(info, cancelled=True)], method=method)
        part = MIMEText(text.decode("utf-8"), "calendar", "utf-8")
        part.set_param("method", method)
        part.add_header("Content-Disposition", "attachment", filename="session.ics")
        message.attach(part)
    elif row.kind != NotificationKind.REMINDER:
        method, text = calendars_api.session_invitation(info)
        part = MIMEText(text.decode("utf-8"), "calendar", "utf-8")
        part.set_param("method", method)
        part.add_header("Content-Disposition", "attachment", filename="session.ics")
        message.attach(part)
    return message


# --- reminders ---------------------------------------------------------------------------


def reminder_offset_due(offsets: list[int], *, start: dt.datetime, now: dt.datetime) -> int | None:
    """The one reminder a session is due for now: the smallest offset whose time has come
    (start - offset <= now < start). Larger offsets whose time passed unsent (a job that
    was down, a session booked late) are not sent late: the nearer one replaces them."""
    if now >= start:
        return None
    left = start - now
    fitting = [o for o in offsets if isinstance(o, int) and o > 0 and dt.timedelta(minutes=o) >= left]
    return min(fitting) if fitting else None


def reminders_run(*, now: dt.datetime | None = None) -> list[uuid.UUID]:
    """Beat: make the reminder rows whose time has come and return the ids still to send.

    Safe to run twice at once: the rows are inserted with ON CONFLICT DO NOTHING under
    the unique (session, person, offset, start) constraint, and each is sent by whoever
    claims it (``notification_deliver``), so every reminder goes out once.
    """
    from tutoring_core.messaging.services import people_concerned
    from tutoring_core.scheduling.selectors import policy_for, reminder_offsets_max

    now = now or timezone.now()
    horizon = now + dt.timedelta(minutes=reminder_offsets_max())
    sessions = scheduling_api.sessions_starting_between(now + dt.timedelta(microseconds=1), horizon)
    offsets_of: dict[uuid.UUID, list[int]] = {}
    # Reminders already made (by an earlier run) need not be worked out again: the job
    # runs every minute over a day of sessions. Someone who joins a session after its
    # reminder went out has had the booking notice instead.
    made = set(
        Notification.objects.filter(
            kind=NotificationKind.REMINDER, session_id__in=[info.id for info in sessions]
        ).values_list("session_id", "offset_min", "session_start")
    )
    wanted: list[Notification] = []
    for info in sessions:
        if info.tenant_id not in offsets_of:
            offsets_of[info.tenant_id] = list(policy_for(info.tenant_id).reminder_offsets_min or [])
        offset = reminder_offset_due(offsets_of[info.tenant_id], start=info.start, now=now)
        if offset is None or (info.id, offset, info.start) in made:
            continue
        for person in people_concerned(info, change=NotificationKind.BOOKED):
            wanted.append(
                Notification(
                    tenant_id=info.tenant_id,
                    session_id=info.id,
                    recipient_id=person,
                    kind=NotificationKind.REMINDER,
                    sequence=info.sequence,
                    session_start=info.start,
                    offset_min=offset,
                    next_attempt_at=now,
                )
            )
    if not wanted:
        return _pending_reminders(now)
    with_email = set(
        User.objects.filter(pk__in={w.recipient_id for w in wanted})
        .exclude(email="")
        .values_list("pk", flat=True)
    )
    Notification.objects.bulk_create(
        [w for w in wanted if w.recipient_id in with_email], ignore_conflicts=True
    )
    return _pending_reminders(now)


def _pending_reminders(now: dt.datetime) -> list[uuid.UUID]:
    """Reminders due to be sent (new ones, and any an earlier run made but did not send)."""
    return list(
        Notification.objects.filter(
            kind=NotificationKind.REMINDER,
            status=NotificationStatus.PENDING,
            next_attempt_at__lte=now,
            session_start__gt=now,
        )
        .order_by("session_start", "pk")
        .values_list("pk", flat=True)
    )


def notifications_sweep(*, now: dt.datetime | None = None) -> list[uuid.UUID]:
    """Beat: rows whose enqueue was lost, whose retry time came, or whose worker died."""
    now = now or timezone.now()
    return list(
        Notification.objects.filter(
            Q(status=NotificationStatus.PENDING, next_attempt_at__lte=now)
            | Q(status=NotificationStatus.SENDING, lease_expires_at__lt=now)
        )
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)[:1000]
    )
