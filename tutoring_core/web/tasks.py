from __future__ import annotations

from celery import shared_task
from django.core.cache import cache
from django.utils import timezone

HEARTBEAT_KEY = "celery:worker-heartbeat"


@shared_task(name="web.heartbeat", ignore_result=True)
def heartbeat() -> str:
    """Beat runs this every minute; /readyz reports how long ago a worker ran it."""
    now = timezone.now().isoformat()
    cache.set(HEARTBEAT_KEY, now, timeout=3600)
    return now
