from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db import models
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import path, reverse

from sso.models import IdentityProvider
from sso.protocol.presets import PRESETS
from tutoring_core.accounts.admin_scoping import TenantScopedAdmin

PRESET_FIELDS = (
    "subject_attribute",
    "email_attribute",
    "given_name_attribute",
    "family_name_attribute",
    "display_name_attribute",
    "roster_id_attribute",
    "role_attribute",
    "role_map",
    "emails_verified",
    "hosted_domain_claim",
    "scopes",
    "issuer",
    "use_userinfo",
)


class IdentityProviderForm(forms.ModelForm):  # type: ignore[type-arg]
    client_secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Stored encrypted. Leave blank to keep the current secret.",
    )
    # Declared so they take https as the default scheme (Django 6 behaviour).
    metadata_url = forms.URLField(required=False, max_length=500, assume_scheme="https")
    sso_url = forms.URLField(required=False, max_length=500, assume_scheme="https")
    slo_url = forms.URLField(required=False, max_length=500, assume_scheme="https")
    issuer = forms.URLField(required=False, max_length=500, assume_scheme="https")
    apply_preset = forms.BooleanField(
        required=False, initial=False, help_text="Fill the mapping fields from the chosen preset."
    )

    class Meta:
        model = IdentityProvider
        fields = (
            "tenant",
            "name",
            "protocol",
            "preset",
            "apply_preset",
            "is_enabled",
            "sort_order",
            "metadata_url",
            "metadata_xml",
            "entity_id",
            "sso_url",
            "slo_url",
            "allow_idp_initiated",
            "issuer",
            "client_id",
            "client_secret",
            "scopes",
            "allowed_algorithms",
            "use_userinfo",
            "subject_attribute",
            "email_attribute",
            "given_name_attribute",
            "family_name_attribute",
            "display_name_attribute",
            "roster_id_attribute",
            "role_attribute",
            "role_map",
            "emails_verified",
            "hosted_domain_claim",
            "allowed_email_domains",
            "allow_jit",
            "jit_role",
            "use_idp_roles",
            "clock_skew_seconds",
        )

    _parsed_certificates: list[str] | None = None

    def save(self, commit: bool = True) -> Any:
        instance = super().save(commit=False)
        if self._parsed_certificates is not None:
            instance.signing_certificates = self._parsed_certificates
            instance.metadata_fetched_at = None
            instance.metadata_error = ""
        if commit:
            instance.save()
        return instance

    def clean_client_secret(self) -> str:
        value = self.cleaned_data.get("client_secret") or ""
        return value or (self.instance.client_secret if self.instance.pk else "")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        preset = PRESETS.get(data.get("preset") or "")
        if preset and data.get("protocol") and preset.protocol != data["protocol"]:
            self.add_error(
                "preset", f"{preset.label} is a {preset.protocol.upper()} preset; pick one for this protocol."
            )
        if preset and data.get("apply_preset"):
            for name in PRESET_FIELDS:
                value = getattr(preset, name, None)
                if value not in (None, "") or name == "role_map":
                    data[name] = value
        if data.get("protocol") == IdentityProvider.Protocol.SAML:
            xml = (data.get("metadata_xml") or "").strip()
            if not xml and not data.get("metadata_url"):
                self.add_error("metadata_url", "Give a metadata URL or paste the IdP's metadata XML.")
            if xml and xml != (self.instance.metadata_xml or "").strip():
                from sso import services  # python3-saml and xmlsec: loaded when used, not at start-up

                probe = IdentityProvider(entity_id=data.get("entity_id") or "")
                try:
                    services.saml_metadata_apply(idp=probe, xml=xml)
                except ValueError as exc:
                    self.add_error("metadata_xml", str(exc))
                else:
                    for name in ("entity_id", "sso_url", "slo_url"):
                        data[name] = getattr(probe, name)
                    self._parsed_certificates = probe.signing_certificates
        if data.get("protocol") == IdentityProvider.Protocol.OIDC:
            for name in ("issuer", "client_id"):
                if not data.get(name):
                    self.add_error(name, "Required for OpenID Connect.")
            if "{tenant}" in (data.get("issuer") or ""):
                self.add_error("issuer", "Replace {tenant} with your directory (tenant) id.")
            if not data.get("client_secret"):
                self.add_error("client_secret", "Required for OpenID Connect.")
        return data


@admin.register(IdentityProvider)
class IdentityProviderAdmin(TenantScopedAdmin):
    form = IdentityProviderForm
    list_display = ("name", "protocol", "preset", "is_enabled", "allow_jit", "metadata_fetched_at")
    list_filter = ("protocol", "is_enabled")
    readonly_fields = ("sp_setup", "metadata_fetched_at", "metadata_error", "certificate_summary")

    @admin.display(description="What to give the identity provider")
    def sp_setup(self, obj: IdentityProvider) -> str:
        from django.utils.html import format_html

        from sso import saml

        if obj.pk is None:
            return "Save first; the addresses appear here."
        urls = saml.sp_urls(obj.tenant)
        if obj.protocol == IdentityProvider.Protocol.SAML:
            return format_html(
                "SP metadata: <code>{}</code><br>Entity ID: <code>{}</code><br>ACS (HTTP-POST): <code>{}</code>"
                "<br>Single logout (HTTP-Redirect): <code>{}</code>",
                urls.entity_id,
                urls.entity_id,
                urls.acs,
                urls.sls,
            )
        redirect_uri = f"{settings.PUBLIC_BASE_URL}{reverse('sso:oidc_callback', kwargs={'tenant_slug': obj.tenant.slug})}"
        return format_html("Redirect URI: <code>{}</code>", redirect_uri)

    @admin.display(description="Signing certificates")
    def certificate_summary(self, obj: IdentityProvider) -> str:
        from cryptography import x509
        from django.utils.html import format_html_join

        rows = []
        for pem in obj.signing_certificates or []:
            try:
                cert = x509.load_pem_x509_certificate(pem.encode())
            except ValueError:
                rows.append(("unreadable certificate", ""))
                continue
            rows.append((cert.subject.rfc4514_string(), f"{cert.not_valid_after_utc:%Y-%m-%d} UTC"))
        if not rows:
            return "None yet."
        return format_html_join("", "<div>{} — expires {}</div>", rows)

    change_form_template = "admin/sso/identityprovider/change_form.html"
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def get_urls(self) -> list[Any]:
        own = [
            path(
                "<path:object_id>/test-sign-in/",
                self.admin_site.admin_view(self.test_sign_in_view),
                name="sso_identityprovider_test_sign_in",
            ),
            path(
                "<path:object_id>/refresh-metadata/",
                self.admin_site.admin_view(self.refresh_metadata_view),
                name="sso_identityprovider_refresh_metadata",
            ),
        ]
        return own + super().get_urls()

    def _scoped(self, request: HttpRequest, object_id: str) -> IdentityProvider:
        from django.http import Http404

        obj = self.get_object(request, object_id)
        if obj is None or not self.has_change_permission(request, obj):
            raise Http404("No such identity provider.")
        return obj

    def test_sign_in_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        idp = self._scoped(request, object_id)
        name = "sso:saml_login" if idp.protocol == IdentityProvider.Protocol.SAML else "sso:oidc_login"
        url = reverse(name, kwargs={"tenant_slug": idp.tenant.slug, "provider_id": idp.pk})
        return HttpResponseRedirect(f"{url}?purpose=test")

    def refresh_metadata_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        idp = self._scoped(request, object_id)
        if request.method != "POST":
            return HttpResponse(status=405)
        from sso import services

        try:
            changed = services.saml_metadata_refresh(idp=idp) if idp.metadata_url else False
        except services.http.OutboundHTTPError as exc:
            messages.error(request, f"Could not fetch the metadata: {exc}")
        else:
            idp.refresh_from_db()
            if changed:
                messages.success(request, "Metadata refreshed.")
            else:
                messages.warning(request, idp.metadata_error or "No metadata URL to refresh from.")
        return HttpResponseRedirect(reverse("admin:sso_identityprovider_change", args=[idp.pk]))

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        from sso import services

        if (
            obj.protocol == IdentityProvider.Protocol.SAML
            and obj.metadata_url
            and not obj.signing_certificates
        ):
            try:
                services.saml_metadata_refresh(idp=obj)
            except services.http.OutboundHTTPError as exc:
                messages.warning(request, f"Saved, but the metadata could not be fetched yet: {exc}")
