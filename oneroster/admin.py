from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils.html import format_html

from oneroster.models import RosterConnection, SyncRun
from oneroster.protocol.records import RosterProtocolError
from oneroster.run_status import run_progress
from oneroster.selectors import recent_runs
from tutoring_core.accounts.admin_scoping import ReadOnlyAdminMixin, TenantScopedAdmin

Kind = RosterConnection.Kind
_REST = ["base_url", "base_path", "client_id", "client_secret", "page_size", "max_concurrency"]
_REST += ["requests_per_second", "delta_overlap_minutes"]
# The fields each kind of connection uses; the others are hidden (with JS) and neither
# validated nor changed when the form is saved (without JS too).
KIND_FIELDS: dict[str, list[str]] = {
    Kind.CSV: ["csv_path"],
    Kind.CSV_UPLOAD: ["upload_status"],
    Kind.REST_1_1: _REST,
    Kind.REST_1_2: [*_REST, "token_url", "scopes"],
    Kind.GOOGLE_CLASSROOM: [
        "base_url",
        "token_url",
        "client_id",
        "client_secret",
        "delegated_user",
        "page_size",
        "requests_per_second",
    ],
}
KIND_ONLY_FIELDS = sorted({name for names in KIND_FIELDS.values() for name in names})
# What a kind cannot work without, with the words the error uses.
KIND_REQUIRED: dict[str, dict[str, str]] = {
    Kind.CSV: {"csv_path": "A CSV connection needs the server folder or zip its export is dropped into."},
    Kind.REST_1_1: {
        "base_url": "A OneRoster REST connection needs the SIS's base URL.",
        "client_id": "A OneRoster REST connection needs its OAuth client id.",
        "client_secret": "A OneRoster REST connection needs its OAuth secret.",
    },
    Kind.REST_1_2: {
        "base_url": "A OneRoster REST connection needs the SIS's base URL.",
        "token_url": "OneRoster 1.2 needs the OAuth 2.0 token URL.",
        "client_id": "A OneRoster REST connection needs its OAuth client id.",
        "client_secret": "A OneRoster REST connection needs its OAuth secret.",
    },
    Kind.GOOGLE_CLASSROOM: {
        "client_id": "Google Classroom needs the service account's email.",
        "client_secret": "Google Classroom needs the service account's private key (PEM).",
        "delegated_user": "Google Classroom needs the Workspace admin the service account acts as.",
    },
}


class RosterConnectionForm(forms.ModelForm):  # type: ignore[type-arg]
    # Never render a stored secret back into the page; blank keeps the current one.
    client_secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Leave blank to keep the current secret.",
    )
    # Checked against the outbound guard's rules in clean_*, not Django's URL rules
    # (which allow ftp and add a scheme to whatever is typed).
    base_url = forms.CharField(
        required=False, max_length=200, widget=forms.URLInput(), help_text="https://sis.example.org"
    )
    token_url = forms.CharField(
        required=False, max_length=200, widget=forms.URLInput(), help_text="OAuth 2.0 token endpoint (1.2)."
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
        value = (self.cleaned_data.get("csv_path") or "").strip()
        if value:
            # Imported here, not at start-up: oneroster.sources brings the REST and
            # Classroom clients (authlib, requests) into every process that loads the admin.
            from oneroster.sources import csv_path_checked

            try:
                path = Path(csv_path_checked(value))
            except RosterProtocolError as exc:
                raise forms.ValidationError(str(exc)) from None
            if not path.exists():
                raise forms.ValidationError(
                    f"{value} does not exist in the roster drop folder; create it (or drop the export) first."
                )
            if not path.is_dir() and not zipfile.is_zipfile(path):
                raise forms.ValidationError(f"{value} is neither a folder nor a zip file.")
        return value

    def _clean_url(self, name: str) -> str:
        from oneroster.sources import outbound_url_problem

        value = (self.cleaned_data.get(name) or "").strip()
        if value and (problem := outbound_url_problem(value)):
            raise forms.ValidationError(problem)
        return value

    def clean_base_url(self) -> str:
        return self._clean_url("base_url")

    def clean_token_url(self) -> str:
        return self._clean_url("token_url")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        kind = data.get("kind") or self.instance.kind
        used = set(KIND_FIELDS.get(kind, []))
        for name in KIND_ONLY_FIELDS:
            if name in used or name not in self.fields:
                continue
            # Another kind's field: whatever was typed there is neither checked nor
            # saved; the connection keeps what it had (switching back finds it again).
            self.errors.pop(name, None)
            data[name] = getattr(self.instance, name)
        for name, message in KIND_REQUIRED.get(kind, {}).items():
            if not data.get(name) and name not in self.errors:
                self.add_error(name, message)
        return data


@admin.register(RosterConnection)
class RosterConnectionAdmin(TenantScopedAdmin):
    form = RosterConnectionForm
    list_display = ["name", "kind", "is_active", "last_sync"]
    list_filter = ["kind", "is_active"]
    search_fields = ["name"]
    readonly_fields = ["id", "upload_status", "delta_since", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["id", "tenant", "name", "kind", "is_active"]}),
        ("CSV folder on the server", {"fields": ["csv_path"]}),
        ("CSV zip uploaded here", {"fields": ["upload_status"]}),
        (
            "OneRoster REST or Google Classroom",
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

    class Media:
        js = ["oneroster/connection_kind.js"]

    @admin.display(description="Uploaded zip")
    def upload_status(self, obj: RosterConnection | None) -> str:
        if obj is None or obj.pk is None or obj._state.adding:
            return "Save the connection, then upload its zip from this page."
        link = reverse("oneroster:connection_upload", args=[obj.pk])
        if not obj.upload:
            return format_html('None yet. <a href="{}">Upload a roster zip</a>', link)
        return format_html(
            '{} ({}, uploaded {}). <a href="{}">Upload a new zip</a>',
            obj.upload_name,
            filesizeformat(obj.upload_size),
            obj.uploaded_at.strftime("%Y-%m-%d %H:%M") if obj.uploaded_at else "—",
            link,
        )

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

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None) -> Any:
        extra_context = {**(extra_context or {}), "kind_fields": KIND_FIELDS}
        return super().add_view(request, form_url, extra_context)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> Any:
        extra_context = {**(extra_context or {}), "kind_fields": KIND_FIELDS}
        obj = self.get_object(request, object_id)
        if obj is not None:
            extra_context["recent_runs"] = recent_runs(obj)
        return super().change_view(request, object_id, form_url, extra_context)


@admin.register(SyncRun)
class SyncRunAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):  # runs are the sync's history
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

    @admin.display(description="Progress")
    def progress(self, obj: SyncRun) -> str:
        progress = run_progress(obj)
        return (
            f"{progress.percent}% · {progress.phase_label}" if progress.percent is not None else progress.text
        )

    @admin.display(description="Report")
    def report(self, obj: SyncRun) -> str:
        return format_html('<a href="{}">Open</a>', reverse("oneroster:run_detail", args=[obj.pk]))
