from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from tutoring_core.accounts.admin_scoping import TenantScopedAdmin
from tutoring_core.scheduling.models import (
    AvailabilityOverride,
    AvailabilityRule,
    SchedulingPolicy,
    Series,
    Session,
    SessionParticipant,
    TutorProfile,
)


class AvailabilityRuleInline(admin.TabularInline):  # type: ignore[type-arg]
    model = AvailabilityRule
    extra = 0
    fields = ["weekday", "start_minute", "end_minute"]


class AvailabilityOverrideInline(admin.TabularInline):  # type: ignore[type-arg]
    model = AvailabilityOverride
    extra = 0
    fields = ["date", "start_minute", "end_minute", "unavailable"]


@admin.register(TutorProfile)
class TutorProfileAdmin(TenantScopedAdmin):
    list_display = ["user", "time_zone", "is_active", "window_days", "daily_cap"]
    list_filter = ["is_active"]
    search_fields = ["user__first_name", "user__last_name", "user__email"]
    autocomplete_fields = ["user"]
    filter_horizontal = ["schools", "classes"]
    inlines = [AvailabilityRuleInline, AvailabilityOverrideInline]

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        for obj in formset.save(commit=False):
            if not obj.tenant_id:
                obj.tenant = form.instance.tenant
            obj.save()
        for obj in formset.deleted_objects:
            obj.delete()


@admin.register(SchedulingPolicy)
class SchedulingPolicyAdmin(TenantScopedAdmin):
    list_display = ["tenant", "cancel_notice_hours", "reschedule_notice_hours", "hold_minutes"]


class SessionParticipantInline(admin.TabularInline):  # type: ignore[type-arg]
    model = SessionParticipant
    extra = 0
    fields = ["student", "status", "outcome", "booked_by", "cancelled_at"]
    readonly_fields = ["student", "status", "outcome", "booked_by", "cancelled_at"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# Sessions and series change only through the booking services (checks, notices,
# audit, calendar SEQUENCE): the admin shows them and never edits them.
@admin.register(Session)
class SessionAdmin(TenantScopedAdmin):
    read_only_for_district_admin = True
    list_display = ["start", "tutor", "status", "capacity", "subject", "outcome"]
    list_filter = ["status", "outcome"]
    search_fields = ["tutor__first_name", "tutor__last_name", "subject"]
    date_hierarchy = "start"
    inlines = [SessionParticipantInline]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(Series)
class SeriesAdmin(TenantScopedAdmin):
    read_only_for_district_admin = True
    list_display = ["tutor", "student", "rrule", "dtstart", "time_zone"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
