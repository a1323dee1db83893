"""Writes for results and their outbox. Integrations call these through api.py."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import uuid
from collections.abc import Callable, Iterable
from decimal import Decimal, InvalidOperation

from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from tutoring_core.accounts.models import Role, Tenant, User
from tutoring_core.classes.models import Class, Enrollment
from tutoring_core.progress.data import ActivityRef, OutboxItem, RecordedResult
from tutoring_core.progress.errors import ProgressError
from tutoring_core.progress.models import (
    Activity,
    ActivityProgress,
    GradingProgress,
    OutboxEntry,
    OutboxStatus,
    Result,
    ResultDestination,
    ResultSource,
)
from tutoring_core.progress.selectors import activity_ref
from tutoring_core.rows import save_changed

logger = logging.getLogger(__name__)

Notifier = Callable[[list[uuid.UUID]], None]
# destination kind -> function that enqueues delivery of new entries (after commit).
# Integrations register theirs in AppConfig.ready(); the core never imports them.
_NOTIFIERS: dict[str, Notifier] = {}

MAX_COMMENT = 4000
_FOUR_PLACES = Decimal("0.0001")


def outbox_register_notifier(*, kind: str, notify: Notifier) -> None:
    """Let the integration that owns ``kind`` hear about new outbox entries."""
    _NOTIFIERS[kind] = notify


def _notify(entries: dict[str, list[uuid.UUID]]) -> None:
    for kind, ids in entries.items():
        notifier = _NOTIFIERS.get(kind)
        if notifier is None:
            # The sweeper of that integration will find them; nothing is lost.
            continue
        try:
            notifier(ids)
        except Exception:  # a broker hiccup must not fail a committed request
            logger.exception("Could not enqueue delivery of %d %s outbox entries", len(ids), kind)


def _as_decimal(value: object, name: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ProgressError(f"{name} must be a number, not {value!r}.") from None
    if not number.is_finite():
        raise ProgressError(f"{name} must be a finite number.")
    return number.quantize(_FOUR_PLACES)


def activity_upsert(
    *, tenant: Tenant, class_id: uuid.UUID, key: str, title: str, score_maximum: object = 100
) -> ActivityRef:
    """Create or update the activity known by ``key`` in the tenant. Idempotent."""
    maximum = _as_decimal(score_maximum, "Maximum score")
    if maximum <= 0:
        raise ProgressError("The maximum score must be greater than zero.")
    title = title.strip()[:255] or "Activity"
    if not key or len(key) > 255:
        raise ProgressError("An activity key must be 1 to 255 characters.")
    if not Class.objects.filter(tenant=tenant, pk=class_id).exists():
        raise ProgressError("The class does not belong to this tenant.")
    for _attempt in range(3):
        found = Activity.objects.filter(tenant=tenant, key=key).first()
        if found is not None:
            save_changed(found, {"title": title, "score_maximum": maximum, "is_active": True})
            return activity_ref(found, created=False)
        try:
            with transaction.atomic():
                created = Activity.objects.create(
                    tenant=tenant, klass_id=class_id, key=key, title=title, score_maximum=maximum
                )
            return activity_ref(created, created=True)
        except IntegrityError:
            continue  # created concurrently by another request: read it
    raise ProgressError(f"Could not create activity {key!r}; try again.")


def destination_attach(
    *, tenant: Tenant, activity_id: uuid.UUID, kind: str, key: str, channel: str = ""
) -> bool:
    """Send the activity's future results to (kind, key) too, through ``channel``
    (the integration's rate-limited pipe, e.g. a platform registration). Returns
    True if new."""
    activity = Activity.objects.filter(tenant=tenant, pk=activity_id).first()
    if activity is None:
        raise ProgressError("No such activity in this tenant.")
    destination, created = ResultDestination.objects.get_or_create(
        activity=activity, kind=kind, key=key, defaults={"tenant": tenant, "channel": channel}
    )
    if not created:
        save_changed(destination, {"is_active": True, **({"channel": channel} if channel else {})})
    return created


@transaction.atomic
def result_record(
    *,
    tenant: Tenant,
    activity_id: uuid.UUID,
    user_id: uuid.UUID,
    score_given: object | None,
    source: str,
    score_maximum: object | None = None,
    activity_progress: str = ActivityProgress.COMPLETED,
    grading_progress: str = GradingProgress.FULLY_GRADED,
    comment: str = "",
    recorded_by: User | None = None,
    recorded_at: dt.datetime | None = None,
) -> RecordedResult:
    """Record a score and, in the same transaction, one outbox entry per destination.

    A newer result supersedes the pending (or failed) entries of older ones for
    the same destination and person, so a platform never ends on a stale grade.
    A result older than one already recorded is kept in the history but is not
    sent (it is born superseded). Raises ProgressError, writing nothing, on bad input.
    """
    # Lock the activity row: results for one activity are recorded one at a time,
    # so two concurrent scores cannot both miss each other when superseding.
    activity = Activity.objects.select_for_update().filter(tenant=tenant, pk=activity_id).first()
    if activity is None or not activity.is_active:
        raise ProgressError("No such activity in this tenant.")
    if source not in ResultSource.values:
        raise ProgressError(f"Unknown result source {source!r}.")
    if activity_progress not in ActivityProgress.values:
        raise ProgressError(f"Activity progress must be one of {', '.join(ActivityProgress.values)}.")
    if grading_progress not in GradingProgress.values:
        raise ProgressError(f"Grading progress must be one of {', '.join(GradingProgress.values)}.")
    maximum = activity.score_maximum if score_maximum is None else _as_decimal(score_maximum, "Maximum score")
    if maximum <= 0:
        raise ProgressError("The maximum score must be greater than zero.")
    given = None if score_given is None else _as_decimal(score_given, "Score")
    if given is not None and given < 0:
        raise ProgressError("A score cannot be negative.")
    if given is None and grading_progress == GradingProgress.FULLY_GRADED:
        raise ProgressError("A fully graded result needs a score.")
    if len(comment) > MAX_COMMENT:
        raise ProgressError(f"The comment is too long ({len(comment)} characters; at most {MAX_COMMENT}).")
    when = recorded_at or timezone.now()
    if timezone.is_naive(when):
        raise ProgressError("recorded_at must be timezone-aware.")
    is_member = Enrollment.objects.filter(
        tenant=tenant,
        klass_id=activity.klass_id,
        user_id=user_id,
        role=Role.STUDENT,
        status=Enrollment.Status.ACTIVE,
    ).exists()
    if not is_member:
        raise ProgressError("That person is not an active student of this activity's class.")

    result = Result.objects.create(
        tenant=tenant,
        activity=activity,
        user_id=user_id,
        score_given=given,
        score_maximum=maximum,
        activity_progress=activity_progress,
        grading_progress=grading_progress,
        comment=comment,
        source=source,
        recorded_by=recorded_by,
        recorded_at=when,
    )
    now = timezone.now()
    new_ids: list[uuid.UUID] = []
    superseded: list[uuid.UUID] = []
    to_notify: dict[str, list[uuid.UUID]] = {}
    for destination in ResultDestination.objects.filter(activity=activity, is_active=True).order_by("pk"):
        same_key = OutboxEntry.objects.filter(
            destination_kind=destination.kind, destination_key=destination.key, user_id=user_id
        )
        newer = (
            same_key.filter(result__recorded_at__gt=when)
            .exclude(status=OutboxStatus.SUPERSEDED)
            .order_by("-result__recorded_at")
            .first()
        )
        entry = OutboxEntry.objects.create(
            tenant=tenant,
            result=result,
            user_id=user_id,
            destination_kind=destination.kind,
            destination_key=destination.key,
            channel=destination.channel,
            status=OutboxStatus.SUPERSEDED if newer else OutboxStatus.PENDING,
            superseded_by=newer,
            next_attempt_at=now,
        )
        new_ids.append(entry.pk)
        if newer is not None:
            continue
        older = list(
            same_key.filter(
                status__in=(OutboxStatus.PENDING, OutboxStatus.FAILED), result__recorded_at__lte=when
            )
            .exclude(pk=entry.pk)
            .values_list("pk", flat=True)
        )
        if older:
            OutboxEntry.objects.filter(
                pk__in=older, status__in=(OutboxStatus.PENDING, OutboxStatus.FAILED)
            ).update(
                status=OutboxStatus.SUPERSEDED, superseded_by=entry, lease_expires_at=None, updated_at=now
            )
            superseded.extend(older)
        to_notify.setdefault(destination.kind, []).append(entry.pk)
    if to_notify:
        transaction.on_commit(lambda: _notify(to_notify))
    return RecordedResult(
        id=result.pk, outbox_entry_ids=tuple(new_ids), superseded_entry_ids=tuple(superseded)
    )


# --- The outbox, for integrations -------------------------------------------------


def _claimable(now: dt.datetime) -> Q:
    # Due pending work, or work whose worker died (lease ran out) mid-delivery.
    return Q(status=OutboxStatus.PENDING, next_attempt_at__lte=now) | Q(
        status=OutboxStatus.IN_FLIGHT, lease_expires_at__lt=now
    )


def outbox_claim(*, entry_id: uuid.UUID, lease_seconds: float) -> OutboxItem | None:
    """Claim one entry for delivery, or None if it is not due, done, or taken.

    Deliveries for one destination and person go one at a time (an entry waits
    while a sibling is in flight with a live lease), so scores land in order.
    """
    now = timezone.now()
    lease = now + dt.timedelta(seconds=lease_seconds)
    claimed = (
        OutboxEntry.objects.filter(_claimable(now), pk=entry_id)
        .exclude(_busy_sibling(now))
        .update(
            status=OutboxStatus.IN_FLIGHT, attempts=F("attempts") + 1, lease_expires_at=lease, updated_at=now
        )
    )
    if claimed != 1:
        return None
    return _item(OutboxEntry.objects.select_related("result").get(pk=entry_id))


def _item(entry: OutboxEntry) -> OutboxItem:
    result = entry.result
    assert entry.lease_expires_at is not None
    return OutboxItem(
        id=entry.pk,
        tenant_id=entry.tenant_id,
        destination_kind=entry.destination_kind,
        destination_key=entry.destination_key,
        user_id=entry.user_id,
        attempts=entry.attempts,
        result_id=result.pk,
        activity_id=result.activity_id,
        score_given=result.score_given,
        score_maximum=result.score_maximum,
        activity_progress=result.activity_progress,
        grading_progress=result.grading_progress,
        comment=result.comment,
        source=result.source,
        recorded_at=result.recorded_at,
        lease_expires_at=entry.lease_expires_at,
        channel=entry.channel,
    )


def _busy_sibling(now: dt.datetime) -> Exists:
    # Another entry for the same destination and person is being sent (live lease).
    return Exists(
        OutboxEntry.objects.filter(
            destination_kind=OuterRef("destination_kind"),
            destination_key=OuterRef("destination_key"),
            user_id=OuterRef("user_id"),
            status=OutboxStatus.IN_FLIGHT,
            lease_expires_at__gte=now,
        ).exclude(pk=OuterRef("pk"))
    )


def outbox_lease(*, kind: str, channel: str, limit: int, lease_seconds: float) -> list[OutboxItem]:
    """Lease up to ``limit`` entries of one channel for delivery: entries whose lease
    ran out (their worker died) first, then due pending entries, oldest first.

    Among due entries the oldest goes first, not the one due earliest: an entry on
    its retries has waited longest, and sending it as soon as its backoff allows
    runs retry chains alongside a backlog rather than all after it (bench/ags.py:
    the last retries then trail the backlog by a second or two, not by many).

    Two dispatchers never lease the same entry. On PostgreSQL the candidates are
    locked with ``SELECT ... FOR UPDATE SKIP LOCKED``, so concurrent dispatchers
    pick disjoint rows without waiting on each other; everywhere, the UPDATE
    re-checks that each row is still claimable and stamps the batch with a token,
    and only the rows carrying that token are returned (SQLite serialises the
    writes). As with :func:`outbox_claim`, one destination and person has one
    delivery in flight at a time, so scores land in order.
    """
    if limit <= 0:
        return []
    now = timezone.now()
    lease = now + dt.timedelta(seconds=lease_seconds)
    token = uuid.uuid4()
    base = OutboxEntry.objects.filter(destination_kind=kind, channel=channel).exclude(_busy_sibling(now))
    pools = (
        base.filter(status=OutboxStatus.IN_FLIGHT, lease_expires_at__lt=now),
        base.filter(status=OutboxStatus.PENDING, next_attempt_at__lte=now),
    )
    skip_locked = connection.features.has_select_for_update_skip_locked
    # SQLite has no row locks (a transaction there would lock the whole database for
    # both statements): two autocommit statements, the UPDATE re-checking each row.
    with transaction.atomic() if skip_locked else contextlib.nullcontext():
        chosen: list[uuid.UUID] = []
        keys: set[tuple[str, uuid.UUID]] = set()
        for pool in pools:
            if len(chosen) >= limit:
                break
            rows = pool.order_by("created_at")
            if skip_locked:
                rows = rows.select_for_update(skip_locked=True, of=("self",))
            for pk, key, user_id in rows.values_list("pk", "destination_key", "user_id")[
                : limit - len(chosen)
            ]:
                if (key, user_id) not in keys:  # never two of one person's scores at once
                    keys.add((key, user_id))
                    chosen.append(pk)
        if not chosen:
            return []
        OutboxEntry.objects.filter(_claimable(now), pk__in=chosen).update(
            status=OutboxStatus.IN_FLIGHT,
            attempts=F("attempts") + 1,
            lease_expires_at=lease,
            lease_token=token,
            updated_at=now,
        )
    won = OutboxEntry.objects.select_related("result").filter(
        lease_token=token, status=OutboxStatus.IN_FLIGHT
    )
    return [_item(entry) for entry in sorted(won, key=lambda e: (e.created_at, str(e.pk)))]


def outbox_release(*, item: OutboxItem) -> bool:
    """Give back a leased entry that was never sent (its attempt does not count)."""
    return outbox_mark_retry(item=item, error="", status_code=None, delay_seconds=0.0, count_attempt=False)


def outbox_next_due(*, kind: str, channel: str) -> dt.datetime | None:
    """When the channel's next entry falls due (a pending entry's next attempt, or an
    in-flight entry's lease running out); None when the channel has no open entries."""
    base = OutboxEntry.objects.filter(destination_kind=kind, channel=channel)
    moments = [
        base.filter(status=OutboxStatus.PENDING)
        .order_by("next_attempt_at")
        .values_list("next_attempt_at", flat=True)
        .first(),
        base.filter(status=OutboxStatus.IN_FLIGHT)
        .order_by("lease_expires_at")
        .values_list("lease_expires_at", flat=True)
        .first(),
    ]
    found = [moment for moment in moments if moment is not None]
    return min(found) if found else None


def outbox_due_channels(*, kind: str, within_seconds: float = 0.0) -> list[str]:
    """Channels of ``kind`` with entries due now (or within ``within_seconds``),
    including entries whose lease ran out: the ones whose dispatcher should run."""
    moment = timezone.now()
    soon = moment + dt.timedelta(seconds=within_seconds)
    ready = Q(status=OutboxStatus.PENDING, next_attempt_at__lte=soon) | Q(
        status=OutboxStatus.IN_FLIGHT, lease_expires_at__lt=soon
    )
    return sorted(
        set(OutboxEntry.objects.filter(ready, destination_kind=kind).values_list("channel", flat=True))
    )


def outbox_channels_of(*, entry_ids: Iterable[uuid.UUID]) -> list[str]:
    return sorted(set(OutboxEntry.objects.filter(pk__in=list(entry_ids)).values_list("channel", flat=True)))


def outbox_unrouted_keys(*, kind: str) -> list[str]:
    """Destination keys of ``kind`` with open entries that name no channel."""
    open_states = (OutboxStatus.PENDING, OutboxStatus.IN_FLIGHT)
    return sorted(
        set(
            OutboxEntry.objects.filter(destination_kind=kind, channel="", status__in=open_states).values_list(
                "destination_key", flat=True
            )
        )
    )


def outbox_set_channel(*, kind: str, key: str, channel: str) -> int:
    """Route a destination's future and open entries through ``channel``."""
    ResultDestination.objects.filter(kind=kind, key=key).exclude(channel=channel).update(
        channel=channel, updated_at=timezone.now()
    )
    return (
        OutboxEntry.objects.filter(destination_kind=kind, destination_key=key)
        .exclude(channel=channel)
        .update(channel=channel, updated_at=timezone.now())
    )


def _held(item: OutboxItem) -> Q:
    # Fencing: only the holder of this exact lease may record an outcome. A worker
    # that stalled past its lease (and whose entry another worker re-claimed) cannot.
    return Q(pk=item.id, status=OutboxStatus.IN_FLIGHT, lease_expires_at=item.lease_expires_at)


def outbox_mark_delivered(*, item: OutboxItem, status_code: int | None, note: str = "") -> bool:
    now = timezone.now()
    return (
        OutboxEntry.objects.filter(_held(item)).update(
            status=OutboxStatus.DELIVERED,
            delivered_at=now,
            lease_expires_at=None,
            last_status_code=status_code,
            last_error=note[:2000],
            updated_at=now,
        )
        == 1
    )


def outbox_mark_retry(
    *, item: OutboxItem, error: str, status_code: int | None, delay_seconds: float, count_attempt: bool = True
) -> bool:
    """Put the entry back to wait ``delay_seconds``. ``count_attempt=False`` when it was
    never sent (the platform was paused or over its rate), so it does not use up tries."""
    now = timezone.now()
    newer = _newer_sibling(item)
    if newer is not None:
        # A newer score arrived while this one was in flight: sending this one
        # again would only be refused (or worse, applied) after the newer one.
        return (
            OutboxEntry.objects.filter(_held(item)).update(
                status=OutboxStatus.SUPERSEDED, superseded_by=newer, lease_expires_at=None, updated_at=now
            )
            == 1
        )
    values: dict[str, object] = {
        "status": OutboxStatus.PENDING,
        "next_attempt_at": now + dt.timedelta(seconds=max(0.0, delay_seconds)),
        "lease_expires_at": None,
        "updated_at": now,
    }
    if count_attempt:
        values.update(last_error=error[:2000], last_status_code=status_code)
    else:
        values["attempts"] = F("attempts") - 1
    return OutboxEntry.objects.filter(_held(item)).update(**values) == 1


def _newer_sibling(item: OutboxItem) -> OutboxEntry | None:
    return (
        OutboxEntry.objects.filter(
            destination_kind=item.destination_kind,
            destination_key=item.destination_key,
            user_id=item.user_id,
            result__recorded_at__gt=item.recorded_at,
        )
        .exclude(status=OutboxStatus.SUPERSEDED)
        .order_by("-result__recorded_at")
        .first()
    )


def outbox_mark_failed(*, item: OutboxItem, error: str, status_code: int | None) -> bool:
    now = timezone.now()
    return (
        OutboxEntry.objects.filter(_held(item)).update(
            status=OutboxStatus.FAILED,
            lease_expires_at=None,
            last_error=error[:2000],
            last_status_code=status_code,
            updated_at=now,
        )
        == 1
    )


def outbox_due(
    *, kind: str, limit: int = 500, grace_seconds: float = 0.0, now: dt.datetime | None = None
) -> list[uuid.UUID]:
    """Entries of ``kind`` ready to be (re)sent, oldest first: for the sweeper.
    ``grace_seconds`` skips pending entries that fell due only just now (their own
    scheduled task is about to run); entries with an expired lease always count."""
    moment = now or timezone.now()
    due_before = moment - dt.timedelta(seconds=grace_seconds)
    ready = Q(status=OutboxStatus.PENDING, next_attempt_at__lte=due_before) | Q(
        status=OutboxStatus.IN_FLIGHT, lease_expires_at__lt=moment
    )
    return list(
        OutboxEntry.objects.filter(ready, destination_kind=kind)
        .order_by("next_attempt_at", "created_at")
        .values_list("pk", flat=True)[:limit]
    )


@transaction.atomic
def outbox_requeue(*, tenant: Tenant | None, entry_ids: Iterable[uuid.UUID]) -> list[uuid.UUID]:
    """Send failed entries again (an admin's "retry"). An entry whose score has been
    replaced meanwhile is marked superseded instead. Returns the requeued ids."""
    entries = OutboxEntry.objects.select_for_update().filter(
        pk__in=list(entry_ids), status=OutboxStatus.FAILED
    )
    if tenant is not None:
        entries = entries.filter(tenant=tenant)
    now = timezone.now()
    requeued: list[uuid.UUID] = []
    to_notify: dict[str, list[uuid.UUID]] = {}
    for entry in entries.select_related("result").order_by("pk"):
        newer = (
            OutboxEntry.objects.filter(
                destination_kind=entry.destination_kind,
                destination_key=entry.destination_key,
                user_id=entry.user_id,
                result__recorded_at__gt=entry.result.recorded_at,
            )
            .exclude(status=OutboxStatus.SUPERSEDED)
            .first()
        )
        if newer is not None:
            OutboxEntry.objects.filter(pk=entry.pk).update(
                status=OutboxStatus.SUPERSEDED, superseded_by=newer, updated_at=now
            )
            continue
        OutboxEntry.objects.filter(pk=entry.pk).update(
            status=OutboxStatus.PENDING, attempts=0, next_attempt_at=now, last_error="", updated_at=now
        )
        requeued.append(entry.pk)
        to_notify.setdefault(entry.destination_kind, []).append(entry.pk)
    if to_notify:
        transaction.on_commit(lambda: _notify(to_notify))
    return requeued
