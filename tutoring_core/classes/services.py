"""Writes for the canonical roster: classes and enrollments, upserted idempotently."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from django.db import IntegrityError, transaction

from tutoring_core.accounts.models import Role, Tenant, User
from tutoring_core.classes.data import ClassKeyRef, UpsertResult
from tutoring_core.classes.models import Class, ClassKey, Enrollment, Source
from tutoring_core.rows import save_changed


def class_find(*, tenant: Tenant, key: ClassKeyRef) -> Class | None:
    keys = ClassKey.objects.select_related("klass").filter(tenant=tenant, kind=key.kind, subject=key.subject)
    if key.issuer is not None:
        found = keys.filter(issuer=key.issuer).first()
        return found.klass if found else None
    # Any issuer: join only when the subject names exactly one class (never guess).
    matches = list(keys[:10])
    if len({k.klass_id for k in matches}) != 1:
        return None
    return matches[0].klass


def class_upsert(
    *,
    tenant: Tenant,
    key: ClassKeyRef,
    title: str,
    code: str = "",
    source: str = Source.MANUAL,
    school_id: uuid.UUID | None = None,
    course_id: uuid.UUID | None = None,
    link_to: ClassKeyRef | Sequence[ClassKeyRef] | None = None,
) -> UpsertResult:
    """Create or update the class known by ``key``.

    ``link_to`` joins a new key to a class already known under another key (an
    LTI context whose ``lis.course_section_sourcedid`` names a roster class).
    Several candidates may be given; the first that names a class wins.
    Empty titles never overwrite a known title. Reactivates a deactivated class.
    """
    if key.issuer is None:
        raise ValueError("A class key needs its issuer; issuer=None is for link_to lookups only.")
    title = title.strip()[:255]
    for _attempt in range(3):
        klass = class_find(tenant=tenant, key=key)
        if klass is not None:
            values: dict[str, object] = {"is_active": True}
            if title:
                values["title"] = title
            if code:
                values["code"] = code[:64]
            if school_id:
                values["school_id"] = school_id
            if course_id:
                values["course_id"] = course_id
            changed = save_changed(klass, values)
            return UpsertResult(id=klass.pk, created=False, changed=bool(changed))
        try:
            with transaction.atomic():
                target = None
                for candidate in [link_to] if isinstance(link_to, ClassKeyRef) else (link_to or []):
                    target = class_find(tenant=tenant, key=candidate)
                    if target is not None:
                        break
                created = target is None
                if target is None:
                    target = Class.objects.create(
                        tenant=tenant,
                        title=title or key.subject,
                        code=code[:64],
                        source=source,
                        school_id=school_id,
                        course_id=course_id,
                    )
                ClassKey.objects.create(
                    tenant=tenant, kind=key.kind, issuer=key.issuer, subject=key.subject, klass=target
                )
                return UpsertResult(id=target.pk, created=created, changed=True)
        except IntegrityError:
            continue  # a concurrent first launch created the key; read it again
    raise RuntimeError(f"Could not upsert class {key} after concurrent inserts.")


def class_deactivate(*, tenant: Tenant, class_id: uuid.UUID) -> bool:
    return bool(Class.objects.filter(tenant=tenant, pk=class_id, is_active=True).update(is_active=False))


def enrollment_upsert(
    *,
    tenant: Tenant,
    class_id: uuid.UUID,
    user: User,
    role: str,
    source: str = Source.MANUAL,
    is_primary: bool = False,
) -> UpsertResult:
    """Make ``user`` an active member of the class with ``role``. Idempotent."""
    if role not in Role.values:
        raise ValueError(f"Unknown role {role!r}.")
    if user.tenant_id != tenant.pk or not Class.objects.filter(tenant=tenant, pk=class_id).exists():
        raise ValueError("The person and the class must belong to this tenant.")
    defaults = {"tenant": tenant, "source": source, "status": Enrollment.Status.ACTIVE}
    try:
        with transaction.atomic():
            enrollment, created = Enrollment.objects.get_or_create(
                klass_id=class_id, user=user, role=role, defaults={**defaults, "is_primary": is_primary}
            )
    except IntegrityError:
        enrollment, created = Enrollment.objects.get(klass_id=class_id, user=user, role=role), False
    if created:
        return UpsertResult(id=enrollment.pk, created=True, changed=True)
    changed = save_changed(enrollment, {"status": Enrollment.Status.ACTIVE})
    return UpsertResult(id=enrollment.pk, created=False, changed=bool(changed))


def enrollment_deactivate(
    *,
    tenant: Tenant,
    class_id: uuid.UUID,
    user: User | None = None,
    role: str | None = None,
    source: str | None = None,
    keep_user_ids: set[uuid.UUID] | None = None,
) -> int:
    """Mark enrollments inactive (history is kept; nothing is deleted).

    With ``keep_user_ids``, deactivates everyone in the class (of that source) who
    is not in the set: a full membership list replacing the last one.
    """
    enrollments = Enrollment.objects.filter(tenant=tenant, klass_id=class_id, status=Enrollment.Status.ACTIVE)
    if user is not None:
        enrollments = enrollments.filter(user=user)
    if role is not None:
        enrollments = enrollments.filter(role=role)
    if source is not None:
        enrollments = enrollments.filter(source=source)
    if keep_user_ids is not None:
        enrollments = enrollments.exclude(user_id__in=keep_user_ids)
    return enrollments.update(status=Enrollment.Status.INACTIVE)
