"""Reads shared by views and other apps (through api.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from tutoring_core.accounts.models import Tenant
from tutoring_core.progress.data import ActivityRef, LatestResult
from tutoring_core.progress.models import Activity, OutboxEntry, OutboxStatus, Result

# Which delivery state a teacher sees for a score when it has several destinations.
_WORST_FIRST = [
    OutboxStatus.FAILED,
    OutboxStatus.IN_FLIGHT,
    OutboxStatus.PENDING,
    OutboxStatus.DELIVERED,
    OutboxStatus.SUPERSEDED,
]


def activity_get(*, tenant: Tenant, activity_id: uuid.UUID) -> ActivityRef | None:
    activity = Activity.objects.filter(tenant=tenant, pk=activity_id).first()
    if activity is None:
        return None
    return activity_ref(activity)


def activity_ref(activity: Activity, *, created: bool = False) -> ActivityRef:
    """The door's value for an activity row."""
    return ActivityRef(
        id=activity.pk,
        tenant_id=activity.tenant_id,
        class_id=activity.klass_id,
        key=activity.key,
        title=activity.title,
        score_maximum=activity.score_maximum,
        created=created,
    )


def activities_for_class(*, tenant: Tenant, class_id: uuid.UUID) -> list[ActivityRef]:
    """The class's active activities, by title."""
    rows = Activity.objects.filter(tenant=tenant, klass_id=class_id, is_active=True).order_by("title")
    return [activity_ref(activity) for activity in rows]


def latest_results(
    *, tenant: Tenant, activity_ids: Iterable[uuid.UUID]
) -> dict[tuple[uuid.UUID, uuid.UUID], LatestResult]:
    """The latest result per (activity, person) for the given activities."""
    latest: dict[tuple[uuid.UUID, uuid.UUID], Result] = {}
    rows = (
        Result.objects.filter(tenant=tenant, activity_id__in=list(activity_ids))
        .order_by("activity_id", "user_id", "-recorded_at", "-created_at")
        .prefetch_related("outbox_entries")
    )
    for result in rows:
        latest.setdefault((result.activity_id, result.user_id), result)
    out: dict[tuple[uuid.UUID, uuid.UUID], LatestResult] = {}
    for key, result in latest.items():
        states = {entry.status for entry in result.outbox_entries.all()}
        status = next((s for s in _WORST_FIRST if s in states), "")
        out[key] = LatestResult(
            user_id=result.user_id,
            activity_id=result.activity_id,
            score_given=result.score_given,
            score_maximum=result.score_maximum,
            comment=result.comment,
            recorded_at=result.recorded_at,
            source=result.source,
            delivery_status=str(status),
        )
    return out


def outbox_counts(*, kind: str, tenant: Tenant | None = None) -> dict[str, int]:
    entries = OutboxEntry.objects.filter(destination_kind=kind)
    if tenant is not None:
        entries = entries.filter(tenant=tenant)
    counts = {status: 0 for status in OutboxStatus.values}
    for status in entries.values_list("status", flat=True):
        counts[status] += 1
    return counts
