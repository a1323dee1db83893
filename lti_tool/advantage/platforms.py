"""What this app needs to know about platform registrations and placements, read
only through ``lti_tool.api`` (issue 3 owns registrations, tool keys and the
claims stored at launch)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from lti_tool import api as lti
from tutoring_core.accounts.api import Tenant


class PlatformUnavailable(LookupError):
    """The registration is gone or turned off."""


@dataclass(frozen=True)
class PlatformAccess:
    registration_id: str
    tenant_id: uuid.UUID
    issuer: str
    client_id: str
    token_url: str
    audience: str
    key_id: str
    private_key_pem: str
    # "canvas" turns on Canvas's submission extension on scores.
    platform_kind: str = ""


# Every delivery needs these; a few seconds of staleness is harmless (a rotated key
# stays published for its overlap window) and saves two queries per score.
_CACHE_SECONDS = 5.0
_cache: dict[str, tuple[float, PlatformAccess]] = {}
_cache_lock = threading.Lock()


def platform_access(registration_id: uuid.UUID | str) -> PlatformAccess:
    name = str(registration_id)
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get(name)
    if hit is not None and hit[0] > now:
        return hit[1]
    try:
        info = lti.registration_get(registration_id=uuid.UUID(name))
    except (lti.RegistrationNotFound, ValueError) as exc:
        raise PlatformUnavailable(str(exc) or "No such platform registration.") from exc
    if not info.is_active:
        raise PlatformUnavailable(f"The platform registration for {info.issuer} is turned off.")
    key = lti.tool_signing_key()
    access = PlatformAccess(
        registration_id=name,
        tenant_id=info.tenant_id,
        issuer=info.issuer,
        client_id=info.client_id,
        token_url=info.token_url,
        audience=info.token_audience or info.token_url,
        key_id=key.kid,
        private_key_pem=key.private_key_pem,
        platform_kind=info.preset,
    )
    with _cache_lock:
        _cache[name] = (now + _CACHE_SECONDS, access)
    return access


def platform_access_forget() -> None:
    with _cache_lock:
        _cache.clear()


@dataclass(frozen=True)
class MembershipSource:
    tenant: Tenant
    class_id: uuid.UUID
    registration_id: uuid.UUID
    memberships_url: str


def memberships_for_class(*, tenant: Tenant, class_id: uuid.UUID) -> list[MembershipSource]:
    """The NRPS endpoints of the LMS contexts mapped to a class (usually one)."""
    return [
        MembershipSource(
            tenant=tenant,
            class_id=class_id,
            registration_id=context.registration_id,
            memberships_url=context.nrps.context_memberships_url,
        )
        for context in lti.contexts_for_class(class_id=class_id, tenant_id=tenant.pk)
        if context.nrps is not None and context.nrps.context_memberships_url
    ]


def gradable_links_for_class(*, tenant: Tenant, class_id: uuid.UUID) -> list[lti.ResourceLinkInfo]:
    """Resource links placed in the class whose launch carried an AGS claim."""
    return [
        link
        for link in lti.resource_links_for_class(class_id=class_id, tenant_id=tenant.pk)
        if link.ags is not None and (link.ags.lineitem_url or link.ags.lineitems_url)
    ]


def classes_with_memberships(class_refs: Iterator[tuple[Tenant, uuid.UUID]]) -> Iterator[MembershipSource]:
    for tenant, class_id in class_refs:
        yield from memberships_for_class(tenant=tenant, class_id=class_id)
