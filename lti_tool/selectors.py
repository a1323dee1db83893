"""Reads shared by views, services and the api door."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from django.db import connection

from lti_tool.data import (
    AgsEndpoint,
    ContextInfo,
    NrpsEndpoint,
    RegistrationInfo,
    ResourceLinkInfo,
)
from lti_tool.errors import RegistrationNotFound, ResourceLinkNotFound
from lti_tool.models import Deployment, LtiContext, PlatformRegistration, ResourceLink
from tutoring_core import rawsql
from tutoring_core.accounts.api import Tenant


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


# --- The launch's hot reads ---------------------------------------------------------
# Written once as SQL (tutoring_core.rawsql): on a repeat launch the ORM spent more
# CPU building these queries than the database spent answering them. Every other
# read here goes through the ORM.

_REGISTRATION_TENANT = rawsql.RowReader((PlatformRegistration, "r"), (Tenant, "t"))


def _registration_column(field: str) -> str:
    return rawsql.column(PlatformRegistration, field)


def _tenant_column(field: str) -> str:
    return rawsql.column(Tenant, field)


def _deployment_column(field: str) -> str:
    return rawsql.column(Deployment, field)


def _link_column(field: str) -> str:
    return rawsql.column(ResourceLink, field)


def _context_column(field: str) -> str:
    return rawsql.column(LtiContext, field)


_REGISTRATION_FOR_LOGIN_SQL = (
    f"SELECT {_REGISTRATION_TENANT.columns()} FROM {rawsql.table(PlatformRegistration)} r"  # noqa: S608 - names from the models; values are parameters
    f" JOIN {rawsql.table(Tenant)} t ON t.{_tenant_column('id')} = r.{_registration_column('tenant')}"
    f" WHERE r.{_registration_column('issuer')} = %s AND r.{_registration_column('is_active')} = %s AND t.{_tenant_column('is_active')} = %s"
)


def registration_for_login(*, issuer: str, client_id: str | None) -> PlatformRegistration | None:
    """The active registration (in an active tenant) an OIDC login names, with its
    tenant loaded; None when there is none, or several because the platform left
    out the client_id (optional in the login request) and the issuer has many."""
    sql = _REGISTRATION_FOR_LOGIN_SQL
    params: list[Any] = [issuer, _true(PlatformRegistration), _true(Tenant)]
    if client_id:
        sql += f" AND r.{_registration_column('client_id')} = %s"
        params.append(client_id)
    with connection.cursor() as cursor:
        cursor.execute(sql + " LIMIT 2", params)
        rows = cursor.fetchall()
    if len(rows) != 1:
        return None
    registration, tenant = _REGISTRATION_TENANT.read(rows[0])
    registration.tenant = tenant
    return registration


@dataclass(frozen=True)
class LaunchRows:
    """What a launch POST reads before it can check the signature: the registration
    its login chose (with the tenant), and the deployment and resource link the
    token names, if known (the link with its context loaded)."""

    registration: PlatformRegistration | None
    deployment: Deployment | None
    link: ResourceLink | None


_LAUNCH = rawsql.RowReader(
    (PlatformRegistration, "r"), (Tenant, "t"), (Deployment, "d"), (ResourceLink, "l"), (LtiContext, "c")
)
_LAUNCH_SQL = (
    f"SELECT {_LAUNCH.columns()} FROM {rawsql.table(PlatformRegistration)} r"  # noqa: S608 - names from the models; values are parameters
    f" JOIN {rawsql.table(Tenant)} t ON t.{_tenant_column('id')} = r.{_registration_column('tenant')}"
    f" LEFT JOIN {rawsql.table(Deployment)} d ON d.{_deployment_column('registration')} = r.{_registration_column('id')} AND d.{_deployment_column('deployment_id')} = %s"
    f" LEFT JOIN {rawsql.table(ResourceLink)} l ON l.{_link_column('deployment')} = d.{_deployment_column('id')}"
    f" AND l.{_link_column('resource_link_id')} = %s"
    f" LEFT JOIN {rawsql.table(LtiContext)} c ON c.{_context_column('id')} = l.{_link_column('context')}"
    f" WHERE r.{_registration_column('id')} = %s AND r.{_registration_column('is_active')} = %s"
)


def launch_rows(*, registration_id: str, deployment_id: str, resource_link_id: str) -> LaunchRows:
    """One query for the launch's registration, deployment and resource link.

    ``deployment_id`` and ``resource_link_id`` come from a token whose signature
    is not checked yet: they are only lookup keys here. The launch uses the rows
    after the signature holds, and only where the verified claims name them."""
    found = _LAUNCH.fetch_one(
        _LAUNCH_SQL,
        [
            deployment_id,
            resource_link_id,
            rawsql.param(PlatformRegistration, "id", registration_id),
            _true(PlatformRegistration),
        ],
    )
    if found is None:
        return LaunchRows(registration=None, deployment=None, link=None)
    registration, tenant, deployment, link, context = found
    registration.tenant = tenant
    if deployment is not None:
        deployment.registration = registration
    if link is not None:
        link.context = context
    return LaunchRows(registration=registration, deployment=deployment, link=link)


def _true(model: type[PlatformRegistration] | type[Tenant]) -> object:
    return rawsql.param(model, "is_active", True)
