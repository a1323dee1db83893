from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from tutoring_core import rawsql
from tutoring_core.accounts.data import IdentityKey, PersonProfile
from tutoring_core.accounts.errors import TenantNotFound
from tutoring_core.accounts.models import ExternalIdentity, GuardianLink, Role, RoleAssignment, Tenant, User
from tutoring_core.accounts.services.people import _apply_profile


def tenant_get(*, slug: str) -> Tenant:
    try:
        return Tenant.objects.active().get(slug=slug)
    except Tenant.DoesNotExist:
        raise TenantNotFound(f"No active tenant has the slug {slug!r}.") from None


def user_get(*, tenant: Tenant, user_id: uuid.UUID) -> User:
    return User.objects.get(tenant=tenant, pk=user_id)


def user_roles(*, user: User) -> set[str]:
    """Every role the person holds anywhere (tenant, school, or class scope, or enrollment)."""
    roles = set(RoleAssignment.objects.active().filter(user=user).values_list("role", flat=True))
    roles |= set(user.enrollments.filter(status="active").values_list("role", flat=True))
    if GuardianLink.objects.filter(guardian=user, is_active=True).exists():
        roles.add(Role.GUARDIAN)
    return roles


def is_district_admin(user: User) -> bool:
    if not user.is_authenticated or user.tenant_id is None:
        return False
    return (
        RoleAssignment.objects.active()
        .filter(user=user, role=Role.DISTRICT_ADMIN, school__isnull=True, klass__isnull=True)
        .exists()
    )


def wards_of(*, guardian: User) -> QuerySet[User]:
    return User.objects.filter(guardians__guardian=guardian, guardians__is_active=True).order_by(
        "last_name", "first_name"
    )


# The identity-and-user read of every repeat sign-in, written once (see
# tutoring_core.rawsql for why and what it measured). The pieces are shared with
# classes.api.person_class_current, which joins a person to their class; the WHERE
# takes tenant, kind, issuer, subject (identity_key_params).
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


def identity_with_user(*, tenant: Tenant, key: IdentityKey) -> tuple[ExternalIdentity, User] | None:
    """The identity ``key`` names in ``tenant`` and its user, in one query."""
    found = IDENTITY_USER_ROW.fetch_one(_IDENTITY_USER_SQL, identity_key_params(tenant, key))
    return None if found is None else (found[0], found[1])


def person_if_current(
    identity: ExternalIdentity,
    user: User,
    *,
    tenant: Tenant,
    profile: PersonProfile,
    seen_within: dt.timedelta,
) -> User | None:
    """``person_current``'s rules on an identity and its user read by the caller (in a
    query of its own, see classes.selectors.person_class_current): the user, with
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
