"""Admin for the video rooms (issue 15), scoped to the admin's tenant like every admin here.

Only the tenant's video policy is edited here (its provider secret write-only). Rooms,
admissions, presences (the join and leave spans attendance is computed from), attendance
outcomes, recording consents, recordings and provider webhook events are records: the
signaling socket, the provider webhooks and the services write them; a tutor corrects an
outcome on the session's attendance page, which records it on the session and audits the
change (services.attendance_correct), and consent is given or withdrawn on the session's
recording page (services.consent_set). Editing them here would skip those checks, so the
admin only shows them. Join tokens are signed, never stored: there is no table of them.
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from django import forms
from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html

from tutoring_core.accounts.admin_scoping import ReadOnlyAdminMixin, TenantScopedAdmin, is_platform_staff
from tutoring_core.http import address_allowed
from tutoring_core.video.models import (
    Admission,
    Attendance,
    Presence,
    ProviderEvent,
    Recording,
    RecordingConsent,
    Room,
    VideoPolicy,
)

Provider = VideoPolicy.Provider
# What each provider cannot work without, and what to type there.
PROVIDER_REQUIRED: dict[str, dict[str, str]] = {
    Provider.BBB: {
        "server_url": "BigBlueButton needs its API address, e.g. https://bbb.example.org/bigbluebutton/.",
        "secret": "BigBlueButton needs its shared secret (bbb-conf --secret shows it).",
    },
    Provider.JITSI: {
        "server_url": "Jitsi Meet needs its address, e.g. https://meet.example.org.",
        "app_id": "Jitsi Meet needs the app id its tokens are issued under.",
        "secret": "Jitsi Meet needs the app secret its tokens are signed with.",
    },
    Provider.LIVEKIT: {
        "server_url": "LiveKit needs its server address, e.g. wss://livekit.example.org.",
        "client_url": "LiveKit needs the web client page people join on.",
        "app_id": "LiveKit needs its API key.",
        "secret": "LiveKit needs its API secret.",
    },
}
# The schemes each address may use: the hub calls BigBlueButton's API; the browser opens
# Jitsi's pages and LiveKit's client page, and connects to LiveKit's server over a websocket.
URL_SCHEMES: dict[tuple[str, str], tuple[str, ...]] = {
    (Provider.BBB, "server_url"): ("https", "http"),
    (Provider.JITSI, "server_url"): ("https", "http"),
    (Provider.LIVEKIT, "server_url"): ("wss", "https", "ws", "http"),
    (Provider.LIVEKIT, "client_url"): ("https", "http"),
}


def url_problem(url: str, schemes: tuple[str, ...]) -> str | None:
    """Why ``url`` cannot be a provider's address, in words for the form; None if it may.

    Plain http (and ws) only where private addresses are allowed (development, tests): in
    production the page that embeds the room is https and a browser refuses mixed content.
    The outbound guard (tutoring_core/http.py) checks the address again at every call."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a bad port)
    except ValueError:
        return f"{url!r} is not a well-formed address."
    secure = [scheme for scheme in schemes if scheme in ("https", "wss")]
    allowed = schemes if settings.OUTBOUND_ALLOW_PRIVATE_ADDRESSES else tuple(secure)
    if parts.scheme not in allowed:
        return f"Use an address that starts with {' or '.join(f'{s}://' for s in allowed)}."
    host = parts.hostname
    if not host or " " in url:
        return f"{url!r} is not a well-formed address."
    if parts.username or parts.password:
        return "Put the credentials in the app id and secret fields, not in the address."
    if settings.OUTBOUND_ALLOW_PRIVATE_ADDRESSES:
        return None
    refused = f"{host} is a private or local address; a provider must be reachable at a public one."
    if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
        return refused
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None  # a name: the guard checks what it resolves to at every call
    return None if address_allowed(host) else refused


class VideoPolicyForm(forms.ModelForm):  # type: ignore[type-arg]
    # Never render a stored secret back into the page; blank keeps the current one.
    secret = forms.CharField(
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False),
        help_text="BigBlueButton's shared secret, Jitsi's app secret or LiveKit's API secret. "
        "Leave blank to keep the current one.",
    )
    client_url = forms.URLField(required=False, max_length=500, assume_scheme="https")

    class Meta:
        model = VideoPolicy
        fields = [
            "tenant",
            "provider",
            "server_url",
            "client_url",
            "app_id",
            "secret",
            "checksum_algorithm",
            "bbb_webhooks",
            "guardians_may_join",
            "recording_allowed",
            "consent_from",
        ]

    def clean_secret(self) -> str:
        value = self.cleaned_data.get("secret") or ""
        return value or (self.instance.secret or "")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        provider = data.get("provider") or self.instance.provider
        for name, message in PROVIDER_REQUIRED.get(provider, {}).items():
            if not (data.get(name) or "").strip() and name not in self.errors:
                self.add_error(name, message)
        for (key, name), schemes in URL_SCHEMES.items():
            value = (data.get(name) or "").strip()
            if key == provider and value and name not in self.errors:
                if problem := url_problem(value, schemes):
                    self.add_error(name, problem)
        return data


class ReadOnlyInline(ReadOnlyAdminMixin, admin.TabularInline):  # type: ignore[type-arg]
    extra = 0
    can_delete = False
    show_change_link = False


class AdmissionInline(ReadOnlyInline):
    model = Admission
    fields = readonly_fields = (
        "person",
        "admitted_by",
        "created_at",
    )


class PresenceInline(ReadOnlyInline):
    model = Presence
    fields = readonly_fields = (
        "person",
        "joined_at",
        "left_at",
        "peer_id",
    )


class AttendanceInline(ReadOnlyInline):
    model = Attendance
    fields = readonly_fields = (
        "person",
        "outcome",
        "first_joined_at",
        "last_left_at",
        "corrected_by",
    )


class RecordingInline(ReadOnlyInline):
    model = Recording
    fields = readonly_fields = (
        "external_id",
        "state",
        "playback_url",
        "created_at",
        "updated_at",
    )


def _session_link(session_id: Any) -> Any:
    try:
        url = reverse("admin:scheduling_session_change", args=[session_id])
    except NoReverseMatch:  # the scheduling admin is not registered
        return str(session_id)
    return format_html('<a href="{}">{}</a>', url, session_id)


@admin.register(VideoPolicy)
class VideoPolicyAdmin(TenantScopedAdmin):
    form = VideoPolicyForm
    list_display = ["tenant", "provider", "guardians_may_join", "recording_allowed", "consent_from"]
    list_filter = ["provider"]
    fieldsets = [
        (None, {"fields": ["tenant", "provider", "guardians_may_join"]}),
        (
            "Provider (BigBlueButton, Jitsi Meet, LiveKit)",
            {
                "fields": [
                    "server_url",
                    "client_url",
                    "app_id",
                    "secret",
                    "checksum_algorithm",
                    "bbb_webhooks",
                ],
                "description": "Built-in rooms need none of these. BigBlueButton: its API address, "
                "shared secret and checksum algorithm; with bbb-webhooks, register "
                "/video/hooks/bbb/&lt;district id&gt;/events/ on the hub as a hook for join and leave times. Jitsi Meet: its address, app id and app secret. "
                "LiveKit: its server address, web client page, API key and API secret; its Egress service "
                "writes recordings into the hub's media storage (the same bucket), under video-recordings/.",
            },
        ),
        ("Recording", {"fields": ["recording_allowed", "consent_from"]}),
    ]

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if is_platform_staff(request):
            return fieldsets
        # A district admin's policy is their own tenant's (TenantScopedAdmin sets it on save).
        return [
            (name, {**options, "fields": [f for f in options["fields"] if f != "tenant"]})
            for name, options in fieldsets
        ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        if not super().has_add_permission(request):
            return False
        # One policy per tenant: a district admin whose tenant has one changes it instead
        # (their form has no tenant field to check the uniqueness on).
        if is_platform_staff(request):
            return True
        tenant_id = getattr(request.user, "tenant_id", None)
        return tenant_id is not None and not VideoPolicy.objects.filter(tenant_id=tenant_id).exists()


@admin.register(Room)
class RoomAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    list_display = ["id", "session", "provider", "recorded", "created_at", "ended_at"]
    list_filter = ["provider", "recorded", ("ended_at", admin.EmptyFieldListFilter)]
    search_fields = ["=session_id", "=id"]
    date_hierarchy = "created_at"
    fields = readonly_fields = (
        "id",
        "session",
        "provider",
        "recording_requested_by",
        "recorded",
        "provider_started_at",
        "created_at",
        "ended_at",
    )
    inlines = [AdmissionInline, PresenceInline, AttendanceInline, RecordingInline]

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
    fields = readonly_fields = (
        "room",
        "person",
        "peer_id",
        "joined_at",
        "left_at",
    )


@admin.register(Attendance)
class AttendanceAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    """Outcomes per student; a tutor corrects one on the session's attendance page (audited)."""

    tenant_field = "room__tenant"
    list_display = ["person", "session", "outcome", "first_joined_at", "last_left_at", "corrected"]
    list_filter = ["outcome", ("corrected_by", admin.EmptyFieldListFilter)]
    list_select_related = ["person", "room"]
    search_fields = ["person__first_name", "person__last_name", "person__email", "=room__session_id"]
    fields = readonly_fields = (
        "room",
        "session",
        "person",
        "outcome",
        "first_joined_at",
        "last_left_at",
        "corrected_by",
        "created_at",
        "updated_at",
    )

    @admin.display(description="session")
    def session(self, obj: Attendance) -> Any:
        return _session_link(obj.room.session_id)

    @admin.display(description="corrected", boolean=True)
    def corrected(self, obj: Attendance) -> bool:
        return obj.corrected_by_id is not None


@admin.register(RecordingConsent)
class RecordingConsentAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    """Consent given beforehand (by a guardian for a minor); withdrawing keeps the row."""

    list_display = ["student", "session", "given_as", "given_by", "given_at", "withdrawn_at"]
    list_filter = ["given_as", ("withdrawn_at", admin.EmptyFieldListFilter)]
    list_select_related = ["student", "given_by"]
    search_fields = ["student__first_name", "student__last_name", "student__email", "=session_id"]
    fields = readonly_fields = (
        "session",
        "student",
        "given_as",
        "given_by",
        "given_at",
        "withdrawn_at",
    )

    @admin.display(description="session")
    def session(self, obj: RecordingConsent) -> Any:
        return _session_link(obj.session_id)


@admin.register(Recording)
class RecordingAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    tenant_field = "room__tenant"
    list_display = ["external_id", "session", "state", "created_at", "updated_at"]
    list_filter = ["state"]
    list_select_related = ["room"]
    search_fields = ["=external_id", "=room__session_id"]
    fields = readonly_fields = (
        "room",
        "session",
        "external_id",
        "state",
        "playback_url",
        "created_at",
        "updated_at",
    )

    @admin.display(description="session")
    def session(self, obj: Recording) -> Any:
        return _session_link(obj.room.session_id)


@admin.register(ProviderEvent)
class ProviderEventAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    """Provider webhooks already applied (a replay with the same id changes nothing)."""

    list_display = ["received_at", "provider", "kind", "event_id"]
    list_filter = ["provider", "kind"]
    search_fields = ["=event_id"]
    date_hierarchy = "received_at"
    fields = readonly_fields = (
        "provider",
        "kind",
        "event_id",
        "received_at",
    )
