"""The player's tables in the Django admin, scoped to the district admin's tenant.

Attempts are read-only (their CMI data is the learner's record, written only by the
runtime's commits); a placed package's attempts policy can be changed."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from scorm.models import ScormActivity, ScormAttempt
from tutoring_core.accounts.admin_scoping import TenantScopedAdmin


@admin.register(ScormActivity)
class ScormActivityAdmin(TenantScopedAdmin):
    list_display = ("title", "klass", "package", "max_attempts", "created_at")
    search_fields = ("title", "klass__title", "package__title")
    fields = ("title", "klass", "package", "max_attempts", "activity_id", "created_at")
    readonly_fields = ("title", "klass", "package", "activity_id", "created_at")
    list_select_related = ("klass", "package")

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Made by the player on a package's first launch in a class.
        return False


@admin.register(ScormAttempt)
class ScormAttemptAdmin(TenantScopedAdmin):
    list_display = (
        "learner",
        "activity",
        "sco",
        "number",
        "state",
        "completion",
        "success",
        "score",
        "updated_at",
    )
    list_filter = ("state", "completion", "success")
    search_fields = ("learner__username", "learner__email", "activity__title", "sco__title")
    list_select_related = ("learner", "activity", "sco")
    fields = (
        "activity",
        "sco",
        "learner",
        "number",
        "state",
        "completion",
        "success",
        "score",
        "total_seconds",
        "session_seconds",
        "commits",
        "finished_at",
        "cmi",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
