"""Writes for roster connections and sync runs (the pipeline's stages live in pipeline/)."""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.template.defaultfilters import filesizeformat
from django.utils import timezone

from oneroster import pipeline
from oneroster.models import RosterConnection, SyncError, SyncRun, roster_upload_name

# The report stage, for the import command and the report page.
from oneroster.pipeline.report import run_report as run_report
from oneroster.protocol.csv_source import NotUtf8
from oneroster.protocol.records import RosterProtocolError
from oneroster.sources import SourceUnavailable, open_source, upload_check
from tutoring_core.accounts import api as accounts

logger = logging.getLogger(__name__)


LIVE_STATUSES = (SyncRun.Status.QUEUED, SyncRun.Status.RUNNING, SyncRun.Status.AWAITING_APPROVAL)


class SyncRefused(Exception):
    """The request cannot start or change a run (one is already live, wrong state)."""


def sync_run_create(
    *,
    connection: RosterConnection,
    mode: str = SyncRun.Mode.FULL,
    dry_run: bool = False,
    source_path: str = "",
    requested_by: accounts.User | None = None,
) -> SyncRun:
    """Queue a run. Only one live run per connection (a unique constraint decides)."""
    if mode not in SyncRun.Mode.values:
        raise SyncRefused(f"Unknown sync mode {mode!r}.")
    if not connection.is_active:
        raise SyncRefused(f"Connection {connection.name} is switched off.")
    try:
        with transaction.atomic():
            run = SyncRun.objects.create(
                tenant=connection.tenant,
                connection=connection,
                mode=mode,
                dry_run=dry_run,
                source_path=source_path,
                requested_by=requested_by,
            )
    except IntegrityError:
        raise SyncRefused(
            f"A sync of {connection.name} is already queued, running or waiting for approval."
        ) from None
    accounts.audit_record(
        tenant=connection.tenant,
        actor=requested_by,
        action="roster.sync_requested",
        target=connection,
        details={"run": str(run.pk), "mode": mode, "dry_run": dry_run},
    )
    return run


def _finish(run: SyncRun, status: str, message: str = "", **fields: Any) -> SyncRun:
    run.status = status
    run.message = message[:5000]
    run.finished_at = timezone.now()
    run.phase = "done"
    for name, value in fields.items():
        setattr(run, name, value)
    run.save(update_fields=["status", "message", "finished_at", "phase", "updated_at", *fields])
    accounts.audit_record(
        tenant=run.tenant,
        actor=None,
        action=f"roster.sync_{status}",
        target=run.connection,
        details={
            "run": str(run.pk),
            "mode": run.mode,
            "counts": run.counts,
            "errors": run.error_count,
            "message": message[:500],
        },
    )
    return run


def sync_run_execute(*, run_id: uuid.UUID, progress: pipeline.ProgressFn | None = None) -> SyncRun:
    """Run a queued sync to a terminal state or to awaiting_approval.

    Claimed with a conditional update, so a task delivered twice runs once. A
    transient source failure puts the run back in the queue and raises
    ``SourceUnavailable`` for the task to retry; any other failure ends the run
    as failed with nothing applied beyond the chunks already committed.
    """
    # A run left "running" longer than a task may live lost its worker (killed,
    # OOM): the redelivered task takes it over and starts again from the fetch.
    stale = timezone.now() - dt.timedelta(seconds=settings.ONEROSTER_TASK_TIME_LIMIT)
    claimable = Q(status=SyncRun.Status.QUEUED) | Q(status=SyncRun.Status.RUNNING, started_at__lt=stale)
    previous = SyncRun.objects.filter(pk=run_id).values_list("status", flat=True).first()
    claimed = SyncRun.objects.filter(claimable, pk=run_id).update(
        status=SyncRun.Status.RUNNING, started_at=timezone.now(), attempts=F("attempts") + 1
    )
    if claimed == 1 and previous == SyncRun.Status.RUNNING:
        pipeline.staging_clear(SyncRun(pk=run_id))
        SyncError.objects.filter(run_id=run_id).delete()
        SyncRun.objects.filter(pk=run_id).update(staged=False, error_count=0)
    run = SyncRun.objects.select_related("connection", "connection__tenant", "tenant").get(pk=run_id)
    if claimed != 1:
        return run
    try:
        return _execute(run, progress)
    except SourceUnavailable as exc:
        pipeline.staging_clear(run)
        SyncError.objects.filter(run=run).delete()
        SyncRun.objects.filter(pk=run.pk).update(
            status=SyncRun.Status.QUEUED, message=str(exc)[:5000], phase=""
        )
        raise
    except (RosterProtocolError, pipeline.SyncAborted) as exc:
        pipeline.staging_clear(run)
        if isinstance(exc, NotUtf8):
            SyncError.objects.create(run=run, entity="", location=exc.name, line=exc.line, message=str(exc))
        else:
            SyncError.objects.create(run=run, entity="", location=_source_label(run), message=str(exc))
        # Rows read before the failure may have recorded their own errors (stored, not
        # yet counted on the run): the count covers them and the reason that stopped it.
        errors = max(run.error_count + 1, SyncError.objects.filter(run=run).count())
        return _finish(run, SyncRun.Status.FAILED, str(exc), error_count=errors)
    except Exception:
        logger.exception("roster sync %s failed", run.pk)
        pipeline.staging_clear(run)
        # The exception's text is for the operators' log, not the district's page.
        message = (
            f"The sync stopped on an unexpected error (logged as run {run.pk}). "
            "Rows applied before it stay applied; run it again, or ask the hub's operators."
        )
        SyncError.objects.create(run=run, entity="", location=_source_label(run), message=message)
        return _finish(run, SyncRun.Status.FAILED, message, error_count=run.error_count + 1)


def _source_label(run: SyncRun) -> str:
    connection = run.connection
    if run.source_path:
        return run.source_path
    if connection.kind == RosterConnection.Kind.CSV:
        return connection.csv_path
    if connection.kind == RosterConnection.Kind.CSV_UPLOAD:
        return connection.upload_name or "uploaded zip"
    return connection.base_url


class _Clock:
    """Wall seconds per phase into ``run.timings`` (a resumed run keeps the times of
    the phases it does not repeat)."""

    def __init__(self, run: SyncRun) -> None:
        self.run = run
        self.timings: dict[str, Any] = dict(run.timings or {})
        self.started = self.last = time.monotonic()

    def lap(self, phase: str) -> None:
        now = time.monotonic()
        self.timings[phase] = round(now - self.last, 3)
        self.last = now

    def save(self, *, apply: dict[str, Any] | None = None) -> None:
        if apply:
            self.timings.update(apply)
        self.timings["this_attempt"] = round(time.monotonic() - self.started, 3)
        self.run.timings = self.timings
        SyncRun.objects.filter(pk=self.run.pk).update(timings=self.timings)


def _execute(run: SyncRun, progress: pipeline.ProgressFn | None) -> SyncRun:
    clock = _Clock(run)
    try:
        return _execute_timed(run, progress, clock)
    finally:
        clock.save()


def _execute_timed(run: SyncRun, progress: pipeline.ProgressFn | None, clock: _Clock) -> SyncRun:
    fresh_statistics = False
    if not run.staged:
        run.fetch_started_at = timezone.now()
        run.phase = "fetch"
        run.save(update_fields=["fetch_started_at", "phase", "updated_at"])
        source = open_source(run)
        try:
            run.entity_modes = source.entity_modes()
            stager = pipeline.stage(run, source.records(), progress=progress)
        finally:
            source.close()
        for entity in stager.broken_entities:
            run.entity_modes[entity] = "broken"
        run.phase = "validate"
        run.save(update_fields=["entity_modes", "phase", "updated_at"])
        clock.lap("fetch_stage")
        errors_before = stager.errors
        pipeline.validate(run, stager)
        clock.lap("validate")
        # validate() analyzes the staged rows first; if it rejected none, that holds for plan().
        fresh_statistics = stager.errors == errors_before
        run.error_count = stager.errors
        run.staged = True
        run.save(update_fields=["error_count", "staged", "updated_at"])
    rekeyed = pipeline.rekeys(run)
    counts = pipeline.plan(run, rekeyed, fresh_statistics=fresh_statistics)
    run.counts = counts
    run.phase = "diff"
    run.save(update_fields=["counts", "phase", "updated_at"])
    clock.lap("diff")
    if run.error_count and not run.connection.apply_valid_rows:
        pipeline.staging_clear(run)
        return _finish(
            run,
            SyncRun.Status.FAILED,
            f"Validation found {run.error_count} error(s); nothing was applied. "
            "Fix the source, or let this connection apply valid rows only.",
        )
    if run.dry_run:
        pipeline.staging_clear(run)
        return _finish(run, SyncRun.Status.SUCCEEDED, "Dry run: nothing was applied.")
    if not run.approved:
        guard = pipeline.guard_check(run, counts)
        clock.lap("guard")
        if guard:
            run.guard = guard
            run.status = SyncRun.Status.AWAITING_APPROVAL
            run.phase = "guard"
            run.message = (
                "This sync would deactivate more than {:.0%} of: {}. An admin must approve it.".format(
                    guard["limit"], ", ".join(sorted(guard["entities"]))
                )
            )
            run.save(update_fields=["guard", "status", "phase", "message", "updated_at"])
            accounts.audit_record(
                tenant=run.tenant,
                actor=None,
                action="roster.sync_paused",
                target=run.connection,
                details={"run": str(run.pk), "guard": guard},
            )
            return run
    applier = pipeline.Applier(run=run, rekeyed=rekeyed, progress=progress)
    clock.last = time.monotonic()
    applier.apply(counts)
    clock.save(apply={"apply": applier.timings})
    clock.last = time.monotonic()
    pipeline.staging_clear(run)
    clock.lap("cleanup")
    RosterConnection.objects.filter(pk=run.connection_id).update(delta_since=run.fetch_started_at)
    message = f"Applied with {run.error_count} rejected row(s)." if run.error_count else "Applied."
    return _finish(
        run, SyncRun.Status.SUCCEEDED, message, progress_done=applier.done, progress_total=applier.total
    )


def sync_run_approve(*, run: SyncRun, actor: accounts.User | None) -> SyncRun:
    """Let a paused run go on (it resumes from its staged rows, past the guard)."""
    updated = SyncRun.objects.filter(pk=run.pk, status=SyncRun.Status.AWAITING_APPROVAL).update(
        status=SyncRun.Status.QUEUED, approved=True, decided_by=actor, phase=""
    )
    if updated != 1:
        raise SyncRefused("Only a run that is waiting for approval can be approved.")
    run.refresh_from_db()
    accounts.audit_record(
        tenant=run.tenant,
        actor=actor,
        action="roster.sync_approved",
        target=run.connection,
        details={"run": str(run.pk), "guard": run.guard},
    )
    return run


def sync_run_reject(*, run: SyncRun, actor: accounts.User | None) -> SyncRun:
    updated = SyncRun.objects.filter(pk=run.pk, status=SyncRun.Status.AWAITING_APPROVAL).update(
        status=SyncRun.Status.REJECTED,
        decided_by=actor,
        finished_at=timezone.now(),
        phase="done",
        message="Rejected by an admin; nothing was applied.",
    )
    if updated != 1:
        raise SyncRefused("Only a run that is waiting for approval can be rejected.")
    run.refresh_from_db()
    pipeline.staging_clear(run)
    accounts.audit_record(
        tenant=run.tenant,
        actor=actor,
        action="roster.sync_rejected",
        target=run.connection,
        details={"run": str(run.pk), "guard": run.guard},
    )
    return run


class UploadRefused(Exception):
    """An uploaded roster zip was not stored; the message says why."""


def connection_upload_store(
    *, connection: RosterConnection, upload: UploadedFile, actor: accounts.User | None
) -> RosterConnection:
    """Store ``upload`` as the connection's roster zip, in the default file storage.

    Checked before anything is written (size, zip safety, a OneRoster file inside);
    the new zip gets a fresh name, so a run reading the old one is never cut short,
    and the old one is deleted only once the new one is committed."""
    if connection.kind != RosterConnection.Kind.CSV_UPLOAD:
        raise UploadRefused(
            f"{connection.name} does not take uploads; set its kind to "
            f"“{RosterConnection.Kind.CSV_UPLOAD.label}” first."
        )
    if upload.size is None or upload.size > settings.ONEROSTER_UPLOAD_MAX_BYTES:
        limit = filesizeformat(settings.ONEROSTER_UPLOAD_MAX_BYTES)
        raise UploadRefused(f"The file is larger than the {limit} limit.")
    try:
        upload.seek(0)
        summary = upload_check(upload.file)  # type: ignore[arg-type]
    except RosterProtocolError as exc:
        raise UploadRefused(str(exc)) from None
    upload.seek(0)
    storage = connection.upload.storage
    with transaction.atomic():
        locked = RosterConnection.objects.select_for_update().get(pk=connection.pk)
        if SyncRun.objects.filter(connection=locked, status__in=LIVE_STATUSES).exists():
            raise UploadRefused(
                f"A sync of {connection.name} is queued, running or waiting for approval; "
                "upload the new zip when it has finished."
            )
        old_name = locked.upload.name
        new_name = storage.save(roster_upload_name(locked, upload.name or ""), upload)
        try:
            locked.upload.name = new_name
            locked.upload_name = Path(upload.name or "roster.zip").name[:255]
            locked.upload_size = upload.size
            locked.uploaded_at = timezone.now()
            locked.save(update_fields=["upload", "upload_name", "upload_size", "uploaded_at", "updated_at"])
            accounts.audit_record(
                tenant=locked.tenant,
                actor=actor,
                action="roster.zip_uploaded",
                target=locked,
                details={
                    "name": locked.upload_name,
                    "bytes": upload.size,
                    "entries": summary.entries,
                    "files": list(summary.csv_files),
                },
            )
        except BaseException:
            storage.delete(new_name)
            raise
        if old_name:
            transaction.on_commit(lambda: storage.delete(old_name))
    return locked


def sync_run_give_up(*, run_id: uuid.UUID, message: str) -> None:
    """Terminal state for a run whose source stayed unreachable through every retry."""
    run = SyncRun.objects.select_related("connection").get(pk=run_id)
    if run.status in (SyncRun.Status.QUEUED, SyncRun.Status.RUNNING):
        pipeline.staging_clear(run)
        SyncError.objects.create(run=run, entity="", location=_source_label(run), message=message)
        _finish(run, SyncRun.Status.FAILED, message, error_count=run.error_count + 1)
