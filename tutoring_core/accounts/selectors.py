from __future__ import annotations

import uuid

from django.db.models import QuerySet

from tutoring_core.accounts.errors import TenantNotFound
from tutoring_core.accounts.models import GuardianLink, Role, RoleAssignment, Tenant, User


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
