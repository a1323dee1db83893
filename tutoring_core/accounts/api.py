"""The door other apps use for tenants, people, identities, roles and the audit log.

Integration apps (lti_tool, oneroster, sso, scorm) import from here, never from
``models`` or ``services`` directly.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import uuid
from collections.abc import Iterable
from typing import Any

from django.contrib.auth import login as _login
from django.http import HttpRequest

from tutoring_core.accounts.admin_scoping import can_administer_tenant, is_platform_staff
from tutoring_core.accounts.data import (
    AuditEntry,
    AuditTarget,
    GuardianInfo,
    IdentityKey,
    LinkHint,
    MergeInfo,
    PersonProfile,
    PersonResult,
    RoleGrant,
    TenantInfo,
)
from tutoring_core.accounts.errors import (
    AccountsError,
    MergeRefused,
    ProvisioningRefused,
    TenantNotFound,
)
from tutoring_core.accounts.models import ExternalIdentity, Role, Tenant, User
from tutoring_core.accounts.selectors import (
    identity_with_user,
    is_district_admin,
    person_if_current,
    tenant_get,
    user_get,
    user_roles,
)
from tutoring_core.accounts.services import audit as _audit
from tutoring_core.accounts.services import people as _people
from tutoring_core.accounts.services import person_resolve
from tutoring_core.accounts.services import roles as _roles

IdentityKind = ExternalIdentity.Kind

__all__ = [
    "AccountsError",
    "AuditEntry",
    "AuditTarget",
    "GuardianInfo",
    "IdentityKey",
    "IdentityKind",
    "LinkHint",
    "MergeInfo",
    "MergeRefused",
    "PersonProfile",
    "PersonResult",
    "ProvisioningRefused",
    "Role",
    "RoleGrant",
    "Tenant",
    "TenantInfo",
    "TenantNotFound",
    "User",
    "audit_record",
    "can_administer_tenant",
    "client_ip",
    "guardian_link",
    "identity_link",
    "identity_subject",
    "is_district_admin",
    "is_platform_staff",
    "person_by_username",
    "person_current",
    "person_for_sign_in",
    "person_resolve",
    "role_assign",
    "session_login",
    "tenant_by_id",
    "tenant_get",
    "tenant_info",
    "tenants_by_id",
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
    found = identity_with_user(tenant=tenant, key=key)
    if found is None:
        return None
    identity, user = found
    return person_if_current(identity, user, tenant=tenant, profile=profile, seen_within=seen_within)


def tenant_by_id(tenant_id: uuid.UUID | str | None) -> Tenant | None:
    """The active tenant ``tenant_id`` names; None for none (or a deactivated one)."""
    if not tenant_id:
        return None
    return Tenant.objects.active().filter(pk=tenant_id).first()


def tenants_by_id(tenant_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Tenant]:
    """The tenants (active or not) among ``tenant_ids``, by id, in one query."""
    return Tenant.objects.in_bulk(set(tenant_ids))


def person_for_sign_in(*, tenant: Tenant, user_id: uuid.UUID) -> User:
    """The person ``person_resolve`` answered with, as ``session_login`` takes them
    (``user.tenant`` loaded). Raises ProvisioningRefused when the id is not a
    person of ``tenant``."""
    user = User.objects.select_related("tenant").filter(tenant=tenant, pk=user_id).first()
    if user is None:
        raise ProvisioningRefused("This person is not known in this district.")
    return user


def person_by_username(*, tenant: Tenant, username: str) -> User | None:
    return User.objects.filter(tenant=tenant, username=username).first()


def identity_subject(*, tenant_id: uuid.UUID, user_id: uuid.UUID, kind: str, issuer: str) -> str | None:
    """How ``issuer`` names the person ``user_id`` (their most recently seen identity
    of ``kind`` there); None when it does not know them."""
    subject = (
        ExternalIdentity.objects.filter(tenant_id=tenant_id, user_id=user_id, kind=kind, issuer=issuer)
        .order_by("-last_seen_at", "-created_at")
        .values_list("subject", flat=True)
        .first()
    )
    return subject or None


# --- Writes: rows go in (the caller holds them), values come out ---------------------------


def audit_record(
    *,
    tenant: Tenant | None,
    actor: User | None,
    action: str,
    target: Any = None,
    ip_address: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one audit row (one INSERT). ``target``: the row the action was about,
    or an AuditTarget naming it."""
    entry = _audit.audit_record(
        tenant=tenant, actor=actor, action=action, target=target, ip_address=ip_address, details=details
    )
    return AuditEntry(id=entry.pk, action=entry.action, created_at=entry.created_at)


def role_assign(
    *,
    tenant: Tenant,
    user: User,
    role: str,
    school_id: uuid.UUID | None = None,
    class_id: uuid.UUID | None = None,
    source: str = "manual",
) -> RoleGrant:
    """Grant a role at tenant, school or class scope. Idempotent; reactivates."""
    assignment, created = _roles.role_assign(
        tenant=tenant, user=user, role=role, school_id=school_id, class_id=class_id, source=source
    )
    return RoleGrant(
        id=assignment.pk,
        user_id=assignment.user_id,
        role=assignment.role,
        school_id=assignment.school_id,
        class_id=assignment.klass_id,
        is_active=assignment.is_active,
        created=created,
    )


def guardian_link(
    *, tenant: Tenant, guardian: User, student: User, relationship: str = "guardian", source: str = "manual"
) -> GuardianInfo:
    """Make ``guardian`` a guardian of ``student`` (idempotent; reactivates)."""
    link, created = _roles.guardian_link(
        tenant=tenant, guardian=guardian, student=student, relationship=relationship, source=source
    )
    return GuardianInfo(
        guardian_id=link.guardian_id,
        student_id=link.student_id,
        relationship=link.relationship,
        created=created,
    )


def identity_link(*, tenant: Tenant, user: User, key: IdentityKey) -> IdentityKey:
    """Attach ``key`` to ``user`` explicitly (an admin's decision). Idempotent; raises
    MergeRefused when the key is another person's."""
    identity = _people.identity_link(tenant=tenant, user=user, key=key)
    return IdentityKey(kind=identity.kind, issuer=identity.issuer, subject=identity.subject)


def users_merge(*, tenant: Tenant, kept: User, merged: User, actor: User | None, reason: str) -> MergeInfo:
    """Fold ``merged`` into ``kept`` (identities, enrollments, roles move; ``merged`` is
    deactivated); recorded and audited. Raises MergeRefused."""
    record = _people.users_merge(tenant=tenant, kept=kept, merged=merged, actor=actor, reason=reason)
    return MergeInfo(
        id=record.pk,
        kept_id=record.kept_id,
        merged_id=record.merged_id,
        moved=tuple(sorted(record.moved.items())),
    )


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
    reading it first (an LTI launch, which keeps nothing of an earlier session)."""
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


# Bulk writes for roster sync at district scale (bulk.py): typed rows in, ids out.
from tutoring_core.accounts.bulk import (  # noqa: E402
    guardian_links_bulk_deactivate,
    guardian_links_bulk_upsert,
    people_bulk_upsert,
    roles_bulk_assign,
    roles_bulk_deactivate,
    users_bulk_set_active,
)
from tutoring_core.accounts.data import PersonBulkResult, PersonRow, RoleRow  # noqa: E402

__all__ += [
    "PersonBulkResult",
    "PersonRow",
    "RoleRow",
    "guardian_links_bulk_deactivate",
    "guardian_links_bulk_upsert",
    "people_bulk_upsert",
    "roles_bulk_assign",
    "roles_bulk_deactivate",
    "users_bulk_set_active",
]
