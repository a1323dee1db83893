"""Plain values that cross the lti_tool door (api.py)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RegistrationInfo:
    """A platform registration as other apps (LTI Advantage services) need it."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    issuer: str
    client_id: str
    auth_login_url: str
    token_url: str
    key_set_url: str
    # Audience for the client-credentials assertion: the token URL unless the
    # platform names another (Brightspace: https://api.brightspace.com/auth/token).
    token_audience: str
    preset: str
    is_active: bool


@dataclass(frozen=True)
class SigningKey:
    """The tool's current signing key (for client assertions): never log it."""

    kid: str
    private_key_pem: str
    algorithm: str = "RS256"


@dataclass(frozen=True)
class AgsEndpoint:
    """The AGS claim of the last launch from a resource link."""

    lineitems_url: str
    lineitem_url: str
    scopes: tuple[str, ...]


@dataclass(frozen=True)
class NrpsEndpoint:
    context_memberships_url: str
    service_versions: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class ResourceLinkInfo:
    id: uuid.UUID
    tenant_id: uuid.UUID
    registration_id: uuid.UUID
    deployment_id: str
    resource_link_id: str
    title: str
    class_id: uuid.UUID | None
    context_id: str | None
    ags: AgsEndpoint | None
    nrps: NrpsEndpoint | None


@dataclass(frozen=True)
class ContextInfo:
    id: uuid.UUID
    tenant_id: uuid.UUID
    registration_id: uuid.UUID
    deployment_id: str
    context_id: str
    class_id: uuid.UUID | None
    title: str
    nrps: NrpsEndpoint | None
