"""The door other apps use for schools, classes and enrollments."""

from __future__ import annotations

import uuid

from tutoring_core.accounts.data import AuditTarget
from tutoring_core.accounts.models import Role
from tutoring_core.classes.data import ClassInfo, ClassKeyRef, ClassSummary, MemberInfo, UpsertResult
from tutoring_core.classes.models import Class, ClassKey, Enrollment, Source
from tutoring_core.classes.selectors import (
    class_enrollment_current,
    classes_for_user,
    person_class_current,
)
from tutoring_core.classes.services import (
    class_deactivate,
    class_upsert,
    enrollment_deactivate,
    enrollment_upsert,
)

ClassKeyKind = ClassKey.Kind
EnrollmentStatus = Enrollment.Status


def class_info(*, tenant_id: uuid.UUID, class_id: uuid.UUID | str) -> ClassInfo | None:
    """The class ``class_id`` in that tenant; None when there is none (another
    tenant's class included)."""
    found = Class.objects.filter(tenant_id=tenant_id, pk=class_id).values_list(
        "id", "tenant_id", "title", "code", "is_active"
    )[:1]
    row = next(iter(found), None)
    return None if row is None else ClassInfo(*row)


def class_member_list(
    *, tenant_id: uuid.UUID, class_id: uuid.UUID, role: str | None = None
) -> list[MemberInfo]:
    """The class's active members (only ``role`` when given), ordered by role and name;
    empty for another tenant's class. One query."""
    enrollments = Enrollment.objects.active().filter(tenant_id=tenant_id, klass_id=class_id)
    if role is not None:
        enrollments = enrollments.filter(role=role)
    labels = dict(Role.choices)
    return [
        MemberInfo(
            user_id=enrollment.user_id,
            name=enrollment.user.full_name or enrollment.user.username,
            role=enrollment.role,
            role_label=str(labels.get(enrollment.role, enrollment.role)),
            email=enrollment.user.email,
            source=enrollment.source,
        )
        for enrollment in enrollments.select_related("user").order_by(
            "role", "user__last_name", "user__first_name"
        )
    ]


def class_member_roles(*, tenant_id: uuid.UUID, class_id: uuid.UUID, user_id: uuid.UUID) -> frozenset[str]:
    """The roles ``user_id`` actively holds in the class; empty when none (another
    tenant's class included). One query."""
    return frozenset(
        Enrollment.objects.active()
        .filter(tenant_id=tenant_id, klass_id=class_id, user_id=user_id)
        .values_list("role", flat=True)
    )


def class_audit_target(klass: ClassInfo) -> AuditTarget:
    """How the audit log names ``klass`` (as it names a Class row)."""
    return AuditTarget(type=Class._meta.label_lower, id=str(klass.id), label=klass.title)


__all__ = [
    "ClassInfo",
    "ClassKeyKind",
    "ClassKeyRef",
    "ClassSummary",
    "EnrollmentStatus",
    "MemberInfo",
    "Source",
    "UpsertResult",
    "class_audit_target",
    "class_deactivate",
    "class_enrollment_current",
    "class_info",
    "class_member_list",
    "class_member_roles",
    "class_upsert",
    "classes_for_user",
    "enrollment_deactivate",
    "enrollment_upsert",
    "person_class_current",
]

# Bulk writes for roster sync at district scale (bulk.py): typed rows in, ids out.
from tutoring_core.classes.bulk import (  # noqa: E402
    classes_bulk_deactivate,
    classes_bulk_upsert,
    courses_bulk_deactivate,
    courses_bulk_upsert,
    enrollments_bulk_deactivate,
    enrollments_bulk_upsert,
    roster_statistics_refresh,
    schools_bulk_deactivate,
    schools_bulk_upsert,
    terms_bulk_deactivate,
    terms_bulk_set_parent,
    terms_bulk_upsert,
)
from tutoring_core.classes.data import ClassRow, CourseRow, EnrollmentRow, SchoolRow, TermRow  # noqa: E402

__all__ += [
    "ClassRow",
    "CourseRow",
    "EnrollmentRow",
    "SchoolRow",
    "TermRow",
    "classes_bulk_deactivate",
    "classes_bulk_upsert",
    "courses_bulk_deactivate",
    "courses_bulk_upsert",
    "enrollments_bulk_deactivate",
    "enrollments_bulk_upsert",
    "roster_statistics_refresh",
    "schools_bulk_deactivate",
    "schools_bulk_upsert",
    "terms_bulk_deactivate",
    "terms_bulk_set_parent",
    "terms_bulk_upsert",
]
