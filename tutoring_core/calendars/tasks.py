"""Celery tasks for CalDAV pushes: they take ids, retry with bounded backoff, record a final state."""

from __future__ import annotations

import logging
import uuid

from celery import shared_task
from django.conf import settings

from tutoring_core.calendars.services import PushRetry, push_deliver, push_give_up, pushes_sweep

logger = logging.getLogger(__name__)


@shared_task(bind=True, name="calendars.push", ignore_result=True)
def calendar_push(self, push_id: str) -> str:  # type: ignore[no-untyped-def]
    """Push one session into one CalDAV collection; only timeouts, network errors, 429 and
    5xx are retried (doubling delays, CALENDARS_MAX_RETRIES), then the push is marked failed."""
    try:
        return push_deliver(push_id=uuid.UUID(push_id))
    except PushRetry as exc:
        attempt = self.request.retries
        if attempt >= settings.CALENDARS_MAX_RETRIES:
            push_give_up(push_id=uuid.UUID(push_id), error=f"Gave up after {attempt + 1} attempts: {exc}")
            return "failed"
        countdown = min(3600, settings.CALENDARS_RETRY_BASE_SECONDS * 2**attempt)
        if exc.retry_after:
            countdown = max(countdown, min(3600, int(exc.retry_after)))
        logger.warning("CalDAV push %s failed, retry in %ss: %s", push_id, countdown, exc)
        raise self.retry(exc=exc, countdown=countdown, max_retries=settings.CALENDARS_MAX_RETRIES) from exc


@shared_task(name="calendars.sweep", ignore_result=True)
def calendar_sweep() -> int:
    """Beat: re-enqueue pushes whose message was lost or whose worker died."""
    ids = pushes_sweep()
    for push_id in ids:
        calendar_push.delay(str(push_id))
    return len(ids)
