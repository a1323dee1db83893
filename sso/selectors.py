from __future__ import annotations

import uuid

from django.http import Http404

from sso.models import IdentityProvider
from tutoring_core.accounts import api as accounts


def tenant_for_slug(slug: str) -> accounts.Tenant:
    try:
        return accounts.tenant_get(slug=slug)
    except accounts.TenantNotFound:
        raise Http404("No such district.") from None


def provider_get(*, tenant: accounts.Tenant, provider_id: uuid.UUID, protocol: str) -> IdentityProvider:
    """An enabled provider of ``tenant``; 404 for another tenant's id."""
    provider = (
        IdentityProvider.objects.for_tenant(tenant)
        .enabled()
        .filter(pk=provider_id, protocol=protocol)
        .first()
    )
    if provider is None:
        raise Http404("No such identity provider.")
    return provider


def providers_for_sign_in(*, tenant: accounts.Tenant) -> list[IdentityProvider]:
    return list(IdentityProvider.objects.for_tenant(tenant).enabled().order_by("sort_order", "name"))


def saml_provider_by_entity_id(*, tenant: accounts.Tenant, entity_id: str) -> IdentityProvider | None:
    return (
        IdentityProvider.objects.for_tenant(tenant)
        .enabled()
        .filter(protocol=IdentityProvider.Protocol.SAML, entity_id=entity_id)
        .select_related("tenant")
        .first()
    )
