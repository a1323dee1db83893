"""The door other apps use for schools, classes and enrollments."""

from __future__ import annotations

import uuid

from tutoring_core.accounts.models import Tenant, User
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


def class_enrollment_current(
    *, tenant: Tenant, key: ClassKeyRef, user: User, role: str, title: str, code: str = ""
) -> uuid.UUID | None:
    """The id of the class known by ``key`` when ``class_upsert`` with these values and
    ``enrollment_upsert`` of ``user`` as ``role`` would both change nothing (the class
    is active, titled and coded so, the enrollment active). None otherwise: call them.
    One query, read only; the hot path of a repeat launch."""
    if key.issuer is None:
        return None
    row = (
        Enrollment.objects.filter(
            tenant=tenant,
            user=user,
            role=role,
            status=Enrollment.Status.ACTIVE,
            klass__tenant=tenant,
            klass__keys__tenant=tenant,
            klass__keys__kind=key.kind,
            klass__keys__issuer=key.issuer,
            klass__keys__subject=key.subject,
        )
        .values_list("klass_id", "klass__is_active", "klass__title", "klass__code")
        .order_by()  # unique (enrollment_unique, class_key_unique); no sort
        .first()
    )
    if row is None:
        return None
    class_id, is_active, known_title, known_code = row
    # The same rules as class_upsert: empty values never overwrite what is known.
    title = title.strip()[:255]
    if not is_active or (title and title != known_title) or (code and code[:64] != known_code):
        return None
    return class_id


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
    "class_enrollment_current",
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
    classes_bulk_upsert_query,
    courses_bulk_deactivate,
    courses_bulk_upsert,
    enrollments_bulk_deactivate,
    enrollments_bulk_upsert,
    enrollments_bulk_upsert_query,
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
    "classes_bulk_upsert_query",
    "courses_bulk_deactivate",
    "courses_bulk_upsert",
    "enrollments_bulk_deactivate",
    "enrollments_bulk_upsert",
    "enrollments_bulk_upsert_query",
    "schools_bulk_deactivate",
    "schools_bulk_upsert",
    "terms_bulk_deactivate",
    "terms_bulk_set_parent",
    "terms_bulk_upsert",
]
