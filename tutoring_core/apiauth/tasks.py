from __future__ import annotations

from celery import shared_task

from tutoring_core.apiauth.services import idempotency_purge


@shared_task(name="apiauth.purge_idempotency_records", ignore_result=True)
def purge_idempotency_records() -> int:
    """Beat runs this hourly: answers older than API_IDEMPOTENCY_TTL_HOURS are forgotten."""
    return idempotency_purge()
