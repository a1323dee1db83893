from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from oneroster.models import RosterConnection, SyncRun
from oneroster.protocol.records import RosterProtocolError
from oneroster.selectors import recent_runs
from oneroster.sources import csv_path_checked
from tutoring_core.accounts.admin_scoping import TenantScopedAdmin


class RosterConnectionForm(forms.ModelForm):  # type: ignore[type-arg]
    # Never render a stored secret back into the page; blank keeps the current one.
    client_secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Leave blank to keep the current secret.",
    )

    class Meta:
        model = RosterConnection
        fields = [
            "tenant",
            "name",
            "kind",
            "is_active",
            "csv_path",
            "base_url",
            "base_path",
            "token_url",
            "client_id",
            "client_secret",
            "delegated_user",
            "scopes",
            "page_size",
            "max_concurrency",
            "requests_per_second",
            "delta_overlap_minutes",
            "max_deactivation_share",
            "apply_valid_rows",
            "schedule_delta",
            "schedule_full",
        ]

    def clean_client_secret(self) -> str:
        value = self.cleaned_data.get("client_secret") or ""
        return value or (self.instance.client_secret or "")

    def clean_csv_path(self) -> str:
        value = self.cleaned_data.get("csv_path") or ""
        if value:
            try:
                csv_path_checked(value)
            except RosterProtocolError as exc:
                raise forms.ValidationError(str(exc)) from None
        return value

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        kind = data.get("kind")
        if kind in (RosterConnection.Kind.REST_1_1, RosterConnection.Kind.REST_1_2):
            if not data.get("base_url") or not data.get("client_id"):
                raise forms.ValidationError("A REST connection needs a base URL and a client id.")
            if kind == RosterConnection.Kind.REST_1_2 and not data.get("token_url"):
                raise forms.ValidationError("OneRoster 1.2 needs the OAuth 2.0 token URL.")
        if kind == RosterConnection.Kind.GOOGLE_CLASSROOM and not (
            data.get("client_id") and data.get("client_secret") and data.get("delegated_user")
        ):
            raise forms.ValidationError(
                "Google Classroom needs the service account email, its private key and the admin it acts as."
            )
        return data


@admin.register(RosterConnection)
class RosterConnectionAdmin(TenantScopedAdmin):
    form = RosterConnectionForm
    list_display = ["name", "kind", "is_active", "last_sync"]
    list_filter = ["kind", "is_active"]
    search_fields = ["name"]
    readonly_fields = ["id", "delta_since", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["id", "tenant", "name", "kind", "is_active"]}),
        ("CSV", {"fields": ["csv_path"]}),
        (
            "REST / Classroom",
            {
                "fields": [
                    "base_url",
                    "base_path",
                    "token_url",
                    "client_id",
                    "client_secret",
                    "scopes",
                    "delegated_user",
                ]
            },
        ),
        (
            "Limits",
            {"fields": ["page_size", "max_concurrency", "requests_per_second", "delta_overlap_minutes"]},
        ),
        ("Safety", {"fields": ["max_deactivation_share", "apply_valid_rows"]}),
        ("Schedule", {"fields": ["schedule_delta", "schedule_full", "delta_since"]}),
    ]

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if "tenant" in self.get_exclude(request, obj):
            fieldsets = [
                (name, {**opts, "fields": [f for f in opts["fields"] if f != "tenant"]})
                for name, opts in fieldsets
            ]
        return fieldsets

    @admin.display(description="Last sync")
    def last_sync(self, obj: RosterConnection) -> str:
        run = obj.runs.order_by("-created_at").first()
        if run is None:
            return "—"
        return format_html(
            '<a href="{}">{} ({})</a>',
            reverse("oneroster:run_detail", args=[run.pk]),
            run.get_status_display(),
            run.created_at.strftime("%Y-%m-%d %H:%M"),
        )

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> Any:
        extra_context = dict(extra_context or {})
        obj = self.get_object(request, object_id)
        if obj is not None:
            extra_context["recent_runs"] = recent_runs(obj)
        return super().change_view(request, object_id, form_url, extra_context)


@admin.register(SyncRun)
class SyncRunAdmin(TenantScopedAdmin):
    list_display = [
        "created_at",
        "connection",
        "mode",
        "dry_run",
        "status",
        "progress",
        "error_count",
        "report",
    ]
    list_filter = ["status", "mode"]
    readonly_fields = [f.name for f in SyncRun._meta.fields] + ["progress", "report"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # runs start from a connection's "Run now" or the schedule

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # runs are the sync's history

    @admin.display(description="Progress")
    def progress(self, obj: SyncRun) -> str:
        return f"{obj.progress_percent}% ({obj.phase or '—'})"

    @admin.display(description="Report")
    def report(self, obj: SyncRun) -> str:
        return format_html('<a href="{}">Open</a>', reverse("oneroster:run_detail", args=[obj.pk]))
