"""SCORM packages in the Django admin, scoped to the district admin's tenant.

A package is added by uploading its zip (the import service does the work, the
same as the teacher's page and the command) and is read-only afterwards: its files
are immutable and shared by content hash."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from scorm.errors import PackageRejected
from scorm.models import ScormPackage, ScormSco
from tutoring_core.accounts.admin_scoping import ReadOnlyAdminMixin, TenantScopedAdmin

_SHOWN = (
    "title",
    "version",
    "identifier",
    "content_hash",
    "storage_root",
    "size_bytes",
    "file_count",
    "uploaded_by",
    "created_at",
)


class PackageAddForm(forms.ModelForm):  # type: ignore[type-arg]
    package = forms.FileField(
        label="SCORM package (.zip)",
        help_text="A SCORM 1.2 or 2004 zip with imsmanifest.xml at its top. cmi5 and xAPI are not supported yet.",
    )
    request: HttpRequest
    imported_id: Any = None

    class Meta:
        model = ScormPackage
        fields = ("tenant",)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        upload = cleaned.get("package")
        tenant = cleaned.get("tenant") or getattr(self.request.user, "tenant", None)
        if tenant is None:
            self.add_error(
                "tenant" if "tenant" in self.fields else None, "Choose the tenant the package is for."
            )
            return cleaned
        if upload is None:
            return cleaned
        # Platform staff belong to no tenant: the package has no uploader then, and
        # the admin's own audit entry (admin.add) names them.
        same_tenant = getattr(self.request.user, "tenant_id", None) == tenant.pk
        # Imported here: the admin is loaded by every process at start-up, the import
        # machinery (lxml, zip extraction) only by the one that imports a package.
        from scorm.services import package_import

        try:
            info = package_import(
                tenant_id=tenant.pk,
                actor_id=self.request.user.pk if same_tenant else None,
                fileobj=upload,
                filename=upload.name,
            )
        except PackageRejected as exc:
            self.add_error("package", f"This package cannot be imported. {exc.reason}")
        else:
            self.imported_id = info.id
        return cleaned


class ScormScoInline(ReadOnlyAdminMixin, admin.TabularInline):  # type: ignore[type-arg]
    model = ScormSco
    fields = ("order", "identifier", "title", "scorm_type", "href", "parameters", "mastery_score")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Shown only inside a package the (tenant-scoped) package admin let through.
        return True


@admin.register(ScormPackage)
class ScormPackageAdmin(TenantScopedAdmin):
    list_display = ("title", "version", "size_bytes", "file_count", "created_at")
    list_filter = ("version",)
    search_fields = ("title", "identifier", "content_hash")
    inlines = [ScormScoInline]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return super().get_fields(request, obj)
        return ("tenant", *_SHOWN) if request.user.is_superuser else _SHOWN

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ()
        return ("tenant", *_SHOWN)

    def get_inlines(self, request: HttpRequest, obj: Any) -> Any:
        return self.inlines if obj is not None else []

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False if obj is not None else super().has_change_permission(request, obj)

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is not None:
            return super().get_form(request, obj, change=change, **kwargs)
        kwargs["form"] = PackageAddForm
        form_class = super().get_form(request, obj, change=change, **kwargs)
        return type("PackageAddFormForRequest", (form_class,), {"request": request})

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        # The import service wrote the rows in form.clean(); show the admin that row.
        imported = ScormPackage.objects.get(pk=form.imported_id)
        obj.__dict__.update(imported.__dict__)


# The player's tables (attempts read-only): scorm/player_admin.py.
from scorm import player_admin  # noqa: E402, F401
