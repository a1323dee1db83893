"""The door other apps use for tenants, people, identities, roles and the audit log.

Integration apps (lti_tool, oneroster, sso, scorm) import from here, never from
``models`` or ``services`` directly.
"""

from __future__ import annotations

import datetime as dt

from django.contrib.auth import login as _login
from django.http import HttpRequest
from django.utils import timezone

from tutoring_core.accounts.data import IdentityKey, LinkHint, PersonProfile, PersonResult, TenantInfo
from tutoring_core.accounts.errors import (
    AccountsError,
    MergeRefused,
    ProvisioningRefused,
    TenantNotFound,
)
from tutoring_core.accounts.models import ExternalIdentity, Role, Tenant, User
from tutoring_core.accounts.selectors import is_district_admin, tenant_get, user_get, user_roles
from tutoring_core.accounts.services import (
    _apply_profile,
    audit_record,
    guardian_link,
    identity_link,
    person_resolve,
    role_assign,
    users_merge,
)

IdentityKind = ExternalIdentity.Kind

__all__ = [
    "AccountsError",
    "IdentityKey",
    "IdentityKind",
    "LinkHint",
    "MergeRefused",
    "PersonProfile",
    "PersonResult",
    "ProvisioningRefused",
    "Role",
    "Tenant",
    "TenantInfo",
    "TenantNotFound",
    "User",
    "audit_record",
    "client_ip",
    "guardian_link",
    "identity_link",
    "is_district_admin",
    "person_current",
    "person_resolve",
    "role_assign",
    "session_login",
    "tenant_get",
    "tenant_info",
    "user_get",
    "user_roles",
    "users_merge",
]


def person_current(
    *, tenant: Tenant, key: IdentityKey, profile: PersonProfile, seen_within: dt.timedelta
) -> User | None:
    """The person ``key`` names (with ``user.tenant`` loaded), read only, when
    ``person_resolve`` would change nothing: the identity exists, was seen within
    ``seen_within`` and the profile adds nothing new. None otherwise: call
    ``person_resolve``. One query; the hot path of a repeat sign-in."""
    identity = (
        ExternalIdentity.objects.select_related("user")
        .filter(tenant=tenant, kind=key.kind, issuer=key.issuer, subject=key.subject)
        .order_by()  # unique; the model's ordering would join the tenant just to sort
        .first()
    )
    if identity is None or identity.last_seen_at is None:
        return None
    if timezone.now() - identity.last_seen_at >= seen_within:
        return None
    user = identity.user
    if user.tenant_id != tenant.pk:
        return None
    user.tenant = tenant
    if _apply_profile(user, profile):  # changes the in-memory copy only; person_resolve reloads
        return None
    return user


def tenant_info(tenant: Tenant) -> TenantInfo:
    return TenantInfo(id=tenant.pk, slug=tenant.slug, name=tenant.name, time_zone=tenant.time_zone)


def client_ip(request: HttpRequest) -> str | None:
    # REMOTE_ADDR is the proxy's address behind nginx; deploy/ sets it from
    # X-Forwarded-For at the proxy (gunicorn forwarded_allow_ips), not here.
    return request.META.get("REMOTE_ADDR") or None


def session_login(request: HttpRequest, user: User, *, method: str) -> None:
    """Start a session for ``user`` after an external sign-in, and audit it."""
    if not user.is_active:
        raise ProvisioningRefused("This account is deactivated; ask your district admin.")
    _login(request, user, backend="tutoring_core.accounts.backends.TenantAwareModelBackend")
    audit_record(
        tenant=user.tenant,
        actor=user,
        action="auth.sign_in",
        target=user,
        ip_address=client_ip(request),
        details={"method": method},
    )


# Bulk writes for roster sync at district scale (see the end of services.py).
from tutoring_core.accounts.data import RowsQuery  # noqa: E402
from tutoring_core.accounts.services import (  # noqa: E402
    PersonBulkResult,
    PersonRow,
    RoleRow,
    guardian_links_bulk_deactivate,
    guardian_links_bulk_upsert,
    people_bulk_upsert,
    people_bulk_upsert_query,
    roles_bulk_assign,
    roles_bulk_assign_query,
    roles_bulk_deactivate,
    users_bulk_set_active,
)

__all__ += [
    "PersonBulkResult",
    "PersonRow",
    "RoleRow",
    "RowsQuery",
    "guardian_links_bulk_deactivate",
    "guardian_links_bulk_upsert",
    "people_bulk_upsert",
    "people_bulk_upsert_query",
    "roles_bulk_assign",
    "roles_bulk_assign_query",
    "roles_bulk_deactivate",
    "users_bulk_set_active",
]
