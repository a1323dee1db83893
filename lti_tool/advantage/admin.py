"""Admin pages: score deliveries (pending and failed, with retry), line items, and
class-list syncs with their progress. All tenant-scoped."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from lti_tool.advantage.models import AGS_DESTINATION, LineItem, MembershipSync, ScoreDelivery
from tutoring_core.accounts.admin_scoping import TenantScopedAdmin, is_platform_staff
from tutoring_core.accounts.api import audit_record
from tutoring_core.progress import api as progress


class ReadOnlyMixin:
    """Rows written by the system: looked at, never edited by hand."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class DeliveryStatusFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("open", "Pending or failed"),
            *[(value, label) for value, label in progress.OutboxStatus.choices],
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value == "open":
            return queryset.filter(
                status__in=(
                    progress.OutboxStatus.PENDING,
                    progress.OutboxStatus.IN_FLIGHT,
                    progress.OutboxStatus.FAILED,
                )
            )
        if value:
            return queryset.filter(status=value)
        return queryset


@admin.register(ScoreDelivery)
class ScoreDeliveryAdmin(ReadOnlyMixin, TenantScopedAdmin):
    list_display = (
        "created_at",
        "user",
        "line_item_label",
        "status",
        "attempts",
        "next_attempt_at",
        "last_status_code",
        "short_error",
    )
    list_filter = (DeliveryStatusFilter,)
    search_fields = ("user__username", "user__last_name", "last_error")
    ordering = ("-created_at",)
    list_select_related = ("user", "result")
    actions = ("retry_deliveries",)
    readonly_fields = (
        "user",
        "result",
        "destination_key",
        "status",
        "attempts",
        "next_attempt_at",
        "lease_expires_at",
        "last_status_code",
        "last_error",
        "delivered_at",
        "superseded_by",
        "created_at",
        "updated_at",
    )
    exclude = ("tenant", "destination_kind")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).filter(destination_kind=AGS_DESTINATION)

    @admin.display(description="gradebook column")
    def line_item_label(self, obj: ScoreDelivery) -> str:
        line_item = LineItem.objects.filter(pk=obj.destination_key).only("label").first()
        return line_item.label if line_item else obj.destination_key

    @admin.display(description="last error")
    def short_error(self, obj: ScoreDelivery) -> str:
        return obj.last_error[:120]

    @admin.action(description="Retry the selected failed deliveries", permissions=["view"])
    def retry_deliveries(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        tenant = None if is_platform_staff(request) else request.user.tenant  # type: ignore[union-attr]
        requeued = progress.outbox_requeue(
            tenant=tenant, entry_ids=list(queryset.values_list("pk", flat=True))
        )
        for entry in ScoreDelivery.objects.filter(pk__in=requeued).select_related("tenant"):
            audit_record(
                tenant=entry.tenant,
                actor=request.user,  # type: ignore[arg-type]
                action="grades.delivery_retry",
                target=entry,
                ip_address=request.META.get("REMOTE_ADDR"),
            )
        skipped = queryset.count() - len(requeued)
        self.message_user(request, f"{len(requeued)} deliveries queued again.", messages.SUCCESS)
        if skipped:
            self.message_user(
                request,
                f"{skipped} were not failed, or a newer score has replaced them; they were left as they are.",
                messages.INFO,
            )


@admin.register(LineItem)
class LineItemAdmin(ReadOnlyMixin, TenantScopedAdmin):
    list_display = ("label", "score_maximum", "resource_link_id", "url", "synced_at")
    search_fields = ("label", "resource_link_id", "resource_id")
    ordering = ("label",)
    exclude = ("tenant",)
    readonly_fields = (
        "label",
        "score_maximum",
        "activity",
        "registration_id",
        "context_id",
        "resource_link_id",
        "resource_id",
        "tag",
        "lineitems_url",
        "url",
        "synced_at",
    )


@admin.register(MembershipSync)
class MembershipSyncAdmin(ReadOnlyMixin, TenantScopedAdmin):
    list_display = (
        "klass",
        "status",
        "pages",
        "members_seen",
        "added",
        "role_changes",
        "deactivated",
        "started_at",
        "finished_at",
    )
    list_filter = ("status",)
    ordering = ("-created_at",)
    exclude = ("tenant",)
    readonly_fields = (
        "klass",
        "status",
        "requested_by",
        "memberships_url",
        "pages",
        "members_seen",
        "added",
        "role_changes",
        "deactivated",
        "skipped",
        "error",
        "started_at",
        "finished_at",
    )
