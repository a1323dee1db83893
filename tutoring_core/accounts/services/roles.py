"""Roles (tenant, school, class scope) and guardian links."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import IntegrityError, transaction

from tutoring_core.accounts.models import (
    GuardianLink,
    Role,
    RoleAssignment,
    Tenant,
    User,
)
from tutoring_core.rows import save_changed


def role_assign(
    *,
    tenant: Tenant,
    user: User,
    role: str,
    school_id: uuid.UUID | None = None,
    class_id: uuid.UUID | None = None,
    source: str = "manual",
) -> tuple[RoleAssignment, bool]:
    """Grant a role at tenant, school or class scope. Idempotent; reactivates."""
    if role not in Role.values:
        raise ValueError(f"Unknown role {role!r}.")
    # None means "not at that scope" and matches IS NULL.
    scope: dict[str, Any] = {"school_id": school_id, "klass_id": class_id}
    try:
        with transaction.atomic():
            assignment, created = RoleAssignment.objects.get_or_create(
                tenant=tenant, user=user, role=role, **scope, defaults={"source": source}
            )
    except IntegrityError:
        assignment = RoleAssignment.objects.get(user=user, role=role, **scope)
        created = False
    save_changed(assignment, {"is_active": True})
    return assignment, created


def guardian_link(
    *, tenant: Tenant, guardian: User, student: User, relationship: str = "guardian", source: str = "manual"
) -> tuple[GuardianLink, bool]:
    link, created = GuardianLink.objects.update_or_create(
        guardian=guardian,
        student=student,
        defaults={"tenant": tenant, "relationship": relationship, "source": source, "is_active": True},
    )
    return link, created
