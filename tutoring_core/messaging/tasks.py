"""Celery tasks for notices and reminders: they take ids, retry with bounded backoff,
and every row ends SENT, FAILED, DROPPED or SUPERSEDED."""

from __future__ import annotations

import logging
import uuid

from celery import shared_task
from django.conf import settings

from tutoring_core.messaging.delivery import (
    NotificationRetry,
    notification_deliver,
    notifications_sweep,
    reminders_run,
    retry_delay,
)

logger = logging.getLogger(__name__)


@shared_task(bind=True, name="messaging.send", ignore_result=True)
def notification_send(self, notification_id: str) -> str:  # type: ignore[no-untyped-def]
    """Send one notice; a temporary mail failure is retried (doubling, bounded)."""
    try:
        return notification_deliver(notification_id=uuid.UUID(notification_id))
    except NotificationRetry as exc:
        attempt = self.request.retries
        if attempt + 1 >= settings.MESSAGING_MAX_ATTEMPTS:
            return "failed"  # the row is already FAILED (notification_deliver counts attempts)
        countdown = int(retry_delay(attempt + 1).total_seconds())
        logger.warning("notification %s not sent, retry in %ss: %s", notification_id, countdown, exc)
        raise self.retry(exc=exc, countdown=countdown, max_retries=settings.MESSAGING_MAX_ATTEMPTS) from exc


@shared_task(name="messaging.reminders", ignore_result=True)
def reminders_task() -> int:
    """Beat entry point: reminders whose time has come, each sent once."""
    ids = reminders_run()
    for notification_id in ids:
        notification_send.delay(str(notification_id))
    return len(ids)


@shared_task(name="messaging.sweep", ignore_result=True)
def notifications_sweep_task() -> int:
    """Beat entry point: resend what a lost message or a dead worker left behind."""
    ids = notifications_sweep()
    for notification_id in ids:
        notification_send.delay(str(notification_id))
    return len(ids)
