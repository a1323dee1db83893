"""The door other apps use for tenants, people, identities, roles and the audit log.

Integration apps (lti_tool, oneroster, sso, scorm) import from here, never from
``models`` or ``services`` directly.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from typing import Any

from django.contrib.auth import login as _login
from django.http import HttpRequest
from django.utils import timezone

from tutoring_core import rawsql
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

# person_current's read, written once (tutoring_core.rawsql: the ORM spent more
# CPU compiling it than the database spent answering it, on every repeat sign-in).
# The pieces are shared with core reads that join a person to more
# (classes.api.person_class_current); the WHERE takes tenant, kind, issuer, subject.
IDENTITY_USER_ROW = rawsql.RowReader((ExternalIdentity, "i"), (User, "u"))
IDENTITY_USER_FROM = (
    f"{rawsql.table(ExternalIdentity)} i"
    f" JOIN {rawsql.table(User)} u ON u.{rawsql.column(User, 'id')} = i.{rawsql.column(ExternalIdentity, 'user')}"
)
IDENTITY_KEY_WHERE = " AND ".join(
    f"i.{rawsql.column(ExternalIdentity, name)} = %s" for name in ("tenant", "kind", "issuer", "subject")
)
_IDENTITY_USER_SQL = (
    f"SELECT {IDENTITY_USER_ROW.columns()} FROM {IDENTITY_USER_FROM} WHERE {IDENTITY_KEY_WHERE}"  # noqa: S608 - names from the models; values are parameters
)


def identity_key_params(tenant: Tenant, key: IdentityKey) -> list[Any]:
    """IDENTITY_KEY_WHERE's parameters, as the columns store them."""
    return [
        rawsql.param(ExternalIdentity, "tenant", tenant.pk),
        rawsql.param(ExternalIdentity, "kind", key.kind),
        rawsql.param(ExternalIdentity, "issuer", key.issuer),
        rawsql.param(ExternalIdentity, "subject", key.subject),
    ]


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
    "person_if_current",
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
    found = IDENTITY_USER_ROW.fetch_one(_IDENTITY_USER_SQL, identity_key_params(tenant, key))
    if found is None:
        return None
    identity, user = found
    return person_if_current(identity, user, tenant=tenant, profile=profile, seen_within=seen_within)


def person_if_current(
    identity: ExternalIdentity,
    user: User,
    *,
    tenant: Tenant,
    profile: PersonProfile,
    seen_within: dt.timedelta,
) -> User | None:
    """``person_current``'s rules on an identity and its user read by the caller (in a
    query of its own, see classes.api.person_class_current): the user, with
    ``user.tenant`` set, or None when ``person_resolve`` would change something."""
    if identity.last_seen_at is None:
        return None
    if timezone.now() - identity.last_seen_at >= seen_within:
        return None
    if user.tenant_id != tenant.pk or identity.tenant_id != tenant.pk or identity.user_id != user.pk:
        return None
    user.tenant = tenant
    if _apply_profile(user, profile):  # changes the in-memory copy only; person_resolve reloads
        return None
    return user


def tenant_info(tenant: Tenant) -> TenantInfo:
    return TenantInfo(id=tenant.pk, slug=tenant.slug, name=tenant.name, time_zone=tenant.time_zone)


def client_ip(request: HttpRequest) -> str | None:
    """The client's address, for the audit log and sign-in throttling (django-axes
    reads it through AXES_CLIENT_IP_CALLABLE, so both always agree). None when the
    server handed us something that is not an address."""
    # REMOTE_ADDR is the proxy's address behind nginx; deploy/ sets it from
    # X-Forwarded-For at the proxy (gunicorn forwarded_allow_ips), not here.
    value = request.META.get("REMOTE_ADDR") or None
    if value is None:
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def session_login(request: HttpRequest, user: User, *, method: str, fresh: bool = False) -> None:
    """Start a session for ``user`` after an external sign-in, and audit it.

    ``fresh``: the sign-in replaces whatever session the browser had without
    reading it first (an LTI launch, which keeps nothing of an earlier session):
    the old row is deleted by its key and a new one written, one query fewer than
    Django's check of who the old session belonged to."""
    if not user.is_active:
        raise ProvisioningRefused("This account is deactivated; ask your district admin.")
    if fresh:
        request.session.flush()
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
