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

from lti_tool.advantage import dispatcher, selectors, services
from lti_tool.advantage.models import AGS_DESTINATION, LineItem
from lti_tool.advantage.platforms import classes_with_memberships
from tutoring_core.progress import api as progress

logger = logging.getLogger(__name__)

NRPS_MAX_RETRIES = 6


@shared_task(name="lti_advantage.dispatch_scores", ignore_result=True)
def dispatch_scores(registration_id: str) -> str:
    """Deliver a platform's due scores for one time slice (dispatcher.py); hands
    over to a fresh run while entries remain due."""
    report = dispatcher.dispatch(registration_id, handoff=partial(_hand_over, registration_id))
    return report.reason


def _hand_over(registration_id: str, delay: float) -> None:
    dispatch_scores.apply_async(args=[registration_id], countdown=delay if delay > 0 else None)


def kick_dispatcher(registration_id: str) -> bool:
    """Make sure a dispatcher will look at the registration's outbox soon."""
    if not dispatcher.claim_kick(registration_id):
        return False
    dispatch_scores.delay(registration_id)
    return True


def enqueue_deliveries(entry_ids: list[uuid.UUID]) -> None:
    """The progress outbox's notifier for AGS entries (runs after commit): wake the
    dispatcher of each platform the entries go to."""
    channels = progress.outbox_channels_of(entry_ids=entry_ids)
    if "" in channels:
        channels = sorted(set(channels) - {""} | set(_route_unrouted()))
    for channel in channels:
        kick_dispatcher(channel)


def _route_unrouted() -> list[str]:
    """Entries written before destinations named their platform (or by a caller
    that did not say): route them through their line item's registration."""
    channels = []
    for key in progress.outbox_unrouted_keys(kind=AGS_DESTINATION):
        line_item = LineItem.objects.filter(pk=key).only("registration_id").first() if _is_uuid(key) else None
        if line_item is None:
            continue
        channel = str(line_item.registration_id)
        progress.outbox_set_channel(kind=AGS_DESTINATION, key=key, channel=channel)
        channels.append(channel)
    return channels


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


@shared_task(name="lti_advantage.deliver_score", ignore_result=True)
def deliver_score(entry_id: str) -> str:
    """The one-task-per-score entry point of earlier releases (messages may still be
    queued under this name): the entry's platform dispatcher delivers it now."""
    enqueue_deliveries([uuid.UUID(entry_id)])
    return "dispatched"


@shared_task(name="lti_advantage.sweep_score_outbox", ignore_result=True)
def sweep_score_outbox() -> int:
    """Beat: wake the dispatcher of every platform with due deliveries, including
    ones whose worker died mid-delivery (their lease ran out) and retries that fell
    due after their dispatcher stopped. Returns how many were woken."""
    channels = set(progress.outbox_due_channels(kind=AGS_DESTINATION))
    if "" in channels:
        channels = channels - {""} | set(_route_unrouted())
    return sum(kick_dispatcher(channel) for channel in sorted(channels))


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
