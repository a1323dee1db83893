"""Session attendance for district admins' reports (issue 15 point 4): read-only records, each
with the states a tutor's correction replaced."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from tutoring_core.accounts.admin_scoping import (
    ReadOnlyAdminMixin,
    TenantScopedAdmin,
    can_administer_tenant,
    is_platform_staff,
)
from tutoring_core.progress.models import SessionAttendance, SessionAttendanceHistory

_FIGURES = (
    "outcome",
    "first_joined_at",
    "last_left_at",
    "minutes_present",
    "late_minutes",
    "left_early_minutes",
    "source",
    "corrected_by",
    "corrected_at",
)


class HistoryInline(ReadOnlyAdminMixin, admin.TabularInline):  # type: ignore[type-arg]
    model = SessionAttendanceHistory
    extra = 0
    can_delete = False
    fields = readonly_fields = ("version", *_FIGURES, "replaced_at")
    verbose_name_plural = "replaced states"

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Shown inside a record the tenant-scoped admin already let this person see.
        return is_platform_staff(request) or can_administer_tenant(request)


@admin.register(SessionAttendance)
class SessionAttendanceAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    list_display = ["person", "session_start", "outcome", "minutes_present", "source", "version"]
    list_filter = ["outcome", "source"]
    list_select_related = ["person"]
    search_fields = ["person__first_name", "person__last_name", "person__email", "=session_id"]
    date_hierarchy = "session_start"
    fields = readonly_fields = (
        "session_id",
        "class_id",
        "person",
        "session_start",
        "session_end",
        *_FIGURES,
        "version",
        "created_at",
        "updated_at",
    )
    inlines = [HistoryInline]
