"""Bulk writes of schools, terms, courses, classes and enrollments, for roster sync.

The per-row functions in services.py do several queries per row; a district import
has hundreds of thousands of rows. These take a chunk and do a fixed number of
queries for it, through the ORM, on SQLite and PostgreSQL alike (one engine: the
tests run what production runs).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

from django.db import transaction
from django.utils import timezone

from tutoring_core.accounts.bulk import _check_roles, _check_tenant_people
from tutoring_core.accounts.models import ExternalIdentity, GuardianLink, RoleAssignment, Tenant, User
from tutoring_core.bulk_write import (
    ForeignTenantRows,
    bulk_write,
    bulk_write_values,
    statistics_refresh_grown,
)
from tutoring_core.classes.data import ClassRow, CourseRow, EnrollmentRow, SchoolRow, TermRow
from tutoring_core.classes.models import Class, ClassKey, Course, Enrollment, School, Term
from tutoring_core.rows import set_changed


def _bulk_simple(
    model: type[Any],
    *,
    tenant: Tenant,
    rows: Sequence[Any],
    values: Callable[[Any], dict[str, Any]],
    source: str,
) -> list[uuid.UUID]:
    """Create rows without an id, update (and reactivate) rows with one. Ids in row order."""
    known = {o.pk: o for o in model.objects.filter(tenant=tenant, pk__in=[r.id for r in rows if r.id])}
    missing = [r.id for r in rows if r.id and r.id not in known]
    if missing:
        raise ValueError(f"{model.__name__} {missing[0]} does not belong to this tenant.")
    now = timezone.now()
    created, changed, fields, ids = [], [], {"updated_at"}, []
    for row in rows:
        vals = {**values(row), "is_active": True}
        if row.id is None:
            obj = model(tenant=tenant, source=source, **vals)
            created.append(obj)
        else:
            obj = known[row.id]
            diff = set_changed(obj, vals)
            if diff:
                obj.updated_at = now
                fields.update(diff)
                changed.append(obj)
        ids.append(obj.pk)
    bulk_write(model, created)
    if changed:
        model.objects.bulk_update(changed, sorted(fields), batch_size=500)
    return ids


@transaction.atomic
def schools_bulk_upsert(*, tenant: Tenant, rows: Sequence[SchoolRow], source: str) -> list[uuid.UUID]:
    return _bulk_simple(
        School,
        tenant=tenant,
        rows=rows,
        source=source,
        values=lambda r: {"name": r.name[:200], "code": r.code[:64]},
    )


@transaction.atomic
def terms_bulk_upsert(*, tenant: Tenant, rows: Sequence[TermRow], source: str) -> list[uuid.UUID]:
    return _bulk_simple(
        Term,
        tenant=tenant,
        rows=rows,
        source=source,
        values=lambda r: {
            "title": r.title[:200],
            "kind": r.kind,
            "start_date": r.start_date,
            "end_date": r.end_date,
        },
    )


def terms_bulk_set_parent(*, tenant: Tenant, parents: dict[uuid.UUID, uuid.UUID | None]) -> int:
    """Set each term's parent (a second pass: a child may be listed before its parent)."""
    count = 0
    for term in Term.objects.filter(tenant=tenant, pk__in=list(parents)).only("pk", "parent_id"):
        parent = parents[term.pk]
        if term.parent_id != parent:
            count += Term.objects.filter(pk=term.pk).update(parent_id=parent, updated_at=timezone.now())
    return count


@transaction.atomic
def courses_bulk_upsert(*, tenant: Tenant, rows: Sequence[CourseRow], source: str) -> list[uuid.UUID]:
    return _bulk_simple(
        Course,
        tenant=tenant,
        rows=rows,
        source=source,
        values=lambda r: {"title": r.title[:200], "code": r.code[:64], "school_id": r.school_id},
    )


def _bulk_deactivate(model: type[Any], *, tenant: Tenant, ids: Sequence[uuid.UUID]) -> int:
    return int(
        model.objects.filter(tenant=tenant, pk__in=list(ids), is_active=True).update(
            is_active=False, updated_at=timezone.now()
        )
    )


def schools_bulk_deactivate(*, tenant: Tenant, ids: Sequence[uuid.UUID]) -> int:
    return _bulk_deactivate(School, tenant=tenant, ids=ids)


def terms_bulk_deactivate(*, tenant: Tenant, ids: Sequence[uuid.UUID]) -> int:
    return _bulk_deactivate(Term, tenant=tenant, ids=ids)


def courses_bulk_deactivate(*, tenant: Tenant, ids: Sequence[uuid.UUID]) -> int:
    return _bulk_deactivate(Course, tenant=tenant, ids=ids)


def classes_bulk_deactivate(*, tenant: Tenant, ids: Sequence[uuid.UUID]) -> int:
    return _bulk_deactivate(Class, tenant=tenant, ids=ids)


def _check_tenant_rows(model: type[Any], tenant: Tenant, ids: set[uuid.UUID]) -> None:
    if ids and model.objects.filter(tenant=tenant, pk__in=ids).count() != len(ids):
        raise ValueError(f"Every {model._meta.verbose_name} must belong to this tenant.")


@transaction.atomic
def classes_bulk_upsert(
    *, tenant: Tenant, kind: str, issuer: str, rows: Sequence[ClassRow], source: str
) -> dict[str, uuid.UUID]:
    """Create or update the classes known by (kind, issuer, subject), with exactly their
    terms. Returns subject -> class id. Reactivates deactivated classes; a subject named
    twice takes the values of its last row."""
    rows = list({r.subject: r for r in rows}.values())
    keys = dict(
        ClassKey.objects.filter(
            tenant=tenant, kind=kind, issuer=issuer, subject__in=[r.subject for r in rows]
        ).values_list("subject", "klass_id")
    )
    known = {c.pk: c for c in Class.objects.filter(tenant=tenant, pk__in=set(keys.values()))}
    _check_tenant_rows(School, tenant, {r.school_id for r in rows if r.school_id})
    _check_tenant_rows(Course, tenant, {r.course_id for r in rows if r.course_id})
    _check_tenant_rows(Term, tenant, {t for r in rows for t in r.term_ids})
    now = timezone.now()
    created: list[Class] = []
    new_keys: list[ClassKey] = []
    changed: list[Class] = []
    fields = {"updated_at"}
    out: dict[str, uuid.UUID] = {}
    for row in rows:
        vals = {
            "title": row.title.strip()[:255] or row.subject,
            "code": row.code[:64],
            "school_id": row.school_id,
            "course_id": row.course_id,
            "is_active": True,
        }
        klass_id = keys.get(row.subject)
        if klass_id is None:
            klass = Class(tenant=tenant, source=source, **vals)
            created.append(klass)
            new_keys.append(
                ClassKey(tenant=tenant, kind=kind, issuer=issuer, subject=row.subject, klass=klass)
            )
        else:
            klass = known[klass_id]
            diff = set_changed(klass, vals)
            if diff:
                klass.updated_at = now
                fields.update(diff)
                changed.append(klass)
        out[row.subject] = klass.pk
    bulk_write(Class, created)
    bulk_write(ClassKey, new_keys)
    if changed:
        Class.objects.bulk_update(changed, sorted(fields), batch_size=500)
    _class_terms_set(rows, out)
    return out


def _class_terms_set(rows: Sequence[ClassRow], class_ids: dict[str, uuid.UUID]) -> None:
    """Each class gets exactly its row's terms (one read, one insert, one delete)."""
    through = Class.terms.through
    current: dict[uuid.UUID, set[uuid.UUID]] = {}
    for class_id, term_id in through.objects.filter(class_id__in=list(class_ids.values())).values_list(
        "class_id", "term_id"
    ):
        current.setdefault(class_id, set()).add(term_id)
    add, remove = [], []
    for row in rows:
        class_id = class_ids[row.subject]
        want, have = set(row.term_ids), current.get(class_id, set())
        add += [through(class_id=class_id, term_id=t) for t in sorted(want - have)]
        remove += [(class_id, t) for t in have - want]
    bulk_write(through, add, ignore_conflicts=True)
    if remove:
        pks = [
            pk
            for pk, class_id, term_id in through.objects.filter(
                class_id__in={c for c, _ in remove}
            ).values_list("pk", "class_id", "term_id")
            if (class_id, term_id) in set(remove)
        ]
        through.objects.filter(pk__in=pks).delete()


# Enrollment fields an upsert sets on a row that is already there (it keeps its id,
# tenant, created_at and history): every concrete field but those.
_ENROLLMENT_KEY = ("klass", "user", "role")
_ENROLLMENT_UPDATE = [
    f.name
    for f in Enrollment._meta.concrete_fields
    if not f.primary_key and f.name not in (*_ENROLLMENT_KEY, "tenant", "created_at")
]


@transaction.atomic
def enrollments_bulk_upsert(*, tenant: Tenant, rows: Sequence[EnrollmentRow], source: str) -> list[uuid.UUID]:
    """Make each row an active enrollment (one per class, user, role; an existing row
    keeps its id and history). Ids in row order; rows naming the same enrollment get
    its id, and the last of them gives its values."""
    _check_roles({row.role for row in rows})

    # The enrollment key as a dict key: the UUIDs' ints, whose hash is C (a UUID's own
    # __hash__ is Python; a district import hashes a million of them).
    def key(row: EnrollmentRow) -> tuple[int, int, str]:
        return (row.class_id.int, row.user_id.int, row.role)

    last = {key(r): r for r in rows}
    # Each enrollment gets a new id here; the one already in the table keeps its own.
    ids = {k: uuid.uuid4() for k in last}
    values = [
        {
            "id": ids[k],
            "tenant_id": tenant.pk,
            "klass_id": r.class_id,
            "user_id": r.user_id,
            "role": r.role,
            "status": Enrollment.Status.ACTIVE.value,
            "source": source,
            "is_primary": r.is_primary,
            "begin_date": r.begin_date,
            "end_date": r.end_date,
        }
        for k, r in last.items()
    ]
    # One INSERT ... ON CONFLICT DO UPDATE, on both databases; kept_ids names the rows
    # that were already there under another id (none in a first import). The tenant
    # checks of class and person are joins in that statement: two queries of 20,000
    # ids per chunk fewer (bench/roster.py).
    try:
        kept = bulk_write_values(
            Enrollment,
            values,
            unique_fields=_ENROLLMENT_KEY,
            update_fields=_ENROLLMENT_UPDATE,
            same_tenant=("klass", "user"),
            kept_ids=True,
        )
    except ForeignTenantRows:
        # Nothing was written; say which of the two it was.
        _check_tenant_rows(Class, tenant, {r.class_id for r in rows})
        _check_tenant_people(tenant, {r.user_id for r in rows})
        raise
    if kept:
        in_table = {sent: table for table, sent in kept}
        ids = {k: in_table.get(pk, pk) for k, pk in ids.items()}
    return [ids[key(r)] for r in rows]


def enrollments_bulk_deactivate(*, tenant: Tenant, ids: Sequence[uuid.UUID]) -> int:
    """Mark enrollments inactive; nothing is deleted."""
    return Enrollment.objects.filter(tenant=tenant, pk__in=list(ids), status=Enrollment.Status.ACTIVE).update(
        status=Enrollment.Status.INACTIVE, updated_at=timezone.now()
    )


# The tables a district import fills from nothing; see roster_statistics_refresh.
_ROSTER_MODELS = (User, ExternalIdentity, RoleAssignment, GuardianLink, Class, ClassKey, Enrollment)


def roster_statistics_refresh() -> list[str]:
    """Refresh the database's statistics on the roster tables that a large import has
    outgrown (PostgreSQL ANALYZE; see bulk_write.statistics_refresh_grown): statistics
    that still say "empty" make the planner scan whole tables for the bulk functions'
    lookups (pk__in, user_id__in) at every chunk. The tables analyzed."""
    return statistics_refresh_grown(_ROSTER_MODELS)
