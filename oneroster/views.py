"""Operator pages for roster sync: test a connection, run it now, watch a run,
read its report, approve or reject a paused run. Linked from the admin."""

from __future__ import annotations

import logging
import uuid

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from oneroster.forms import RosterZipForm, UploadLimitHandler
from oneroster.models import SyncRun
from oneroster.protocol.records import ENTITIES, RosterProtocolError
from oneroster.run_status import ENTITY_WORDS, run_progress, timing_rows
from oneroster.selectors import get_connection_for_user, get_run_for_user
from oneroster.services import (
    SyncRefused,
    UploadRefused,
    connection_upload_store,
    run_report,
    sync_run_approve,
    sync_run_create,
    sync_run_reject,
)
from oneroster.sources import connection_test
from oneroster.tasks import sync_run_enqueue
from tutoring_core.accounts import api as accounts

logger = logging.getLogger(__name__)


def _signed_in(request: HttpRequest) -> HttpResponse | None:
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path(), reverse("admin:login"))
    return None


def _connection_page(connection_id: uuid.UUID) -> str:
    return reverse("admin:oneroster_rosterconnection_change", args=[connection_id])


def connection_test_view(request: HttpRequest, connection_id: uuid.UUID) -> HttpResponse:
    if (login := _signed_in(request)) is not None:
        return login
    connection = get_connection_for_user(request, connection_id)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    try:
        result = connection_test(connection)
    except (RosterProtocolError, OSError) as exc:
        messages.error(request, f"Connection test failed: {exc}")
    except Exception:
        # A test is a question, not a write: whatever broke, answer with a page.
        logger.exception("roster connection test %s failed", connection.pk)
        messages.error(
            request, "Connection test failed on an unexpected error; the operators have the details."
        )
    else:
        messages.success(request, f"Connection test passed: {result}")
    accounts.audit_record(
        tenant=connection.tenant,
        actor=request.user if isinstance(request.user, accounts.User) else None,
        action="roster.connection_test",
        target=connection,
        ip_address=accounts.client_ip(request),
    )
    return redirect(_connection_page(connection.pk))


@csrf_exempt
def connection_upload_view(request: HttpRequest, connection_id: uuid.UUID) -> HttpResponse:
    # The size limit must sit in front of the handlers that spool the file, before
    # anything reads the body; CSRF is checked just after, on the parsed form.
    limit = UploadLimitHandler(request)
    request.upload_handlers.insert(0, limit)
    return _connection_upload(request, connection_id, limit)


@csrf_protect
def _connection_upload(
    request: HttpRequest, connection_id: uuid.UUID, limit: UploadLimitHandler
) -> HttpResponse:
    if (login := _signed_in(request)) is not None:
        return login
    connection = get_connection_for_user(request, connection_id)
    if request.method not in ("GET", "POST"):
        return HttpResponseNotAllowed(["GET", "POST"])
    status = 200
    if request.method == "POST":
        form = RosterZipForm(request.POST, request.FILES, too_large=limit.exceeded)
        if form.is_valid():
            upload = form.cleaned_data["zip_file"]
            try:
                connection = connection_upload_store(
                    connection=connection,
                    upload=upload,
                    actor=request.user if isinstance(request.user, accounts.User) else None,
                )
            except UploadRefused as exc:
                form.add_error("zip_file", str(exc))
            else:
                messages.success(
                    request,
                    f"Uploaded {connection.upload_name} ({filesizeformat(connection.upload_size)}). "
                    "Test it, or run a sync with it.",
                )
                return redirect("oneroster:connection_upload", connection_id=connection.pk)
        status = 400
    else:
        form = RosterZipForm()
    return render(
        request,
        "oneroster/connection_upload.html",
        {"connection": connection, "form": form, "connection_url": _connection_page(connection.pk)},
        status=status,
    )


def connection_run_view(request: HttpRequest, connection_id: uuid.UUID) -> HttpResponse:
    if (login := _signed_in(request)) is not None:
        return login
    connection = get_connection_for_user(request, connection_id)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    mode = request.POST.get("mode", SyncRun.Mode.FULL)
    if mode not in SyncRun.Mode.values:
        messages.error(request, f"Unknown sync mode {mode!r}.")
        return redirect(_connection_page(connection.pk))
    try:
        run = sync_run_create(
            connection=connection,
            mode=mode,
            dry_run=request.POST.get("dry_run") == "1",
            requested_by=request.user,  # type: ignore[arg-type]
        )
    except SyncRefused as exc:
        messages.error(request, str(exc))
        return redirect(_connection_page(connection.pk))
    sync_run_enqueue(run)
    return redirect("oneroster:run_detail", run_id=run.pk)


def run_detail_view(request: HttpRequest, run_id: uuid.UUID) -> HttpResponse:
    if (login := _signed_in(request)) is not None:
        return login
    run = get_run_for_user(request, run_id)
    if request.method != "GET":
        return HttpResponseNotAllowed(["GET"])
    rows = [(e, ENTITY_WORDS.get(e, e), run.counts.get(e, {})) for e in ENTITIES] if run.counts else []
    return render(
        request,
        "oneroster/run_detail.html",
        {
            "run": run,
            "progress": run_progress(run),
            "rows": rows,
            "errors": run.errors.all()[:500],
            "live": run.status in (SyncRun.Status.QUEUED, SyncRun.Status.RUNNING),
            "timings": timing_rows(run.timings),
            "connection_url": _connection_page(run.connection_id),
        },
    )


def run_progress_view(request: HttpRequest, run_id: uuid.UUID) -> HttpResponse:
    if (login := _signed_in(request)) is not None:
        return login
    run = get_run_for_user(request, run_id)
    report = run_report(run)
    progress = run_progress(run)
    report.update(
        phase=run.phase,
        phase_label=progress.phase_label,
        progress_done=run.progress_done,
        progress_total=run.progress_total,
        status_label=progress.status_label,
        live=run.status in (SyncRun.Status.QUEUED, SyncRun.Status.RUNNING),
        rows_read=progress.rows_read,
        percent=progress.percent,
        progress_text=progress.text,
        failed=progress.failed,
        reason=progress.reason,
    )
    return JsonResponse(report)


def _decide(request: HttpRequest, run_id: uuid.UUID, approve: bool) -> HttpResponse:
    if (login := _signed_in(request)) is not None:
        return login
    run = get_run_for_user(request, run_id)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    try:
        if approve:
            run = sync_run_approve(run=run, actor=request.user)  # type: ignore[arg-type]
            sync_run_enqueue(run)
            messages.success(request, "Approved: the sync goes on.")
        else:
            sync_run_reject(run=run, actor=request.user)  # type: ignore[arg-type]
            messages.success(request, "Rejected: nothing was applied.")
    except SyncRefused as exc:
        messages.error(request, str(exc))
        return (
            HttpResponse(str(exc), status=409)
            if request.headers.get("Accept") == "application/json"
            else redirect("oneroster:run_detail", run_id=run.pk)
        )
    return redirect("oneroster:run_detail", run_id=run.pk)


def run_approve_view(request: HttpRequest, run_id: uuid.UUID) -> HttpResponse:
    return _decide(request, run_id, approve=True)


def run_reject_view(request: HttpRequest, run_id: uuid.UUID) -> HttpResponse:
    return _decide(request, run_id, approve=False)
