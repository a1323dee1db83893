"""The door other apps use for SSO (e.g. the core's sign-in page linking to the
district's providers). Nothing else in sso is imported from outside it."""

from __future__ import annotations

from django.urls import reverse

from sso import selectors
from sso.data import SignInOption
from tutoring_core.accounts.api import Tenant

__all__ = ["SignInOption", "sign_in_options", "sign_in_page_url"]


def sign_in_options(*, tenant: Tenant) -> list[SignInOption]:
    """The tenant's enabled identity providers, in display order."""
    options = []
    for provider in selectors.providers_for_sign_in(tenant=tenant):
        name = "sso:saml_login" if provider.protocol == "saml" else "sso:oidc_login"
        options.append(
            SignInOption(
                provider_id=provider.pk,
                name=provider.name,
                protocol=provider.protocol,
                url=reverse(name, kwargs={"tenant_slug": tenant.slug, "provider_id": provider.pk}),
            )
        )
    return options


def sign_in_page_url(*, tenant: Tenant) -> str:
    return reverse("sso:sign_in", kwargs={"tenant_slug": tenant.slug})
