"""Writes for the canonical roster: classes and enrollments, upserted idempotently."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from tutoring_core.accounts.data import RowsQuery
from tutoring_core.accounts.models import Role, Tenant, User

# The set-based writes share their plumbing (temporary row table, checks) with accounts'.
from tutoring_core.accounts.services import _check_roles, _check_tenant_users, _result_table, _rows_table
from tutoring_core.classes.data import ClassKeyRef, UpsertResult
from tutoring_core.classes.models import Class, ClassKey, Course, Enrollment, School, Source, Term
from tutoring_core.rows import save_changed


def _changed(obj: object, values: Mapping[str, object]) -> list[str]:
    changed = []
    for attr, value in values.items():
        if getattr(obj, attr) != value:
            setattr(obj, attr, value)
            changed.append(attr)
    return changed


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


# --- Bulk writes for roster sync at district scale ----------------------------------
# The per-row functions above do several queries per row; a district import has
# hundreds of thousands of rows. These take a chunk and do a fixed number of
# queries for it. Schools, terms and courses have no key table in the core, so the
# caller keeps its own mapping (source id -> core id) and passes ``id`` for rows it
# already knows; classes are keyed by ClassKey and enrollments by (class, user, role).


@dataclass(frozen=True)
class SchoolRow:
    id: uuid.UUID | None
    name: str
    code: str = ""


@dataclass(frozen=True)
class TermRow:
    id: uuid.UUID | None
    title: str
    kind: str
    start_date: dt.date
    end_date: dt.date
    parent_id: uuid.UUID | None = None


@dataclass(frozen=True)
class CourseRow:
    id: uuid.UUID | None
    title: str
    code: str = ""
    school_id: uuid.UUID | None = None


@dataclass(frozen=True)
class ClassRow:
    subject: str
    title: str
    code: str = ""
    school_id: uuid.UUID | None = None
    course_id: uuid.UUID | None = None
    term_ids: tuple[uuid.UUID, ...] = ()


@dataclass(frozen=True)
class EnrollmentRow:
    class_id: uuid.UUID
    user_id: uuid.UUID
    role: str
    is_primary: bool = False
    begin_date: dt.date | None = None
    end_date: dt.date | None = None


def _bulk_simple(
    model: type[Any], *, tenant: Tenant, rows: Sequence[Any], values: Any, source: str
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
            diff = _changed(obj, vals)
            if diff:
                obj.updated_at = now
                fields.update(diff)
                changed.append(obj)
        ids.append(obj.pk)
    model.objects.bulk_create(created, batch_size=1000)
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
    return model.objects.filter(tenant=tenant, pk__in=list(ids), is_active=True).update(
        is_active=False, updated_at=timezone.now()
    )


def schools_bulk_deactivate(*, tenant: Tenant, ids: Sequence[uuid.UUID]) -> int:
    return _bulk_deactivate(School, tenant=tenant, ids=ids)


def terms_bulk_deactivate(*, tenant: Tenant, ids: Sequence[uuid.UUID]) -> int:
    return _bulk_deactivate(Term, tenant=tenant, ids=ids)


def courses_bulk_deactivate(*, tenant: Tenant, ids: Sequence[uuid.UUID]) -> int:
    return _bulk_deactivate(Course, tenant=tenant, ids=ids)


def classes_bulk_deactivate(*, tenant: Tenant, ids: Sequence[uuid.UUID]) -> int:
    return _bulk_deactivate(Class, tenant=tenant, ids=ids)


@transaction.atomic
def classes_bulk_upsert(
    *, tenant: Tenant, kind: str, issuer: str, rows: Sequence[ClassRow], source: str
) -> dict[str, uuid.UUID]:
    """Create or update the classes known by (kind, issuer, subject), with their terms.
    Returns subject -> class id. Reactivates deactivated classes."""
    keys = dict(
        ClassKey.objects.filter(
            tenant=tenant, kind=kind, issuer=issuer, subject__in=[r.subject for r in rows]
        ).values_list("subject", "klass_id")
    )
    known = {c.pk: c for c in Class.objects.filter(tenant=tenant, pk__in=set(keys.values()))}
    for ref_ids, model in (
        ({r.school_id for r in rows if r.school_id}, School),
        ({r.course_id for r in rows if r.course_id}, Course),
        ({t for r in rows for t in r.term_ids}, Term),
    ):
        if ref_ids and model.objects.filter(tenant=tenant, pk__in=ref_ids).count() != len(ref_ids):
            raise ValueError(f"Every {model.__name__.lower()} must belong to this tenant.")
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
            diff = _changed(klass, vals)
            if diff:
                klass.updated_at = now
                fields.update(diff)
                changed.append(klass)
        out[row.subject] = klass.pk
    Class.objects.bulk_create(created, batch_size=1000)
    ClassKey.objects.bulk_create(new_keys, batch_size=1000)
    if changed:
        Class.objects.bulk_update(changed, sorted(fields), batch_size=500)
    through = Class.terms.through
    current: dict[uuid.UUID, set[uuid.UUID]] = {}
    for class_id, term_id in through.objects.filter(class_id__in=list(out.values())).values_list(
        "class_id", "term_id"
    ):
        current.setdefault(class_id, set()).add(term_id)
    add, remove = [], []
    for row in rows:
        class_id = out[row.subject]
        want, have = set(row.term_ids), current.get(class_id, set())
        add += [through(class_id=class_id, term_id=t) for t in want - have]
        remove += [(class_id, t) for t in have - want]
    through.objects.bulk_create(add, batch_size=1000, ignore_conflicts=True)
    for class_id, term_id in remove:
        through.objects.filter(class_id=class_id, term_id=term_id).delete()
    return out


@transaction.atomic
def enrollments_bulk_upsert(*, tenant: Tenant, rows: Sequence[EnrollmentRow], source: str) -> list[uuid.UUID]:
    """Make each row an active enrollment (one per class, user, role). Ids in row order."""
    class_ids = {r.class_id for r in rows}
    user_ids = {r.user_id for r in rows}
    if Class.objects.filter(tenant=tenant, pk__in=class_ids).count() != len(class_ids):
        raise ValueError("Every class must belong to this tenant.")
    if User.objects.filter(tenant=tenant, pk__in=user_ids).count() != len(user_ids):
        raise ValueError("Every person must belong to this tenant.")
    unknown = {row.role for row in rows} - set(Role.values)
    if unknown:
        raise ValueError(f"Unknown role {sorted(unknown)[0]!r}.")
    if connection.vendor == "postgresql":
        return _enrollments_upsert_pg(tenant=tenant, rows=rows, source=source)
    objs = [
        Enrollment(
            tenant=tenant,
            klass_id=r.class_id,
            user_id=r.user_id,
            role=r.role,
            status=Enrollment.Status.ACTIVE,
            source=source,
            is_primary=r.is_primary,
            begin_date=r.begin_date,
            end_date=r.end_date,
        )
        for r in rows
    ]
    # ON CONFLICT DO UPDATE: an existing row keeps its id (and its history).
    Enrollment.objects.bulk_create(
        objs,
        batch_size=1000,
        update_conflicts=True,
        unique_fields=["klass", "user", "role"],
        update_fields=["status", "source", "is_primary", "begin_date", "end_date", "updated_at"],
    )
    # A UUID key is chosen in Python, so on a conflict the object still holds the id
    # that was not inserted: read back the ids that are really in the table.
    ids = {
        (k, u, r): pk
        for k, u, r, pk in Enrollment.objects.filter(
            tenant=tenant, klass_id__in=class_ids, user_id__in=user_ids
        ).values_list("klass_id", "user_id", "role", "pk")
    }
    return [ids[(r.class_id, r.user_id, r.role)] for r in rows]


def _enrollments_upsert_pg(*, tenant: Tenant, rows: Sequence[EnrollmentRow], source: str) -> list[uuid.UUID]:
    """The same upsert as COPY into a temporary table, then one INSERT ... SELECT ...
    ON CONFLICT: psycopg writes COPY rows in C (array parameters were quoted element
    by element in Python), and RETURNING gives the ids really in the table
    (existing rows keep theirs). Runs inside the caller's transaction: the temporary
    table empties itself at commit."""
    now = timezone.now()
    table = Enrollment._meta.db_table
    sql = f"""
        INSERT INTO {table} (id, tenant_id, klass_id, user_id, role, status, source, is_primary,
                             begin_date, end_date, created_at, updated_at)
        SELECT u.id, %s, u.klass_id, u.user_id, u.role, %s, %s, u.is_primary, u.begin_date, u.end_date, %s, %s
        FROM classes_enrollment_chunk u
        ON CONFLICT (klass_id, user_id, role) DO UPDATE SET
            status = EXCLUDED.status, source = EXCLUDED.source, is_primary = EXCLUDED.is_primary,
            begin_date = EXCLUDED.begin_date, end_date = EXCLUDED.end_date, updated_at = EXCLUDED.updated_at
        RETURNING id, klass_id, user_id, role"""  # noqa: S608 - table name from the model; values are parameters
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMPORARY TABLE IF NOT EXISTS classes_enrollment_chunk (id uuid, klass_id uuid, user_id uuid,"
            " role text, is_primary boolean, begin_date date, end_date date) ON COMMIT DELETE ROWS"
        )
        cursor.execute("DELETE FROM classes_enrollment_chunk")  # an earlier call in this transaction
        columns = "id, klass_id, user_id, role, is_primary, begin_date, end_date"
        with cursor.cursor.copy(f"COPY classes_enrollment_chunk ({columns}) FROM STDIN") as copy:
            for r in rows:
                copy.write_row(
                    (uuid.uuid4(), r.class_id, r.user_id, r.role, r.is_primary, r.begin_date, r.end_date)
                )
        cursor.execute(sql, [tenant.pk, Enrollment.Status.ACTIVE, source, now, now])
        ids = {(k, u, role): pk for pk, k, u, role in cursor.fetchall()}
    return [ids[(r.class_id, r.user_id, r.role)] for r in rows]


def enrollments_bulk_deactivate(*, tenant: Tenant, ids: Sequence[uuid.UUID]) -> int:
    """Mark enrollments inactive; nothing is deleted."""
    return Enrollment.objects.filter(tenant=tenant, pk__in=list(ids), status=Enrollment.Status.ACTIVE).update(
        status=Enrollment.Status.INACTIVE, updated_at=timezone.now()
    )


# --- Set-based bulk writes (PostgreSQL); see the same section of accounts/services.py ----


def enrollments_bulk_upsert_query(*, tenant: Tenant, rows: RowsQuery, source: str, into: str) -> int:
    """The set-based enrollments_bulk_upsert: ``rows`` selects (key, class_id, user_id,
    role, is_primary, begin_date, end_date). Each becomes an active enrollment (one per
    class, user, role; an existing row keeps its id and history); writes (key,
    enrollment id) into ``into``. Rows naming the same enrollment all get its id, and
    the last of them (highest key) gives its values, as a row-by-row upsert would.
    Returns the number of rows."""
    into = _result_table(into)
    now = timezone.now()
    table = Enrollment._meta.db_table
    with connection.cursor() as cursor:
        n = _rows_table(
            cursor,
            "classes_enrollment_rows",
            "key bigint, class_id uuid, user_id uuid, role text, is_primary boolean, begin_date date, end_date date",
            rows,
        )
        if not n:
            return 0
        _check_roles(cursor, "classes_enrollment_rows")
        cursor.execute(
            f"""SELECT EXISTS (SELECT 1 FROM classes_enrollment_rows r WHERE NOT EXISTS
                    (SELECT 1 FROM {Class._meta.db_table} c WHERE c.id = r.class_id AND c.tenant_id = %s))""",  # noqa: S608
            [tenant.pk],
        )
        if cursor.fetchone()[0]:
            raise ValueError("Every class must belong to this tenant.")
        _check_tenant_users(cursor, tenant=tenant, table="classes_enrollment_rows", columns=["user_id"])
        cursor.execute(
            f"""WITH written AS (
                    INSERT INTO {table} (id, tenant_id, klass_id, user_id, role, status, source, is_primary,
                                         begin_date, end_date, created_at, updated_at)
                    SELECT DISTINCT ON (r.class_id, r.user_id, r.role)
                           gen_random_uuid(), %s::uuid, r.class_id, r.user_id, r.role, %s, %s, r.is_primary,
                           r.begin_date, r.end_date, %s::timestamptz, %s::timestamptz
                    FROM classes_enrollment_rows r
                    ORDER BY r.class_id, r.user_id, r.role, r.key DESC
                    ON CONFLICT (klass_id, user_id, role) DO UPDATE SET
                        status = EXCLUDED.status, source = EXCLUDED.source, is_primary = EXCLUDED.is_primary,
                        begin_date = EXCLUDED.begin_date, end_date = EXCLUDED.end_date,
                        updated_at = EXCLUDED.updated_at
                    RETURNING id, klass_id, user_id, role)
                INSERT INTO {into} (key, core_id)
                SELECT r.key, w.id FROM classes_enrollment_rows r
                JOIN written w ON w.klass_id = r.class_id AND w.user_id = r.user_id AND w.role = r.role""",  # noqa: S608
            [tenant.pk, Enrollment.Status.ACTIVE, source, now, now],
        )
    return n


def classes_bulk_upsert_query(
    *, tenant: Tenant, kind: str, issuer: str, rows: RowsQuery, source: str, into: str
) -> int:
    """The set-based classes_bulk_upsert: ``rows`` selects (key, subject, title, code,
    school_id, course_id, term_ids uuid[]), subjects unique. Creates or updates the
    classes known by (kind, issuer, subject) with exactly those terms, reactivating
    deactivated ones; writes (key, class id) into ``into``. Returns the number of rows."""
    into = _result_table(into)
    now = timezone.now()
    klass, keys, through = Class._meta.db_table, ClassKey._meta.db_table, Class.terms.through._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMPORARY TABLE IF NOT EXISTS classes_class_rows (key bigint, subject text, title text,"
            " code text, school_id uuid, course_id uuid, term_ids uuid[], class_id uuid, created boolean)"
            " ON COMMIT DELETE ROWS"
        )
        cursor.execute("DELETE FROM classes_class_rows")  # an earlier call in this transaction
        # The title as classes_bulk_upsert cuts it: trimmed, at most 255, else the subject.
        title = "left(regexp_replace(COALESCE(q.title, ''), '^[[:space:]]+|[[:space:]]+$', '', 'g'), 255)"
        cursor.execute(
            f"""INSERT INTO classes_class_rows (key, subject, title, code, school_id, course_id, term_ids, class_id,
                                                created)
                SELECT q.key, q.subject, COALESCE(NULLIF({title}, ''), q.subject), left(COALESCE(q.code, ''), 64),
                       q.school_id, q.course_id, COALESCE(q.term_ids, '{{}}'), COALESCE(k.klass_id, gen_random_uuid()),
                       k.klass_id IS NULL
                FROM ({rows.sql}) q
                LEFT JOIN LATERAL (SELECT k.klass_id FROM {keys} k WHERE k.tenant_id = %s AND k.kind = %s
                                   AND k.issuer = %s AND k.subject = q.subject LIMIT 1) k ON TRUE""",  # noqa: S608
            [*rows.params, tenant.pk, kind, issuer],
        )
        n = int(cursor.rowcount)
        if not n:
            return 0
        for model, refs in (
            (School, "SELECT school_id AS id FROM classes_class_rows"),
            (Course, "SELECT course_id FROM classes_class_rows"),
            (Term, "SELECT unnest(term_ids) FROM classes_class_rows"),
        ):
            cursor.execute(
                f"""SELECT EXISTS (SELECT 1 FROM ({refs}) r(id) WHERE r.id IS NOT NULL AND NOT EXISTS
                        (SELECT 1 FROM {model._meta.db_table} x WHERE x.id = r.id AND x.tenant_id = %s))""",  # noqa: S608
                [tenant.pk],
            )
            if cursor.fetchone()[0]:
                raise ValueError(f"Every {model.__name__.lower()} must belong to this tenant.")
        cursor.execute(
            f"""INSERT INTO {klass} (id, tenant_id, school_id, course_id, title, code, source, is_active, created_at,
                                     updated_at)
                SELECT r.class_id, %s, r.school_id, r.course_id, r.title, r.code, %s, TRUE, %s, %s
                FROM classes_class_rows r WHERE r.created ORDER BY r.key""",  # noqa: S608
            [tenant.pk, source, now, now],
        )
        cursor.execute(
            f"""INSERT INTO {keys} (tenant_id, kind, issuer, subject, klass_id, created_at, updated_at)
                SELECT %s, %s, %s, r.subject, r.class_id, %s, %s FROM classes_class_rows r
                WHERE r.created ORDER BY r.key""",  # noqa: S608
            [tenant.pk, kind, issuer, now, now],
        )
        cursor.execute(
            f"""UPDATE {klass} c SET title = r.title, code = r.code, school_id = r.school_id,
                    course_id = r.course_id, is_active = TRUE, updated_at = %s
                FROM classes_class_rows r
                WHERE NOT r.created AND c.id = r.class_id AND c.tenant_id = %s
                  AND (c.title <> r.title OR c.code <> r.code OR c.school_id IS DISTINCT FROM r.school_id
                       OR c.course_id IS DISTINCT FROM r.course_id OR NOT c.is_active)""",  # noqa: S608
            [now, tenant.pk],
        )
        cursor.execute(
            f"""DELETE FROM {through} x USING classes_class_rows r
                WHERE NOT r.created AND x.class_id = r.class_id AND NOT (x.term_id = ANY(r.term_ids))"""  # noqa: S608
        )
        cursor.execute(
            f"""INSERT INTO {through} (class_id, term_id)
                SELECT DISTINCT r.class_id, t.id FROM classes_class_rows r, unnest(r.term_ids) t(id)
                ON CONFLICT DO NOTHING"""  # noqa: S608
        )
        cursor.execute(f"INSERT INTO {into} (key, core_id) SELECT key, class_id FROM classes_class_rows")  # noqa: S608
    return n
