"""The door other apps (lti_tool.advantage: AGS, NRPS) use. Nothing else here is public.

Everything returns frozen dataclasses from ``lti_tool.data``; ids are UUIDs.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.urls import reverse

from lti_tool import keys, selectors
from lti_tool.data import (
    AgsEndpoint,
    ContextInfo,
    NrpsEndpoint,
    RegistrationInfo,
    ResourceLinkInfo,
    SigningKey,
)
from lti_tool.errors import LtiToolError, RegistrationNotFound, ResourceLinkNotFound

__all__ = [
    "AgsEndpoint",
    "ContextInfo",
    "LtiToolError",
    "NrpsEndpoint",
    "RegistrationInfo",
    "RegistrationNotFound",
    "ResourceLinkInfo",
    "ResourceLinkNotFound",
    "SigningKey",
    "contexts_for_class",
    "registration_get",
    "resource_link_get",
    "resource_links_for_class",
    "tool_jwks",
    "tool_jwks_url",
    "tool_signing_key",
]


def registration_get(*, registration_id: uuid.UUID, tenant_id: uuid.UUID | None = None) -> RegistrationInfo:
    """The platform registration (issuer, client_id, token URL and audience...).

    With ``tenant_id``, another tenant's registration raises RegistrationNotFound.
    """
    return selectors.registration_info(selectors.registration_by_id(registration_id, tenant_id=tenant_id))


def tool_signing_key() -> SigningKey:
    """The tool's current private key and kid, to sign a client-credentials assertion
    (RS256, header ``kid``). Platforms verify it against ``tool_jwks_url()``."""
    key = keys.tool_key_current()
    return SigningKey(kid=key.kid, private_key_pem=key.private_key_pem)


def tool_jwks() -> dict[str, list[dict[str, object]]]:
    return keys.tool_jwks()


def tool_jwks_url() -> str:
    return settings.PUBLIC_BASE_URL + reverse("lti_tool:jwks")


def resource_link_get(*, link_id: uuid.UUID, tenant_id: uuid.UUID | None = None) -> ResourceLinkInfo:
    """A resource link seen at launch, with its AGS claim (line items URL, line item
    URL, scopes) and its context's NRPS claim (context_memberships_url), as last launched."""
    return selectors.resource_link_info(selectors.resource_link_by_id(link_id, tenant_id=tenant_id))


def resource_links_for_class(*, class_id: uuid.UUID, tenant_id: uuid.UUID) -> list[ResourceLinkInfo]:
    """Every resource link placed in contexts mapped to a core class."""
    return [
        selectors.resource_link_info(link)
        for link in selectors.resource_links_for_class(class_id, tenant_id=tenant_id)
    ]


def contexts_for_class(*, class_id: uuid.UUID, tenant_id: uuid.UUID) -> list[ContextInfo]:
    """The LMS contexts (with their NRPS endpoint) that map to a core class."""
    return [
        selectors.context_info(context)
        for context in selectors.contexts_for_class(class_id, tenant_id=tenant_id)
    ]
