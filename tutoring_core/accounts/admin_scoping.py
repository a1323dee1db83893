"""Django admin that a district admin can use: everything scoped to their tenant.

Platform staff (superusers) see all tenants. A district admin (a user with the
tenant-wide district_admin role and ``is_staff``) sees and edits only rows of
their own tenant; other tenants' rows 404 because they are not in the queryset.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db import models
from django.http import Http404, HttpRequest

from tutoring_core.accounts.models import User
from tutoring_core.accounts.selectors import is_district_admin
from tutoring_core.accounts.services import audit_record


def _tenant_of(request: HttpRequest) -> Any:
    return getattr(request.user, "tenant", None)


def is_platform_staff(request: HttpRequest) -> bool:
    return bool(request.user.is_active and request.user.is_superuser)


def can_administer_tenant(request: HttpRequest) -> bool:
    user = request.user
    return bool(user.is_active and user.is_staff and is_district_admin(user))  # type: ignore[arg-type]


class TenantScopedAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Scopes the queryset, the foreign-key choices and new rows to the tenant."""

    tenant_field = "tenant"
    read_only_for_district_admin = False

    def get_queryset(self, request: HttpRequest) -> models.QuerySet[Any]:
        queryset = super().get_queryset(request)
        if is_platform_staff(request):
            return queryset
        if not can_administer_tenant(request):
            return queryset.none()
        return queryset.filter(**{self.tenant_field: _tenant_of(request)})

    def _allowed(self, request: HttpRequest, write: bool) -> bool:
        if is_platform_staff(request):
            return True
        if write and self.read_only_for_district_admin:
            return False
        return can_administer_tenant(request)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._allowed(request, write=False)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request, write=False)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request, write=True)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self._allowed(request, write=True)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request, write=True)

    def get_exclude(self, request: HttpRequest, obj: Any = None) -> Any:
        excluded = list(super().get_exclude(request, obj) or [])
        if not is_platform_staff(request) and self.tenant_field == "tenant":
            excluded.append("tenant")
        return excluded

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        self._scope_choices(db_field, request, field)
        return field

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        field = super().formfield_for_manytomany(db_field, request, **kwargs)
        self._scope_choices(db_field, request, field)
        return field

    def _scope_choices(self, db_field: Any, request: HttpRequest, field: Any) -> None:
        if field is None or is_platform_staff(request):
            return
        related = db_field.related_model
        names = {f.name for f in related._meta.get_fields()}
        if related._meta.label == "accounts.Tenant":
            field.queryset = field.queryset.filter(pk=getattr(_tenant_of(request), "pk", None))
        elif "tenant" in names:
            field.queryset = field.queryset.filter(tenant=_tenant_of(request))

    def _get_obj_does_not_exist_redirect(self, request: HttpRequest, opts: Any, object_id: str) -> Any:
        # Django's admin redirects with "doesn't exist" for a missing id; we answer
        # 404 like every other view, so another tenant's ids look like nothing at all.
        raise Http404("No such object.")

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if not is_platform_staff(request) and self.tenant_field == "tenant":
            obj.tenant = _tenant_of(request)
        super().save_model(request, obj, form, change)

    # Every admin write also lands in the tenant's audit log.
    def _audit(self, request: HttpRequest, obj: Any, action: str, message: Any = "") -> None:
        tenant = getattr(obj, "tenant", None) if self.tenant_field == "tenant" else None
        if tenant is None and obj._meta.label == "accounts.Tenant":
            tenant = obj
        actor = request.user if isinstance(request.user, User) else None
        audit_record(
            tenant=tenant,
            actor=actor,
            action=f"admin.{action}",
            target=obj,
            ip_address=request.META.get("REMOTE_ADDR"),
            details={"model": obj._meta.label, "message": str(message)[:500]},
        )

    def log_addition(self, request: HttpRequest, obj: Any, message: Any) -> Any:  # type: ignore[override]
        self._audit(request, obj, "add", message)
        return super().log_addition(request, obj, message)

    def log_change(self, request: HttpRequest, obj: Any, message: Any) -> Any:  # type: ignore[override]
        self._audit(request, obj, "change", message)
        return super().log_change(request, obj, message)

    def log_deletions(self, request: HttpRequest, queryset: Any) -> Any:  # type: ignore[override]
        for obj in queryset:
            self._audit(request, obj, "delete")
        return super().log_deletions(request, queryset)


class ReadOnlyAdminMixin:
    """Neither add, change nor delete, for platform staff too: the rows are records (an
    attendance history, a pay run, a room's admissions). Before the ModelAdmin or inline
    in the bases."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
