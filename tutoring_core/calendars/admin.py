from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from tutoring_core.accounts.admin_scoping import TenantScopedAdmin
from tutoring_core.calendars.models import CalDAVAccount, CalendarPush


@admin.register(CalDAVAccount)
class CalDAVAccountAdmin(TenantScopedAdmin):
    # The password is never shown; people connect their own calendar on /calendar/.
    list_display = ["person", "collection_url", "is_active", "last_pushed_at"]
    list_filter = ["is_active"]
    search_fields = ["person__email", "collection_url"]
    fields = ["person", "collection_url", "username", "is_active", "last_error", "last_pushed_at"]
    readonly_fields = ["person", "collection_url", "username", "last_error", "last_pushed_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(CalendarPush)
class CalendarPushAdmin(TenantScopedAdmin):
    read_only_for_district_admin = True
    list_display = ["created_at", "account", "session_id", "change", "status", "attempts", "last_status_code"]
    list_filter = ["status", "change"]
    readonly_fields = [
        "account",
        "session_id",
        "change",
        "sequence",
        "status",
        "attempts",
        "next_attempt_at",
        "last_error",
        "last_status_code",
        "done_at",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
