"""Admin for the video rooms (issue 15), scoped to the admin's tenant like every admin here.

Only the tenant's video policy is edited here. Rooms, admissions, presences (the join and
leave spans attendance is computed from) and attendance outcomes are records: the signaling
socket and the services write them, and a tutor corrects an outcome on the session's
attendance page, which records the outcome on the session and audits the change
(services.attendance_correct). Editing them here would skip both, so the admin only shows
them. Join tokens are signed, never stored: there is no table of them to show.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html

from tutoring_core.accounts.admin_scoping import TenantScopedAdmin
from tutoring_core.video.models import Admission, Attendance, Presence, Room, VideoPolicy


class ReadOnlyAdminMixin:
    """Neither add, change nor delete, for platform staff too: the rows are records."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyInline(ReadOnlyAdminMixin, admin.TabularInline):  # type: ignore[type-arg]
    extra = 0
    can_delete = False
    show_change_link = False


class AdmissionInline(ReadOnlyInline):
    model = Admission
    fields = readonly_fields = ["person", "admitted_by", "created_at"]


class PresenceInline(ReadOnlyInline):
    model = Presence
    fields = readonly_fields = ["person", "joined_at", "left_at", "peer_id"]


class AttendanceInline(ReadOnlyInline):
    model = Attendance
    fields = readonly_fields = ["person", "outcome", "first_joined_at", "last_left_at", "corrected_by"]


def _session_link(session_id: Any) -> Any:
    try:
        url = reverse("admin:scheduling_session_change", args=[session_id])
    except NoReverseMatch:  # the scheduling admin is not registered
        return str(session_id)
    return format_html('<a href="{}">{}</a>', url, session_id)


@admin.register(VideoPolicy)
class VideoPolicyAdmin(TenantScopedAdmin):
    list_display = ["tenant", "provider", "guardians_may_join"]


@admin.register(Room)
class RoomAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    list_display = ["id", "session", "created_at", "ended_at"]
    list_filter = [("ended_at", admin.EmptyFieldListFilter)]
    search_fields = ["=session_id", "=id"]
    date_hierarchy = "created_at"
    fields = readonly_fields = ["id", "session", "created_at", "ended_at"]
    inlines = [AdmissionInline, PresenceInline, AttendanceInline]

    @admin.display(description="session")
    def session(self, obj: Room) -> Any:
        return _session_link(obj.session_id)


@admin.register(Presence)
class PresenceAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    """Each websocket connection's stay in a room: the spans attendance is worked out from."""

    tenant_field = "room__tenant"
    list_display = ["person", "room", "joined_at", "left_at"]
    list_filter = [("left_at", admin.EmptyFieldListFilter)]
    list_select_related = ["person", "room"]
    search_fields = ["person__first_name", "person__last_name", "person__email", "=room__session_id"]
    date_hierarchy = "joined_at"
    fields = readonly_fields = ["room", "person", "peer_id", "joined_at", "left_at"]


@admin.register(Attendance)
class AttendanceAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    """Outcomes per student; a tutor corrects one on the session's attendance page (audited)."""

    tenant_field = "room__tenant"
    list_display = ["person", "session", "outcome", "first_joined_at", "last_left_at", "corrected"]
    list_filter = ["outcome", ("corrected_by", admin.EmptyFieldListFilter)]
    list_select_related = ["person", "room"]
    search_fields = ["person__first_name", "person__last_name", "person__email", "=room__session_id"]
    fields = readonly_fields = [
        "room",
        "session",
        "person",
        "outcome",
        "first_joined_at",
        "last_left_at",
        "corrected_by",
        "created_at",
        "updated_at",
    ]

    @admin.display(description="session")
    def session(self, obj: Attendance) -> Any:
        return _session_link(obj.room.session_id)

    @admin.display(description="corrected", boolean=True)
    def corrected(self, obj: Attendance) -> bool:
        return obj.corrected_by_id is not None
