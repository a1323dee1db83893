from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

from django.db import connection
from django.db.models import QuerySet

from tutoring_core import rawsql
from tutoring_core.accounts.api import IdentityKey, PersonProfile, person_current
from tutoring_core.accounts.models import ExternalIdentity, Tenant, User
from tutoring_core.accounts.selectors import (
    IDENTITY_KEY_WHERE,
    IDENTITY_USER_FROM,
    IDENTITY_USER_ROW,
    identity_key_params,
    person_if_current,
)
from tutoring_core.classes.data import ClassKeyRef, ClassSummary
from tutoring_core.classes.models import Class, ClassKey, Enrollment


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


# class_enrollment_current's read, written once (see tutoring_core.rawsql): the
# enrollment of the user in the class a key names, in the same tenant throughout.
# person_class_current joins the same to a person.
_c = rawsql.column
_CLASS_COLUMNS = ", ".join(f"c.{_c(Class, name)}" for name in ("id", "is_active", "title", "code"))
_KEY_CLASS_ENROLLMENT = (
    f"{rawsql.table(ClassKey)} k"
    f" JOIN {rawsql.table(Class)} c ON c.{_c(Class, 'id')} = k.{_c(ClassKey, 'klass')}"
    f" AND c.{_c(Class, 'tenant')} = k.{_c(ClassKey, 'tenant')}"
    f" JOIN {rawsql.table(Enrollment)} e ON e.{_c(Enrollment, 'klass')} = c.{_c(Class, 'id')}"
    f" AND e.{_c(Enrollment, 'tenant')} = k.{_c(ClassKey, 'tenant')}"
)
# Takes role, status, kind, issuer, subject.
_ENROLLMENT_MATCH = (
    f"e.{_c(Enrollment, 'role')} = %s AND e.{_c(Enrollment, 'status')} = %s AND k.{_c(ClassKey, 'kind')} = %s"
    f" AND k.{_c(ClassKey, 'issuer')} = %s AND k.{_c(ClassKey, 'subject')} = %s"
)


def _enrollment_match_params(role: str, key: ClassKeyRef) -> list[Any]:
    return [
        rawsql.param(Enrollment, "role", role),
        rawsql.param(Enrollment, "status", Enrollment.Status.ACTIVE),
        rawsql.param(ClassKey, "kind", key.kind),
        rawsql.param(ClassKey, "issuer", key.issuer),
        rawsql.param(ClassKey, "subject", key.subject),
    ]


_ENROLLMENT_CLASS_SQL = (
    f"SELECT {_CLASS_COLUMNS} FROM {_KEY_CLASS_ENROLLMENT}"  # noqa: S608 - names from the models; values are parameters
    f" WHERE k.{_c(ClassKey, 'tenant')} = %s AND e.{_c(Enrollment, 'user')} = %s AND {_ENROLLMENT_MATCH}"
)
_CLASS_ID = Class._meta.get_field("id")


def class_enrollment_current(
    *, tenant: Tenant, key: ClassKeyRef, user: User, role: str, title: str, code: str = ""
) -> uuid.UUID | None:
    """The id of the class known by ``key`` when ``class_upsert`` with these values and
    ``enrollment_upsert`` of ``user`` as ``role`` would both change nothing (the class
    is active, titled and coded so, the enrollment active). None otherwise: call them.
    One query, read only; the hot path of a repeat launch."""
    if key.issuer is None:
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            _ENROLLMENT_CLASS_SQL,
            [
                rawsql.param(Enrollment, "tenant", tenant.pk),
                rawsql.param(Enrollment, "user", user.pk),
                *_enrollment_match_params(role, key),
            ],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    return _class_if_current(row, title=title, code=code)


def _class_if_current(row: Sequence[Any], *, title: str, code: str) -> uuid.UUID | None:
    """class_enrollment_current's rules on its row (id, is_active, title, code)."""
    class_id, is_active, known_title, known_code = row
    if class_id is None:  # person_class_current's LEFT JOIN found no enrollment
        return None
    class_id = _CLASS_ID.to_python(class_id)  # a hex string on SQLite
    # The same rules as class_upsert: empty values never overwrite what is known.
    title = title.strip()[:255]
    if not is_active or (title and title != known_title) or (code and code[:64] != known_code):
        return None
    return class_id


# person_class_current's read: the identity and its user, and (LEFT JOIN) the class
# the key names with the user's enrollment in it, all in the tenant.
_i = lambda f: rawsql.column(ExternalIdentity, f)  # noqa: E731
_PERSON_CLASS_SQL = (
    f"SELECT {IDENTITY_USER_ROW.columns()}, {_CLASS_COLUMNS} FROM {IDENTITY_USER_FROM}"  # noqa: S608 - names from the models; values are parameters
    f" LEFT JOIN ({_KEY_CLASS_ENROLLMENT}) ON k.{_c(ClassKey, 'tenant')} = i.{_i('tenant')}"
    f" AND e.{_c(Enrollment, 'user')} = i.{_i('user')} AND {_ENROLLMENT_MATCH}"
    f" WHERE {IDENTITY_KEY_WHERE}"
)


def person_class_current(
    *,
    tenant: Tenant,
    person: IdentityKey,
    profile: PersonProfile,
    seen_within: dt.timedelta,
    key: ClassKeyRef,
    role: str,
    title: str,
    code: str = "",
) -> tuple[User | None, uuid.UUID | None]:
    """``accounts.api.person_current`` and then ``class_enrollment_current`` for that
    person, in one query: (user, class id), each None where its own function would
    answer None (then call person_resolve, or class_upsert and enrollment_upsert).
    The hot path of a repeat launch into a known class."""
    if key.issuer is None:
        user = person_current(tenant=tenant, key=person, profile=profile, seen_within=seen_within)
        return user, None
    found = None
    with connection.cursor() as cursor:
        cursor.execute(
            _PERSON_CLASS_SQL,
            [
                *_enrollment_match_params(role, key),
                *identity_key_params(tenant, person),
            ],
        )
        found = cursor.fetchone()
    if found is None:
        return None, None
    identity, user = IDENTITY_USER_ROW.read(found)
    user = person_if_current(identity, user, tenant=tenant, profile=profile, seen_within=seen_within)
    if user is None:
        return None, None
    return user, _class_if_current(found[-4:], title=title, code=code)
