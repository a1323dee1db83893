"""Isolation registrations for the sso app (see tests/isolation.py)."""

from __future__ import annotations

from sso.models import IdentityProvider
from tests.isolation import EXEMPT_URL_NAMES, NOT_OBJECT_IDS, admin_model
from tutoring_core.accounts.models import Tenant

NOT_OBJECT_IDS["tenant_slug"] = (
    "The district's public slug in /sso/<tenant>/...: a sign-in address people type or are sent to, "
    "not an object id. Every lookup under it is scoped to that tenant."
)

_PUBLIC = (
    "Public sign-in endpoint (the person is not signed in yet); tenant scoping of provider ids and "
    "IdP issuers is tested in tests/sso/test_views.py"
)
EXEMPT_URL_NAMES.update(
    {
        "sign_in": _PUBLIC,
        "saml_metadata": "Public SP metadata every IdP fetches; tested in tests/sso/test_saml_simplesamlphp.py",
        "saml_login": _PUBLIC,
        "saml_acs": "SAML ACS: authenticated by the signed response; tested in tests/sso/test_saml_hostile.py",
        "saml_finish": "Completes a sign-in from a one-time ticket; tested in tests/sso/test_saml_simplesamlphp.py",
        "saml_logout": "Signs out the current session only; tested in tests/sso/test_saml_slo.py",
        "saml_sls": "SAML single logout service, authenticated by signatures; tested in tests/sso/test_saml_slo.py",
        "oidc_login": _PUBLIC,
        "oidc_callback": "OIDC redirect URI, bound to the browser's state; tested in tests/sso/test_oidc.py",
    }
)


@admin_model("sso.IdentityProvider")
def _identity_provider(tenant: Tenant) -> object:
    return IdentityProvider.objects.create(
        tenant=tenant, name="District IdP", protocol=IdentityProvider.Protocol.SAML, entity_id="urn:test:idp"
    )
