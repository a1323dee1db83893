"""Celery tasks for roster sync. They take ids, and every run ends in a recorded state."""

from __future__ import annotations

import logging
import uuid

from celery import shared_task
from django.conf import settings
from django.db import transaction

from oneroster.models import RosterConnection, SyncRun
from oneroster.services import SyncRefused, sync_run_create, sync_run_execute, sync_run_give_up
from oneroster.sources import SourceUnavailable

logger = logging.getLogger(__name__)


@shared_task(
    bind=True,
    name="oneroster.sync_run",
    ignore_result=True,
    time_limit=settings.ONEROSTER_TASK_TIME_LIMIT,
    soft_time_limit=settings.ONEROSTER_TASK_TIME_LIMIT - 30,
)
def sync_run_task(self, run_id: str) -> None:  # type: ignore[no-untyped-def]
    """Execute one queued run. Only an unreachable or overloaded source (network
    errors, 429, 5xx after the client's own retries) is retried, with doubling
    delays up to ONEROSTER_MAX_RETRIES; then the run is marked failed."""
    try:
        sync_run_execute(run_id=uuid.UUID(run_id))
    except SourceUnavailable as exc:
        attempt = self.request.retries
        if attempt >= settings.ONEROSTER_MAX_RETRIES:
            sync_run_give_up(
                run_id=uuid.UUID(run_id),
                message=f"The source stayed unavailable after {attempt + 1} attempts: {exc}",
            )
            return
        countdown = min(6 * 3600, settings.ONEROSTER_RETRY_BASE_SECONDS * 2**attempt)
        logger.warning("roster source unavailable for run %s, retry in %ss: %s", run_id, countdown, exc)
        raise self.retry(exc=exc, countdown=countdown, max_retries=settings.ONEROSTER_MAX_RETRIES) from exc


def sync_run_enqueue(run: SyncRun) -> None:
    """Send the run to a worker once the transaction that queued it has committed."""
    run_id = str(run.pk)
    transaction.on_commit(lambda: sync_run_task.delay(run_id))


@shared_task(name="oneroster.scheduled_syncs", ignore_result=True)
def scheduled_syncs(mode: str) -> int:
    """Beat entry point: queue a run for every connection scheduled for ``mode``."""
    connections = RosterConnection.objects.filter(is_active=True)
    connections = (
        connections.filter(schedule_delta=True) if mode == "delta" else connections.filter(schedule_full=True)
    )
    queued = 0
    for connection in connections.select_related("tenant").order_by("pk"):
        csv_kinds = (RosterConnection.Kind.CSV, RosterConnection.Kind.CSV_UPLOAD)
        if connection.kind in csv_kinds and not (connection.csv_path or connection.upload):
            continue
        # A delta needs a baseline; a connection never synced gets a full sync instead.
        run_mode = mode if connection.delta_since or mode == "full" else SyncRun.Mode.FULL
        if connection.kind in csv_kinds and mode == "delta":
            continue  # CSV drops say bulk or delta in their own manifest: the full schedule reads them
        try:
            with transaction.atomic():
                run = sync_run_create(connection=connection, mode=run_mode)
                sync_run_enqueue(run)
        except SyncRefused as exc:
            logger.info("skipping scheduled %s sync of %s: %s", mode, connection.pk, exc)
            continue
        queued += 1
    return queued
