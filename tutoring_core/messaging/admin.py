from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from tutoring_core.accounts.admin_scoping import TenantScopedAdmin
from tutoring_core.messaging.models import Notification


# Notices are written by the booking services and the reminder job; the admin shows
# their delivery state and never edits them.
@admin.register(Notification)
class NotificationAdmin(TenantScopedAdmin):
    read_only_for_district_admin = True
    list_display = ["created_at", "recipient", "kind", "offset_min", "session_start", "status", "attempts"]
    list_filter = ["kind", "status"]
    search_fields = ["recipient__email"]
    date_hierarchy = "created_at"
    readonly_fields = [
        "recipient",
        "session_id",
        "kind",
        "sequence",
        "session_start",
        "offset_min",
        "actor",
        "about_person",
        "status",
        "attempts",
        "next_attempt_at",
        "last_error",
        "sent_at",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
