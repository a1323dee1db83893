"""Writes for calendar feeds and CalDAV pushes (issue 12)."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
import uuid
from collections.abc import Iterable
from urllib.parse import urljoin, urlsplit

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from tutoring_core import http
from tutoring_core.accounts.models import User
from tutoring_core.calendars import ics
from tutoring_core.calendars.models import (
    CalDAVAccount,
    CalendarFeed,
    CalendarObject,
    CalendarPush,
    PushStatus,
)
from tutoring_core.rows import save_changed
from tutoring_core.scheduling import api as scheduling_api
from tutoring_core.scheduling.data import SessionInfo

logger = logging.getLogger(__name__)


class CalendarError(Exception):
    """Bad input for a calendar setting; ``reason`` is for the person, ``field`` names the input."""

    def __init__(self, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


class PushRetry(Exception):
    """The CalDAV server may answer later (timeout, network, 429, 5xx)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# --- feeds -------------------------------------------------------------------------------


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@transaction.atomic
def feed_token_reset(*, person: User) -> str:
    """Give the person a new secret feed token (the old URL stops working). Returns the
    token, which is shown once in the URL and stored only as its SHA-256."""
    if person.tenant_id is None:
        raise CalendarError("Only people of a district have a calendar feed.")
    token = secrets.token_urlsafe(32)  # 256 bits
    CalendarFeed.objects.update_or_create(
        person=person,
        defaults={"tenant_id": person.tenant_id, "token_hash": _token_hash(token), "token": token},
    )
    return token


def feed_token_of(person: User) -> str:
    """The person's current feed token, made on first use."""
    feed = CalendarFeed.objects.filter(person=person).first()
    if feed is not None and feed.token:
        return feed.token
    return feed_token_reset(person=person)


def feed_person(token: str) -> User | None:
    """The person whose feed ``token`` opens, or None. The lookup is by the token's hash
    (an index probe on a digest leaks nothing about other tokens)."""
    if not token or len(token) > 128:
        return None
    feed = (
        CalendarFeed.objects.select_related("person", "person__tenant")
        .filter(token_hash=_token_hash(token))
        .first()
    )
    if feed is None or not feed.person.is_active or feed.person.tenant_id != feed.tenant_id:
        return None
    # Recorded at most once an hour: a calendar app polling must not write every time.
    now = timezone.now()
    if feed.last_fetched_at is None or now - feed.last_fetched_at > dt.timedelta(hours=1):
        CalendarFeed.objects.filter(pk=feed.pk).update(last_fetched_at=now)
    return feed.person


def feed_text(person: User, *, now: dt.datetime | None = None) -> bytes:
    """The person's sessions from FEED_PAST_DAYS ago to FEED_FUTURE_DAYS ahead, cancelled
    ones as STATUS:CANCELLED so subscribed calendars remove or strike them."""
    now = now or timezone.now()
    sessions = scheduling_api.sessions_for_person(
        person.pk,
        now - dt.timedelta(days=settings.CALENDARS_FEED_PAST_DAYS),
        now + dt.timedelta(days=settings.CALENDARS_FEED_FUTURE_DAYS),
    )
    events = [
        ics.session_event(s, cancelled=_cancelled_for(s, person)) for s in sessions if s.status != "held"
    ]
    return ics.calendar_text(events, name="Tutoring sessions")


def _cancelled_for(info: SessionInfo, person: User) -> bool:
    """A student who gave up their place in a group session sees it cancelled."""
    if info.cancelled:
        return True
    mine = [p for p in info.participants if p.person_id == person.pk]
    return bool(mine) and all(p.status != "booked" for p in mine) and info.tutor_id != person.pk


# --- CalDAV accounts -----------------------------------------------------------------------


@transaction.atomic
def caldav_account_set(*, person: User, collection_url: str, username: str, password: str) -> CalDAVAccount:
    """Connect (or change) the person's CalDAV calendar collection. An empty password
    keeps the stored one."""
    if person.tenant_id is None:
        raise CalendarError("Only people of a district can connect a calendar.")
    url = (collection_url or "").strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise CalendarError("Give the calendar's address, starting with https://.", "collection_url")
    if parts.scheme == "http" and not settings.CALENDARS_CALDAV_ALLOW_HTTP:
        raise CalendarError("The calendar's address must start with https://.", "collection_url")
    if len(url) > 500:
        raise CalendarError("The calendar's address is longer than 500 characters.", "collection_url")
    if not url.endswith("/"):
        url += "/"
    username = (username or "").strip()
    if not username or len(username) > 200:
        raise CalendarError("Give the user name (at most 200 characters).", "username")
    existing = CalDAVAccount.objects.select_for_update().filter(person=person).first()
    if existing is None:
        if not password:
            raise CalendarError("Give the password.", "password")
        account = CalDAVAccount.objects.create(
            tenant_id=person.tenant_id,
            person=person,
            collection_url=url,
            username=username,
            password=password,
        )
        _push_upcoming(account)
        return account
    if existing.collection_url != url:
        # Another calendar: what we stored in the old one is not there.
        existing.calendar_objects.all().delete()
    changes = {"collection_url": url, "username": username, "is_active": True, "last_error": ""}
    if password:
        changes["password"] = password
    save_changed(existing, changes)
    _push_upcoming(existing)
    return existing


def _push_upcoming(account: CalDAVAccount) -> None:
    """A newly connected (or changed) calendar gets the person's upcoming sessions, not
    only those that change from now on. Already there at the same SEQUENCE: skipped."""
    now = timezone.now()
    sessions = scheduling_api.sessions_for_person(
        account.person_id, now, now + dt.timedelta(days=settings.CALENDARS_FEED_FUTURE_DAYS)
    )
    stored = dict(
        CalendarObject.objects.filter(account=account, deleted=False).values_list("session_id", "sequence")
    )
    rows = [
        CalendarPush(
            tenant_id=account.tenant_id,
            account=account,
            session_id=info.id,
            change="connected",
            sequence=info.sequence,
            next_attempt_at=now,
        )
        for info in sessions
        if info.status == "booked" and stored.get(info.id) != info.sequence
    ]
    CalendarPush.objects.filter(
        account=account, status=PushStatus.PENDING, session_id__in=[row.session_id for row in rows]
    ).update(status=PushStatus.SUPERSEDED, updated_at=now)
    push_enqueue_on_commit(row.pk for row in CalendarPush.objects.bulk_create(rows))


def caldav_account_disconnect(*, person: User) -> bool:
    return CalDAVAccount.objects.filter(person=person).delete()[0] > 0


# --- pushes --------------------------------------------------------------------------------


def session_push_queue(*, info: SessionInfo, change: str, people: Iterable[uuid.UUID]) -> list[uuid.UUID]:
    """In the caller's transaction: one push row per CalDAV-connected person concerned,
    superseding their pending older pushes of the session; sent after commit."""
    now = timezone.now()
    accounts = list(
        CalDAVAccount.objects.filter(person_id__in=list(people), tenant_id=info.tenant_id, is_active=True)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    if not accounts:
        return []
    CalendarPush.objects.filter(
        account_id__in=accounts, session_id=info.id, status=PushStatus.PENDING
    ).update(status=PushStatus.SUPERSEDED, updated_at=now)
    rows = CalendarPush.objects.bulk_create(
        [
            CalendarPush(
                tenant_id=info.tenant_id,
                account_id=account,
                session_id=info.id,
                change=change,
                sequence=info.sequence,
                next_attempt_at=now,
            )
            for account in accounts
        ]
    )
    ids = [row.pk for row in rows]
    push_enqueue_on_commit(ids)
    return ids


def push_enqueue_on_commit(ids: Iterable[uuid.UUID]) -> None:
    id_list = [str(i) for i in ids]
    if not id_list:
        return

    def send() -> None:
        from tutoring_core.calendars.tasks import calendar_push

        for push_id in id_list:
            try:
                calendar_push.delay(push_id)
            except Exception:  # the sweep finds it; a broker hiccup must not fail the booking
                logger.exception("Could not enqueue calendar push %s", push_id)

    transaction.on_commit(send)


def _claim(push_id: uuid.UUID, now: dt.datetime) -> bool:
    due = Q(status=PushStatus.PENDING, next_attempt_at__lte=now) | Q(
        status=PushStatus.SENDING, lease_expires_at__lt=now
    )
    return (
        CalendarPush.objects.filter(due, pk=push_id).update(
            status=PushStatus.SENDING,
            lease_expires_at=now + dt.timedelta(seconds=settings.CALENDARS_PUSH_LEASE_SECONDS),
            attempts=F("attempts") + 1,
            updated_at=now,
        )
        == 1
    )


def _object_href(account: CalDAVAccount, session_id: uuid.UUID) -> str:
    # The resource name is ours to choose (RFC 4791 5.3.2); the session id needs no escaping.
    return urljoin(account.collection_url, f"{session_id}.ics")


def _put(account: CalDAVAccount, href: str, body: bytes, *, etag: str) -> str:
    headers = {"Content-Type": "text/calendar; charset=utf-8"}
    if etag:
        headers["If-Match"] = etag
    else:
        headers["If-None-Match"] = "*"
    response = http.request(
        "PUT",
        href,
        data=body,
        headers=headers,
        auth=(account.username, account.password),
        allow_redirects=False,
    )
    return response.headers.get("ETag", "")


def _current_etag(account: CalDAVAccount, href: str) -> str:
    response = http.request(
        "GET",
        href,
        auth=(account.username, account.password),
        allow_redirects=False,
        raise_for_status=False,
    )
    if response.status_code == 404:
        return ""
    if response.status_code >= 400:
        raise http.OutboundHTTPError(
            f"GET {href} answered {response.status_code}", url=href, status=response.status_code
        )
    return response.headers.get("ETag", "")


def push_deliver(*, push_id: uuid.UUID) -> str:
    """Bring one session's event in one CalDAV collection up to date. Returns the push's
    final or current status. Raises PushRetry when the server may answer later."""
    now = timezone.now()
    if not _claim(push_id, now):
        return CalendarPush.objects.filter(pk=push_id).values_list("status", flat=True).first() or "missing"
    push = CalendarPush.objects.select_related("account", "account__person").get(pk=push_id)
    account = push.account
    if not account.is_active:
        return _finish(push, PushStatus.FAILED, "The calendar was disconnected.")
    try:
        info = scheduling_api.session_info(push.session_id)
    except scheduling_api.NotFound:
        return _finish(push, PushStatus.FAILED, "The session no longer exists.")
    if info.tenant_id != account.tenant_id:
        return _finish(push, PushStatus.FAILED, "The session belongs to another district.")
    obj, _created = CalendarObject.objects.get_or_create(
        account=account,
        session_id=info.id,
        defaults={"tenant_id": account.tenant_id, "href": _object_href(account, info.id)},
    )
    # A student who left a group session sees it cancelled in their calendar.
    body = ics.calendar_text([ics.session_event(info, cancelled=_cancelled_for(info, account.person))])
    try:
        try:
            etag = _put(account, obj.href, body, etag=obj.etag)
        except http.OutboundHTTPError as exc:
            if exc.status != 412:
                raise
            # Our ETag is stale (someone edited the event, or a retried PUT landed):
            # the session is ours, so read the current ETag and write over it once.
            current = _current_etag(account, obj.href)
            etag = _put(account, obj.href, body, etag=current)
    except http.OutboundHTTPError as exc:
        if exc.transient:
            _release_for_retry(push, str(exc), exc.status)
            raise PushRetry(str(exc), retry_after=exc.retry_after) from exc
        CalDAVAccount.objects.filter(pk=account.pk).update(
            last_error=str(exc)[:1000], updated_at=timezone.now()
        )
        return _finish(push, PushStatus.FAILED, str(exc), status_code=exc.status)
    if not etag:
        # Some servers answer a PUT without an ETag (RFC 4791 5.3.4): read it back.
        try:
            etag = _current_etag(account, obj.href)
        except http.OutboundHTTPError:
            etag = ""
    obj.etag = etag
    obj.sequence = info.sequence
    obj.deleted = False
    obj.save(update_fields=["etag", "sequence", "deleted", "updated_at"])
    CalDAVAccount.objects.filter(pk=account.pk).update(last_pushed_at=timezone.now(), last_error="")
    return _finish(push, PushStatus.DONE, "")


def _release_for_retry(push: CalendarPush, error: str, status: int | None) -> None:
    CalendarPush.objects.filter(pk=push.pk, status=PushStatus.SENDING).update(
        status=PushStatus.PENDING,
        lease_expires_at=None,
        last_error=error[:2000],
        last_status_code=status,
        next_attempt_at=timezone.now() + retry_delay(push.attempts),
        updated_at=timezone.now(),
    )


def retry_delay(attempts: int) -> dt.timedelta:
    """Doubling from CALENDARS_RETRY_BASE_SECONDS, at most an hour."""
    return dt.timedelta(seconds=min(3600, settings.CALENDARS_RETRY_BASE_SECONDS * 2 ** max(0, attempts - 1)))


def push_give_up(*, push_id: uuid.UUID, error: str) -> None:
    """The task's retries ran out: record the terminal state."""
    CalendarPush.objects.filter(pk=push_id, status__in=[PushStatus.PENDING, PushStatus.SENDING]).update(
        status=PushStatus.FAILED, last_error=error[:2000], lease_expires_at=None, updated_at=timezone.now()
    )


def _finish(push: CalendarPush, status: str, error: str, *, status_code: int | None = None) -> str:
    now = timezone.now()
    CalendarPush.objects.filter(pk=push.pk).update(
        status=status,
        last_error=error[:2000],
        last_status_code=status_code,
        lease_expires_at=None,
        done_at=now if status == PushStatus.DONE else None,
        updated_at=now,
    )
    return status


def pushes_sweep(*, now: dt.datetime | None = None) -> list[uuid.UUID]:
    """Beat: pushes whose enqueue was lost, or whose worker died, are due again."""
    now = now or timezone.now()
    stale = now - dt.timedelta(seconds=settings.CALENDARS_PUSH_LEASE_SECONDS)
    ids = list(
        CalendarPush.objects.filter(
            Q(status=PushStatus.PENDING, next_attempt_at__lte=stale)
            | Q(status=PushStatus.SENDING, lease_expires_at__lt=now)
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:500]
    )
    return ids
