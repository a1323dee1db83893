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

# Bulk writes for roster sync at district scale (see the end of services.py).
from tutoring_core.classes.services import (  # noqa: E402
    ClassRow,
    CourseRow,
    EnrollmentRow,
    SchoolRow,
    TermRow,
    classes_bulk_deactivate,
    classes_bulk_upsert,
    courses_bulk_deactivate,
    courses_bulk_upsert,
    enrollments_bulk_deactivate,
    enrollments_bulk_upsert,
    schools_bulk_deactivate,
    schools_bulk_upsert,
    terms_bulk_deactivate,
    terms_bulk_set_parent,
    terms_bulk_upsert,
)

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
    "schools_bulk_deactivate",
    "schools_bulk_upsert",
    "terms_bulk_deactivate",
    "terms_bulk_set_parent",
    "terms_bulk_upsert",
]
