"""Celery tasks of the LTI Advantage services. They take ids, call one service,
and are safe to run twice (acks_late redelivers a task whose worker died)."""

from __future__ import annotations

import logging
import random
import uuid
from functools import partial

from celery import shared_task
from django.conf import settings
from django.db import transaction

from lti_tool.advantage import delivery, selectors, services
from lti_tool.advantage.models import AGS_DESTINATION
from lti_tool.advantage.platforms import classes_with_memberships
from tutoring_core.progress import api as progress

logger = logging.getLogger(__name__)

# Longer waits are left to the sweeper: a countdown task sits unacknowledged in a
# worker, and Redis would redeliver it after the broker's visibility timeout.
MAX_COUNTDOWN = 600.0
# The sweeper leaves entries alone for this long after they fall due, since their
# own countdown task normally picks them up; it exists for tasks that were lost
# (and, measured in bench/ags.py, it also carries retries whose countdown task is
# slow to fire under a large backlog). A re-enqueued entry whose task is still
# queued costs one claim that finds nothing.
SWEEP_GRACE_SECONDS = 30.0
NRPS_MAX_RETRIES = 6


@shared_task(name="lti_advantage.deliver_score", ignore_result=True)
def deliver_score(entry_id: str) -> str:
    outcome = delivery.score_deliver(entry_id=uuid.UUID(entry_id))
    if outcome.kind in ("retry", "deferred") and outcome.delay <= MAX_COUNTDOWN:
        deliver_score.apply_async(args=[entry_id], countdown=outcome.delay)
    return outcome.kind


def enqueue_deliveries(entry_ids: list[uuid.UUID]) -> None:
    """The progress outbox's notifier for AGS entries (runs after commit)."""
    for entry_id in entry_ids:
        deliver_score.delay(str(entry_id))


@shared_task(name="lti_advantage.sweep_score_outbox", ignore_result=True)
def sweep_score_outbox(limit: int = 2000, grace_seconds: float = SWEEP_GRACE_SECONDS) -> int:
    """Re-enqueue deliveries that are due but have no live task: their task was lost
    with a broker, or their worker died mid-delivery (the lease ran out)."""
    due = progress.outbox_due(kind=AGS_DESTINATION, limit=limit, grace_seconds=grace_seconds)
    enqueue_deliveries(due)
    return len(due)


@shared_task(
    name="lti_advantage.sync_membership", bind=True, ignore_result=True, max_retries=NRPS_MAX_RETRIES
)
def sync_membership(self, sync_id: str) -> str:  # type: ignore[no-untyped-def]
    try:
        sync = services.membership_sync_run(sync_id=uuid.UUID(sync_id))
    except services.ServiceError as exc:
        if self.request.retries >= NRPS_MAX_RETRIES:
            services.membership_sync_give_up(
                sync_id=uuid.UUID(sync_id), error=f"Gave up after retries: {exc}"
            )
            return "failed"
        base = settings.LTI_AGS_BACKOFF_BASE_SECONDS * 2**self.request.retries
        delay = max(exc.retry_after or 0.0, base * (0.5 + random.random() / 2))
        raise self.retry(countdown=delay, exc=exc) from exc
    return str(sync.status)


@shared_task(name="lti_advantage.sync_line_item", bind=True, ignore_result=True, max_retries=NRPS_MAX_RETRIES)
def sync_line_item(self, line_item_id: str) -> str:  # type: ignore[no-untyped-def]
    """Find or create a placement's gradebook column on the platform."""
    try:
        services.lineitem_sync(line_item_id=uuid.UUID(line_item_id))
    except services.ServiceError as exc:
        if not exc.transient or self.request.retries >= NRPS_MAX_RETRIES:
            logger.warning("Line item %s could not be set up: %s", line_item_id, exc)
            return "failed"
        base = settings.LTI_AGS_BACKOFF_BASE_SECONDS * 2**self.request.retries
        raise self.retry(
            countdown=max(exc.retry_after or 0.0, base * (0.5 + random.random() / 2)), exc=exc
        ) from exc
    return "synced"


@shared_task(name="lti_advantage.schedule_membership_syncs", ignore_result=True)
def schedule_membership_syncs() -> int:
    """Beat: queue a class-list sync for every class this app serves (it has a
    gradable placement or has been synced before) whose LMS context has NRPS."""
    queued = 0
    for source in classes_with_memberships(selectors.served_classes()):
        sync, created = services.membership_sync_request(
            tenant=source.tenant,
            class_id=source.class_id,
            registration_id=source.registration_id,
            memberships_url=source.memberships_url,
        )
        if created:
            transaction.on_commit(partial(sync_membership.delay, str(sync.pk)))
            queued += 1
    return queued
