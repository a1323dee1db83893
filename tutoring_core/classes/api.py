"""The door other apps use for schools, classes and enrollments."""

from __future__ import annotations

from tutoring_core.classes.data import ClassKeyRef, ClassSummary, UpsertResult
from tutoring_core.classes.models import Class, ClassKey, Enrollment, School, Source, Term
from tutoring_core.classes.selectors import class_for_tenant, class_members, classes_for_user
from tutoring_core.classes.services import (
    class_deactivate,
    class_find,
    class_upsert,
    enrollment_deactivate,
    enrollment_upsert,
)

ClassKeyKind = ClassKey.Kind
EnrollmentStatus = Enrollment.Status

__all__ = [
    "Class",
    "ClassKeyKind",
    "ClassKeyRef",
    "ClassSummary",
    "EnrollmentStatus",
    "School",
    "Source",
    "Term",
    "UpsertResult",
    "class_deactivate",
    "class_find",
    "class_for_tenant",
    "class_members",
    "class_upsert",
    "classes_for_user",
    "enrollment_deactivate",
    "enrollment_upsert",
]
