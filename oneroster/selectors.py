from __future__ import annotations

import uuid

from django.http import Http404, HttpRequest

from oneroster.models import RosterConnection, SyncRun
from tutoring_core.accounts.api import can_administer_tenant, is_platform_staff


def _tenant_scope(request: HttpRequest) -> dict[str, object]:
    """Platform staff see every tenant; a district admin only their own; anyone else nothing."""
    if is_platform_staff(request):
        return {}
    if can_administer_tenant(request):
        return {"tenant_id": request.user.tenant_id}  # type: ignore[union-attr]
    raise Http404("No such object.")


def get_connection_for_user(request: HttpRequest, connection_id: uuid.UUID) -> RosterConnection:
    try:
        return RosterConnection.objects.select_related("tenant").get(
            pk=connection_id, **_tenant_scope(request)
        )
    except RosterConnection.DoesNotExist:
        raise Http404("No such connection.") from None


def get_run_for_user(request: HttpRequest, run_id: uuid.UUID) -> SyncRun:
    try:
        return SyncRun.objects.select_related("connection", "tenant").get(pk=run_id, **_tenant_scope(request))
    except SyncRun.DoesNotExist:
        raise Http404("No such sync run.") from None


def recent_runs(connection: RosterConnection, limit: int = 10) -> list[SyncRun]:
    return list(connection.runs.order_by("-created_at")[:limit])
