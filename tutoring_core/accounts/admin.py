from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.http import HttpRequest

from tutoring_core.accounts.admin_scoping import ReadOnlyAdminMixin, TenantScopedAdmin, is_platform_staff
from tutoring_core.accounts.models import (
    AuditLog,
    ExternalIdentity,
    GuardianLink,
    LinkCandidate,
    RoleAssignment,
    Tenant,
    User,
)

admin.site.site_header = "Tutoring Hub administration"
admin.site.site_title = "Tutoring Hub admin"


@admin.register(Tenant)
class TenantAdmin(TenantScopedAdmin):
    tenant_field = "pk"
    list_display = ["name", "slug", "kind", "time_zone", "is_active"]
    search_fields = ["name", "slug"]
    readonly_fields = ["id", "created_at", "updated_at"]

    def get_queryset(self, request: HttpRequest) -> Any:
        queryset = admin.ModelAdmin.get_queryset(self, request)
        if is_platform_staff(request):
            return queryset
        if not self._allowed(request, write=False):
            return queryset.none()
        return queryset.filter(pk=request.user.tenant_id)  # type: ignore[union-attr]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return is_platform_staff(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # tenants are deactivated, never deleted: their history stays

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = list(super().get_readonly_fields(request, obj))
        if not is_platform_staff(request):
            fields += ["slug", "is_active", "kind"]
        return fields


class RoleAssignmentInline(admin.TabularInline):  # type: ignore[type-arg]
    model = RoleAssignment
    fk_name = "user"
    extra = 0
    fields = ["role", "school", "klass", "source", "is_active"]
    autocomplete_fields = ["school", "klass"]


class ExternalIdentityInline(admin.TabularInline):  # type: ignore[type-arg]
    model = ExternalIdentity
    fk_name = "user"
    extra = 0
    fields = ["kind", "issuer", "subject", "last_seen_at"]
    readonly_fields = ["kind", "issuer", "subject", "last_seen_at"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(User)
class UserAdmin(TenantScopedAdmin, DjangoUserAdmin):  # type: ignore[misc]
    list_display = ["username", "full_name", "email", "tenant", "is_active", "is_staff"]
    list_filter = ["is_active", "is_staff", "role_assignments__role"]
    search_fields = ["username", "first_name", "last_name", "display_name", "email"]
    ordering = ["last_name", "first_name"]
    inlines = [RoleAssignmentInline, ExternalIdentityInline]
    fieldsets = (
        (None, {"fields": ("tenant", "username", "password")}),
        (
            "Person",
            {
                "fields": (
                    "first_name",
                    "last_name",
                    "display_name",
                    "email",
                    "email_verified",
                    "preferred_time_zone",
                )
            },
        ),
        ("Access", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("tenant", "username", "email", "password1", "password2")}),
    )

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if is_platform_staff(request):
            return fieldsets
        # District admins never grant platform-wide powers nor move people between tenants.
        hidden = {"tenant", "is_superuser", "groups", "user_permissions"}
        return tuple(
            (name, {**opts, "fields": tuple(f for f in opts["fields"] if f not in hidden)})
            for name, opts in fieldsets
        )

    def get_exclude(self, request: HttpRequest, obj: Any = None) -> Any:
        return None


@admin.register(GuardianLink)
class GuardianLinkAdmin(TenantScopedAdmin):
    list_display = ["guardian", "student", "relationship", "source", "is_active"]
    autocomplete_fields = ["guardian", "student"]
    list_filter = ["is_active", "source"]


@admin.register(LinkCandidate)
class LinkCandidateAdmin(TenantScopedAdmin):
    list_display = ["user", "candidate", "reason", "status", "created_at"]
    list_filter = ["status", "reason"]
    readonly_fields = ["user", "candidate", "reason", "created_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(AuditLog)
class AuditLogAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    read_only_for_district_admin = True
    list_display = ["created_at", "action", "actor_label", "target_label", "ip_address", "tenant"]
    list_filter = ["action"]
    search_fields = ["action", "actor_label", "target_label", "target_id"]
    date_hierarchy = "created_at"

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [f.name for f in AuditLog._meta.fields]
