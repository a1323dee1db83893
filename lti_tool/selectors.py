"""Reads shared by views, services and the api door."""

from __future__ import annotations

import uuid

from lti_tool.data import (
    AgsEndpoint,
    ContextInfo,
    NrpsEndpoint,
    RegistrationInfo,
    ResourceLinkInfo,
)
from lti_tool.errors import RegistrationNotFound, ResourceLinkNotFound
from lti_tool.models import LtiContext, PlatformRegistration, ResourceLink


def registration_info(registration: PlatformRegistration) -> RegistrationInfo:
    return RegistrationInfo(
        id=registration.pk,
        tenant_id=registration.tenant_id,
        issuer=registration.issuer,
        client_id=registration.client_id,
        auth_login_url=registration.auth_login_url,
        token_url=registration.auth_token_url,
        key_set_url=registration.key_set_url,
        token_audience=registration.token_audience,
        preset=registration.preset,
        is_active=registration.is_active,
    )


def registration_by_id(
    registration_id: uuid.UUID, *, tenant_id: uuid.UUID | None = None
) -> PlatformRegistration:
    registrations = PlatformRegistration.objects.filter(pk=registration_id)
    if tenant_id is not None:
        registrations = registrations.filter(tenant_id=tenant_id)
    found = registrations.first()
    if found is None:
        raise RegistrationNotFound(f"No LTI platform registration {registration_id}.")
    return found


def _nrps(context: LtiContext | None) -> NrpsEndpoint | None:
    if context is None or not context.nrps_memberships_url:
        return None
    return NrpsEndpoint(
        context_memberships_url=context.nrps_memberships_url,
        service_versions=tuple(context.nrps_service_versions or ()),
    )


def resource_link_info(link: ResourceLink) -> ResourceLinkInfo:
    context = link.context
    ags = None
    if link.ags_lineitems_url or link.ags_lineitem_url:
        ags = AgsEndpoint(
            lineitems_url=link.ags_lineitems_url,
            lineitem_url=link.ags_lineitem_url,
            scopes=tuple(link.ags_scopes or ()),
        )
    return ResourceLinkInfo(
        id=link.pk,
        tenant_id=link.tenant_id,
        registration_id=link.registration_id,
        deployment_id=link.deployment.deployment_id,
        resource_link_id=link.resource_link_id,
        title=link.title,
        class_id=context.klass_id if context else None,
        context_id=context.context_id if context else None,
        ags=ags,
        nrps=_nrps(context),
    )


def context_info(context: LtiContext) -> ContextInfo:
    return ContextInfo(
        id=context.pk,
        tenant_id=context.tenant_id,
        registration_id=context.registration_id,
        deployment_id=context.deployment.deployment_id,
        context_id=context.context_id,
        class_id=context.klass_id,
        title=context.title,
        nrps=_nrps(context),
    )


def resource_link_by_id(link_id: uuid.UUID, *, tenant_id: uuid.UUID | None = None) -> ResourceLink:
    links = ResourceLink.objects.select_related("context", "deployment").filter(pk=link_id)
    if tenant_id is not None:
        links = links.filter(tenant_id=tenant_id)
    found = links.first()
    if found is None:
        raise ResourceLinkNotFound(f"No LTI resource link {link_id}.")
    return found


def resource_links_for_class(class_id: uuid.UUID, *, tenant_id: uuid.UUID) -> list[ResourceLink]:
    return list(
        ResourceLink.objects.select_related("context", "deployment")
        .filter(tenant_id=tenant_id, context__klass_id=class_id)
        .order_by("created_at")
    )


def contexts_for_class(class_id: uuid.UUID, *, tenant_id: uuid.UUID) -> list[LtiContext]:
    return list(
        LtiContext.objects.select_related("deployment")
        .filter(tenant_id=tenant_id, klass_id=class_id)
        .order_by("created_at")
    )
