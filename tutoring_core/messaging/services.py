"""Writes for session notices and reminders: outbox rows first, then a task sends each."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Iterable

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from tutoring_core.accounts.models import GuardianLink, User
from tutoring_core.messaging.models import Notification, NotificationKind, NotificationStatus
from tutoring_core.scheduling import api as scheduling_api
from tutoring_core.scheduling.data import SessionInfo

logger = logging.getLogger(__name__)

CHANGES = (
    NotificationKind.BOOKED,
    NotificationKind.RESCHEDULED,
    NotificationKind.CANCELLED,
    NotificationKind.LEFT,
    NotificationKind.JOINED,
)
# A join or a leave of a group session concerns the tutor and that student's side only.
ONE_PLACE = (NotificationKind.LEFT, NotificationKind.JOINED)


def people_concerned(
    info: SessionInfo, *, change: str, person_id: uuid.UUID | None = None
) -> list[uuid.UUID]:
    """The tutor, each student, their guardians and whoever booked, in a stable order.

    A cancelled session concerns its former students too; otherwise only booked ones.
    A student joining or leaving a group session (``joined``/``left``, ``person_id`` the
    student) concerns the tutor, that student, their guardians and whoever booked their
    place: not the other students, whose session has not changed for them.
    """
    from tutoring_core.scheduling.selectors import session_booker_ids, session_place_booker_ids

    if change in ONE_PLACE:
        if person_id is None:
            raise ValueError("A join or a leave names the student (person_id).")
        students = [person_id]
    elif change == NotificationKind.CANCELLED:
        students = [p.person_id for p in info.participants]
    else:
        students = [p.person_id for p in info.participants if p.status == "booked"]
    guardians = list(
        GuardianLink.objects.filter(tenant_id=info.tenant_id, student_id__in=students, is_active=True)
        .order_by("student_id", "guardian_id")
        .values_list("guardian_id", flat=True)
    )
    if change in ONE_PLACE:
        bookers = sorted(session_place_booker_ids(info.id, student_id=students[0]))
    else:
        bookers = sorted(session_booker_ids(info.id))
    ordered = list(dict.fromkeys([info.tutor_id, *students, *guardians, *bookers]))
    # Only active people of the session's tenant (a booker may have left the district).
    present = set(
        User.objects.filter(pk__in=ordered, tenant_id=info.tenant_id, is_active=True).values_list(
            "pk", flat=True
        )
    )
    return [p for p in ordered if p in present]


def session_changed(
    *,
    session_id: uuid.UUID,
    change: str,
    actor_id: uuid.UUID | None,
    person_id: uuid.UUID | None = None,
) -> None:
    """Queue the notices of a booking, reschedule, cancel, join or leave, in the caller's
    transaction.

    One email row per person concerned (idempotent: a person hears of a change at a
    given SEQUENCE once), one calendar push per CalDAV-connected person; the sends are
    enqueued when the caller's transaction commits, so a rolled-back booking sends
    nothing. A held session concerns nobody yet (its confirmation will). ``joined`` and
    ``left`` (one student took or gave up a place in a group session; scheduling bumps
    the SEQUENCE, so each join's notices are new rows, never duplicates of the first
    booking's) name that student as ``person_id``.
    """
    if change not in CHANGES:
        raise ValueError(f"Unknown session change {change!r}.")
    info = scheduling_api.session_info(session_id)
    if info.status in ("held", "expired"):
        return
    people = people_concerned(info, change=change, person_id=person_id)
    now = timezone.now()
    with transaction.atomic():
        stale_older(info, change=change, people=people, person_id=person_id).update(
            status=NotificationStatus.SUPERSEDED, updated_at=now
        )
        _reminders_drop_stale(info, now=now)
        with_email = set(User.objects.filter(pk__in=people).exclude(email="").values_list("pk", flat=True))
        Notification.objects.bulk_create(
            [
                Notification(
                    tenant_id=info.tenant_id,
                    session_id=info.id,
                    recipient_id=person,
                    kind=change,
                    sequence=info.sequence,
                    session_start=info.start,
                    actor_id=actor_id,
                    about_person_id=person_id if change in ONE_PLACE else None,
                    next_attempt_at=now,
                )
                for person in people
                if person in with_email
            ],
            ignore_conflicts=True,
        )
        ids = list(
            Notification.objects.filter(
                session_id=info.id,
                kind=change,
                sequence=info.sequence,
                status=NotificationStatus.PENDING,
            ).values_list("pk", flat=True)
        )
        _enqueue_on_commit(ids)
        from tutoring_core.calendars import api as calendars_api

        calendars_api.session_push_queue(info=info, change=change, people=people)


def stale_older(
    info: SessionInfo, *, change: str, people: Iterable[uuid.UUID], person_id: uuid.UUID | None
) -> QuerySet[Notification]:
    """The change notices still waiting for ``people`` that this change makes stale.

    A booking, move or cancel tells the session as it now is: every older notice of
    those people is stale. A join or a leave concerns one place: it makes stale the
    older notices about that same place (a join then a leave of one student), and, for
    a leave, the older notices of people the session no longer concerns at all (the
    leaver's "booked"); the tutor's notice of the booking, or of another student's
    join, still goes out.
    """
    older = Notification.objects.filter(
        session_id=info.id,
        recipient_id__in=list(people),
        status=NotificationStatus.PENDING,
        kind__in=CHANGES,
        sequence__lt=info.sequence,
    )
    if change not in ONE_PLACE:
        return older
    stale = Q(kind__in=ONE_PLACE, about_person_id=person_id)
    if change == NotificationKind.LEFT:
        still = set(people_concerned(info, change=NotificationKind.BOOKED))
        stale |= Q(recipient_id__in=[p for p in people if p not in still])
    return older.filter(stale)


def _reminders_drop_stale(info: SessionInfo, *, now: dt.datetime) -> None:
    rows = Notification.objects.filter(
        session_id=info.id, kind=NotificationKind.REMINDER, status=NotificationStatus.PENDING
    )
    if info.status == "booked":
        rows = rows.exclude(session_start=info.start)
    rows.update(
        status=NotificationStatus.DROPPED, last_error="The session was moved or cancelled.", updated_at=now
    )


def _enqueue_on_commit(ids: Iterable[uuid.UUID]) -> None:
    id_list = [str(i) for i in ids]
    if not id_list:
        return

    def send() -> None:
        from tutoring_core.messaging.tasks import notification_send

        for notification_id in id_list:
            try:
                notification_send.delay(notification_id)
            except Exception:  # a broker hiccup must not fail a committed booking; the sweep resends
                logger.exception("Could not enqueue notification %s", notification_id)

    transaction.on_commit(send)
