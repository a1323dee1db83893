from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from lti_tool.models import Deployment, PlatformRegistration, ResourceLink
from lti_tool.protocol import presets
from tutoring_core.accounts.admin_scoping import (
    TenantScopedAdmin,
    can_administer_tenant,
    is_platform_staff,
)


class DeploymentInline(admin.TabularInline):  # type: ignore[type-arg]
    model = Deployment
    extra = 0
    fields = ("deployment_id", "status", "label")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Deployment]:
        return super().get_queryset(request).select_related("registration")

    # Same rule as the registration page itself (TenantScopedAdmin), not Django's
    # per-model permissions, which district admins do not hold.
    def _allowed(self, request: HttpRequest) -> bool:
        return is_platform_staff(request) or can_administer_tenant(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request)


@admin.register(PlatformRegistration)
class PlatformRegistrationAdmin(TenantScopedAdmin):
    list_display = ("__str__", "preset", "issuer", "client_id", "deployment_policy", "is_active")
    list_filter = ("preset", "is_active")
    search_fields = ("issuer", "client_id", "name")
    inlines = [DeploymentInline]
    readonly_fields = ("tool_urls",)
    fieldsets = (
        (None, {"fields": ("tenant", "name", "preset", "is_active")}),
        (
            "Platform (what the LMS shows when you add the tool)",
            {
                "fields": (
                    "issuer",
                    "client_id",
                    "auth_login_url",
                    "auth_token_url",
                    "key_set_url",
                    "auth_audience",
                    "trusted_audiences",
                ),
                "description": "Leave URLs empty to use what the preset dictates (Canvas, Moodle, Brightspace, "
                "Blackboard, Schoology).",
            },
        ),
        ("Deployments", {"fields": ("deployment_policy",)}),
        (
            "Migrating from LTI 1.1 (optional)",
            {
                "fields": ("lti1p1_consumer_key", "lti1p1_shared_secret"),
                "description": "The consumer key and shared secret this LMS used with the tool under "
                "LTI 1.1. With them, a launch that carries the LMS's signed LTI 1.1 migration claim "
                "keeps the person's and the course's LTI 1.1 accounts; without them it is not "
                "trusted and people arrive as new accounts. Set them before the LMS switches. "
                "Leave the secret empty to keep the stored one.",
            },
        ),
        ("Give these to the LMS", {"fields": ("tool_urls",)}),
    )

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        # District admins never choose the tenant (TenantScopedAdmin sets theirs).
        if is_platform_staff(request):
            return self.fieldsets
        return [
            (name, {**options, "fields": tuple(f for f in options["fields"] if f != "tenant")})
            for name, options in self.fieldsets
        ]

    @admin.display(description="Tool URLs")
    def tool_urls(self, obj: PlatformRegistration | None) -> str:
        # Imported here, not at start-up: the launch views and dynamic registration bring
        # pylti1p3, requests and the scheduling api into every process that loads the admin.
        from lti_tool.dynamic_registration import registration_url
        from lti_tool.views import tool_urls

        urls = tool_urls()
        if obj is not None and obj.tenant_id:
            # For LMSs with Dynamic Registration (Moodle, Canvas, Brightspace): this one
            # URL, pasted into the LMS, registers the tool for this tenant (valid 7 days).
            urls["dynamic_registration_url"] = registration_url(obj.tenant)
        return "\n".join(f"{name}: {url}" for name, url in urls.items())

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change, **kwargs)
        for name in ("auth_login_url", "auth_token_url", "key_set_url", "auth_audience"):
            if name in form.base_fields:
                form.base_fields[name].required = False
        if "lti1p1_shared_secret" in form.base_fields:
            # Write-only: the stored secret is never sent back to a browser.
            form.base_fields["lti1p1_shared_secret"] = forms.CharField(
                required=False,
                strip=True,
                label="LTI 1.1 shared secret",
                widget=forms.PasswordInput(render_value=False),
            )
        return form

    def save_model(self, request: HttpRequest, obj: PlatformRegistration, form: Any, change: bool) -> None:
        filled = presets.fill(
            obj.preset,
            issuer=obj.issuer,
            client_id=obj.client_id,
            auth_login_url=obj.auth_login_url,
            auth_token_url=obj.auth_token_url,
            key_set_url=obj.key_set_url,
            auth_audience=obj.auth_audience,
        )
        for field, value in filled.items():
            setattr(obj, field, value)
        if change and not form.cleaned_data.get("lti1p1_shared_secret"):
            # An empty secret field keeps the stored secret (the form never shows it).
            obj.lti1p1_shared_secret = (
                PlatformRegistration.objects.filter(pk=obj.pk)
                .values_list("lti1p1_shared_secret", flat=True)
                .first()
                or ""
            )
        super().save_model(request, obj, form, change)

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        for instance in formset.save(commit=False):
            instance.tenant_id = form.instance.tenant_id
            instance.save()
        for deleted in formset.deleted_objects:
            deleted.delete()


@admin.register(Deployment)
class DeploymentAdmin(TenantScopedAdmin):
    list_display = ("deployment_id", "registration", "status", "created_at")
    list_filter = ("status",)
    search_fields = ("deployment_id",)
    actions = ("approve",)

    @admin.action(description="Approve the selected deployments")
    def approve(self, request: HttpRequest, queryset: QuerySet[Deployment]) -> None:
        pending = list(queryset.filter(status=Deployment.Status.PENDING))
        for deployment in pending:
            deployment.status = Deployment.Status.ACTIVE
            deployment.save(update_fields=["status", "updated_at"])
            self._audit(request, deployment, "change", "approved")
        messages.success(request, f"Approved {len(pending)} deployment(s).")


@admin.register(ResourceLink)
class ResourceLinkAdmin(TenantScopedAdmin):
    """What launches taught us: read-only for everyone."""

    list_display = ("__str__", "registration", "target", "last_launch_at")
    readonly_fields = [field.name for field in ResourceLink._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
