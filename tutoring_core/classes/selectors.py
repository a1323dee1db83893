from __future__ import annotations

import uuid

from django.db.models import QuerySet

from tutoring_core.accounts.models import Tenant, User
from tutoring_core.classes.data import ClassSummary
from tutoring_core.classes.models import Class, Enrollment


def classes_for_user(*, user: User) -> list[ClassSummary]:
    """The classes a person is actively enrolled in, with their role in each."""
    enrollments = (
        Enrollment.objects.active()
        .filter(user=user, klass__is_active=True)
        .select_related("klass", "klass__school")
        .order_by("klass__title", "role")
    )
    return [
        ClassSummary(
            id=e.klass.pk,
            title=e.klass.title,
            code=e.klass.code,
            school=e.klass.school.name if e.klass.school else "",
            role=e.role,
            is_active=e.klass.is_active,
        )
        for e in enrollments
    ]


def class_members(*, klass: Class) -> QuerySet[Enrollment]:
    return (
        Enrollment.objects.active()
        .filter(klass=klass)
        .select_related("user")
        .order_by("role", "user__last_name", "user__first_name")
    )


def class_for_tenant(*, tenant: Tenant, class_id: uuid.UUID) -> Class:
    return Class.objects.get(tenant=tenant, pk=class_id)
