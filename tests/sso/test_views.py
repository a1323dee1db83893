"""People-facing SSO pages and admin: sign-in page per tenant, tenant scoping of
provider ids (three personas), the admin form and its "test sign-in" action."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from sso.models import IdentityProvider, SamlRequest
from tests.conftest import Personas
from tests.factories import TenantFactory, district_admin
from tests.peers.simplesamlphp import make_key_pair
from tutoring_core.accounts.models import AuditLog, Tenant

pytestmark = [pytest.mark.django_db]


def _saml_idp(tenant: Tenant, name: str = "District Login", **extra: Any) -> IdentityProvider:
    _, cert = make_key_pair("view-test")
    fields: dict[str, Any] = {
        "tenant": tenant,
        "name": name,
        "protocol": IdentityProvider.Protocol.SAML,
        "entity_id": f"https://idp.{tenant.slug}.example/saml",
        "sso_url": f"https://idp.{tenant.slug}.example/sso",
        "signing_certificates": [cert],
    }
    fields.update(extra)
    return IdentityProvider.objects.create(**fields)


def test_sign_in_page_lists_only_this_tenants_enabled_providers(client: Client, personas: Personas) -> None:
    north = _saml_idp(personas.tenant, "North Login")
    _saml_idp(personas.tenant, "Old Login", is_enabled=False, entity_id="urn:old")
    _saml_idp(personas.other_tenant_obj, "South Login")
    html = client.get("/sso/north/").content.decode()
    assert "Sign in with North Login" in html
    assert f"/sso/north/saml/{north.pk}/login/" in html
    assert "Old Login" not in html and "South Login" not in html
    assert client.get("/sso/nowhere/").status_code == 404


def test_sign_in_page_passes_only_local_next(client: Client, personas: Personas) -> None:
    idp = _saml_idp(personas.tenant)
    html = client.get("/sso/north/", {"next": "https://evil.example/"}).content.decode()
    assert f'/sso/north/saml/{idp.pk}/login/"' in html
    html = client.get("/sso/north/", {"next": "/classes/"}).content.decode()
    assert f"/sso/north/saml/{idp.pk}/login/?next=/classes/" in html


@pytest.mark.parametrize("persona", ["owner", "same_tenant_other", "other_tenant"])
def test_provider_ids_are_scoped_to_the_tenant_in_the_url(
    client: Client, personas: Personas, persona: str
) -> None:
    """Whoever asks, another tenant's provider id under this tenant's slug is a 404."""
    client.force_login(getattr(personas, persona))
    south_idp = _saml_idp(personas.other_tenant_obj, "South Login")
    north_idp = _saml_idp(personas.tenant, "North Login")
    assert client.get(f"/sso/north/saml/{south_idp.pk}/login/").status_code == 404
    assert client.get(f"/sso/north/oidc/{south_idp.pk}/login/").status_code == 404
    assert client.get(f"/sso/north/saml/{north_idp.pk}/login/").status_code == 302
    assert SamlRequest.objects.get().provider == north_idp


def test_test_sign_in_needs_a_district_admin_of_the_tenant(client: Client, personas: Personas) -> None:
    idp = _saml_idp(personas.tenant)
    url = f"/sso/north/saml/{idp.pk}/login/?purpose=test"
    client.force_login(personas.owner)
    assert client.get(url).status_code == 403
    client.force_login(personas.other_tenant)  # a district admin, but of South
    assert client.get(url).status_code == 403
    client.force_login(district_admin(personas.tenant, username="north-admin"))
    assert client.get(url).status_code == 302
    assert SamlRequest.objects.get().purpose == SamlRequest.Purpose.TEST


def test_admin_test_sign_in_and_refresh_are_404_for_other_tenant(client: Client, personas: Personas) -> None:
    idp = _saml_idp(personas.tenant)
    client.force_login(personas.other_tenant)
    assert client.get(reverse("admin:sso_identityprovider_test_sign_in", args=[idp.pk])).status_code == 404
    assert (
        client.post(reverse("admin:sso_identityprovider_refresh_metadata", args=[idp.pk])).status_code == 404
    )
    assert client.get(reverse("admin:sso_identityprovider_change", args=[idp.pk])).status_code == 404


def _admin_form(**over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "North OIDC",
        "protocol": "oidc",
        "preset": "classlink",
        "apply_preset": "on",
        "is_enabled": "on",
        "sort_order": "0",
        "metadata_url": "",
        "metadata_xml": "",
        "entity_id": "",
        "sso_url": "",
        "slo_url": "",
        "issuer": "https://launchpad.classlink.com",
        "client_id": "cid",
        "client_secret": "first-secret",
        "scopes": "",
        "allowed_algorithms": "RS256",
        "subject_attribute": "",
        "email_attribute": "",
        "given_name_attribute": "",
        "family_name_attribute": "",
        "display_name_attribute": "",
        "roster_id_attribute": "",
        "role_attribute": "",
        "role_map": "{}",
        "hosted_domain_claim": "",
        "allowed_email_domains": "north.k12.us",
        "jit_role": "student",
        "clock_skew_seconds": "120",
    }
    data.update(over)
    return {k: v for k, v in data.items() if v is not None}


def test_district_admin_configures_oidc_with_a_preset(client: Client, personas: Personas) -> None:
    admin_user = district_admin(personas.tenant, username="north-admin")
    client.force_login(admin_user)
    response = client.post(reverse("admin:sso_identityprovider_add"), _admin_form())
    assert response.status_code == 302, response.content.decode()[:3000]
    idp = IdentityProvider.objects.get(name="North OIDC")
    assert idp.tenant == personas.tenant
    assert (idp.roster_id_attribute, idp.role_attribute, idp.scopes) == (
        "SourcedId",
        "Role",
        "openid profile oneroster",
    )
    assert idp.client_secret == "first-secret"
    assert idp.use_userinfo is True
    # Saving again with the secret left blank keeps it.
    change = client.post(
        reverse("admin:sso_identityprovider_change", args=[idp.pk]),
        _admin_form(client_secret="", apply_preset=None, name="North OIDC 2"),
    )
    assert change.status_code == 302
    idp.refresh_from_db()
    assert (idp.name, idp.client_secret) == ("North OIDC 2", "first-secret")
    assert AuditLog.objects.filter(action="admin.change", target_id=str(idp.pk)).exists()


def test_admin_rejects_bad_saml_metadata_with_the_reason(client: Client, personas: Personas) -> None:
    client.force_login(district_admin(personas.tenant, username="north-admin"))
    response = client.post(
        reverse("admin:sso_identityprovider_add"),
        _admin_form(
            protocol="saml",
            preset="generic_saml",
            apply_preset=None,
            name="Bad SAML",
            metadata_xml="<EntityDescriptor>nope</EntityDescriptor>",
            issuer="",
            client_id="",
            client_secret="",
        ),
    )
    assert response.status_code == 200
    assert "The metadata has no IdP descriptor" in response.content.decode()
    assert not IdentityProvider.objects.filter(name="Bad SAML").exists()


def test_admin_takes_pasted_metadata(client: Client, personas: Personas) -> None:
    _, cert = make_key_pair("pasted")
    body = "".join(cert.split()[2:-2])
    xml = (
        '<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://adfs.north.example/adfs/services/trust">'
        '<md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">'
        '<md:KeyDescriptor use="signing"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data>'
        f"<ds:X509Certificate>{body}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"
        '<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://adfs.north.example/adfs/ls/"/>'
        "</md:IDPSSODescriptor></md:EntityDescriptor>"
    )
    client.force_login(district_admin(personas.tenant, username="north-admin"))
    response = client.post(
        reverse("admin:sso_identityprovider_add"),
        _admin_form(
            protocol="saml",
            preset="adfs",
            name="North ADFS",
            metadata_xml=xml,
            issuer="",
            client_id="",
            client_secret="",
        ),
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    idp = IdentityProvider.objects.get(name="North ADFS")
    assert idp.entity_id == "https://adfs.north.example/adfs/services/trust"
    assert idp.sso_url == "https://adfs.north.example/adfs/ls/"
    assert len(idp.signing_certificates) == 1
    assert idp.roster_id_attribute == "employeeID"


def test_other_tenant_slug_cannot_be_forced_by_a_district_admin(client: Client, personas: Personas) -> None:
    """A district admin who posts tenant=<other> still creates in their own tenant."""
    client.force_login(district_admin(personas.tenant, username="north-admin"))
    response = client.post(
        reverse("admin:sso_identityprovider_add"), _admin_form(tenant=str(personas.other_tenant_obj.pk))
    )
    assert response.status_code == 302
    assert IdentityProvider.objects.get(name="North OIDC").tenant == personas.tenant


_ = TenantFactory


def test_sp_key_command_refuses_clearly(personas: Personas) -> None:
    from django.core.management import CommandError, call_command

    with pytest.raises(
        CommandError, match=re.escape("North District has no staged SP key; stage one first.")
    ):
        call_command("sso_sp_key", "activate", "north")
    with pytest.raises(CommandError, match=re.escape("No active tenant has the slug 'nowhere'.")):
        call_command("sso_sp_key", "stage", "nowhere")
