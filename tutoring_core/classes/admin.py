from __future__ import annotations

from django.contrib import admin

from tutoring_core.accounts.admin_scoping import TenantScopedAdmin
from tutoring_core.classes.models import Class, ClassKey, Course, Enrollment, School, Term


@admin.register(School)
class SchoolAdmin(TenantScopedAdmin):
    list_display = ["name", "code", "source", "is_active"]
    search_fields = ["name", "code"]
    list_filter = ["is_active", "source"]


@admin.register(Term)
class TermAdmin(TenantScopedAdmin):
    list_display = ["title", "kind", "start_date", "end_date", "school", "is_active"]
    list_filter = ["kind", "is_active"]
    search_fields = ["title"]


@admin.register(Course)
class CourseAdmin(TenantScopedAdmin):
    list_display = ["title", "code", "school", "is_active"]
    search_fields = ["title", "code"]


class ClassKeyInline(admin.TabularInline):  # type: ignore[type-arg]
    model = ClassKey
    extra = 0
    fields = ["kind", "issuer", "subject"]
    readonly_fields = ["kind", "issuer", "subject"]

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


class EnrollmentInline(admin.TabularInline):  # type: ignore[type-arg]
    model = Enrollment
    extra = 0
    fields = ["user", "role", "status", "source"]
    autocomplete_fields = ["user"]


@admin.register(Class)
class ClassAdmin(TenantScopedAdmin):
    list_display = ["title", "code", "school", "course", "source", "is_active"]
    list_filter = ["is_active", "source", "school"]
    search_fields = ["title", "code"]
    filter_horizontal = ["terms"]
    inlines = [EnrollmentInline, ClassKeyInline]

    def save_formset(self, request, form, formset, change):  # type: ignore[no-untyped-def]
        for obj in formset.save(commit=False):
            if hasattr(obj, "tenant_id") and not obj.tenant_id:
                obj.tenant = form.instance.tenant
            obj.save()
        for obj in formset.deleted_objects:
            obj.delete()
        formset.save_m2m()


@admin.register(Enrollment)
class EnrollmentAdmin(TenantScopedAdmin):
    list_display = ["user", "klass", "role", "status", "source"]
    list_filter = ["role", "status", "source"]
    search_fields = ["user__last_name", "user__first_name", "klass__title"]
    autocomplete_fields = ["user", "klass"]
