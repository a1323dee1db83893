"""Apply has one engine, on SQLite and PostgreSQL alike.

Every entity is applied chunk by chunk through the core's typed bulk functions
(``accounts.api`` / ``classes.api``), which write through the ORM's upserts on both
databases. The same syncs into two tenants, one cut into chunks of five rows, one
in whole chunks, must leave the same core state and mapping: where apply cuts its
chunks changes nothing. The suite runs on SQLite by default and on PostgreSQL in CI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.db import transaction

from oneroster import pipeline
from oneroster.models import RosterConnection, SourceRecord, SyncRun
from oneroster.protocol.generator import District
from oneroster.services import sync_run_create, sync_run_execute
from tests.factories import TenantFactory, UserFactory
from tutoring_core.accounts import api as accounts
from tutoring_core.accounts.models import ExternalIdentity, GuardianLink, LinkCandidate, RoleAssignment, User
from tutoring_core.classes import api as classes
from tutoring_core.classes.models import Class, ClassKey, Course, Enrollment, School, Term

pytestmark = pytest.mark.django_db


def sync(conn: RosterConnection, path: Path, *, delta: bool = False) -> SyncRun:
    run = sync_run_create(connection=conn, mode="delta" if delta else "full", source_path=str(path))
    return sync_run_execute(run_id=run.pk)


def state(conn: RosterConnection) -> dict[str, Any]:
    """The tenant's roster with every core id replaced by the source keys it stands for."""
    tenant = conn.tenant
    subjects: dict[Any, list[str]] = {}
    for user_id, subject in ExternalIdentity.objects.filter(tenant=tenant).values_list("user_id", "subject"):
        subjects.setdefault(user_id, []).append(subject)
    person = {pk: "+".join(sorted(s)) for pk, s in subjects.items()}
    for pk, email in User.objects.filter(tenant=tenant).exclude(pk__in=person).values_list("pk", "email"):
        person[pk] = f"local:{email}"
    klass = dict(ClassKey.objects.filter(tenant=tenant).values_list("klass_id", "subject"))
    school = dict(School.objects.filter(tenant=tenant).values_list("pk", "code"))
    course = dict(Course.objects.filter(tenant=tenant).values_list("pk", "code"))
    term = dict(Term.objects.filter(tenant=tenant).values_list("pk", "title"))
    terms_of: dict[Any, list[str]] = {}
    for class_id, term_id in Class.terms.through.objects.filter(class__tenant=tenant).values_list(
        "class_id", "term_id"
    ):
        terms_of.setdefault(class_id, []).append(term[term_id])
    enrollments = {
        e.pk: (klass[e.klass_id], person[e.user_id], e.role)
        for e in Enrollment.objects.filter(tenant=tenant).only("pk", "klass_id", "user_id", "role")
    }
    roles = {
        r.pk: (person[r.user_id], r.role, school.get(r.school_id))
        for r in RoleAssignment.objects.filter(tenant=tenant).only("pk", "user_id", "role", "school_id")
    }
    links = {
        g.pk: (person[g.guardian_id], person[g.student_id])
        for g in GuardianLink.objects.filter(tenant=tenant).only("pk", "guardian_id", "student_id")
    }
    core_names: dict[str, dict[str, Any]] = {
        "org": {str(k): v for k, v in school.items()},
        "academicSession": {str(k): v for k, v in term.items()},
        "course": {str(k): v for k, v in course.items()},
        "class": {str(k): v for k, v in klass.items()},
        "user": {str(k): v for k, v in person.items()},
        "role": {str(k): v for k, v in roles.items()},
        "enrollment": {str(k): v for k, v in enrollments.items()},
        "agent": {str(k): v for k, v in links.items()},
    }
    return {
        "users": sorted(
            (person[u.pk], u.first_name, u.last_name, u.email, u.is_active, u.has_usable_password())
            for u in User.objects.filter(tenant=tenant)
        ),
        "usernames_prefixed": all(
            u.startswith(f"{tenant.slug}.") or u.startswith("local")
            for u in User.objects.filter(tenant=tenant, external_identities__isnull=False).values_list(
                "username", flat=True
            )
        ),
        "classes": sorted(
            (
                klass[c.pk],
                c.title,
                c.code,
                school.get(c.school_id),
                course.get(c.course_id),
                c.is_active,
                c.source,
                tuple(sorted(terms_of.get(c.pk, []))),
            )
            for c in Class.objects.filter(tenant=tenant)
        ),
        "enrollments": sorted(
            (*enrollments[e.pk], e.status, e.is_primary, e.begin_date, e.end_date, e.source)
            for e in Enrollment.objects.filter(tenant=tenant)
        ),
        "roles": sorted(
            (*roles[r.pk], r.is_active, r.source) for r in RoleAssignment.objects.filter(tenant=tenant)
        ),
        "links": sorted((*links[g.pk], g.is_active) for g in GuardianLink.objects.filter(tenant=tenant)),
        "candidates": sorted(
            (person[c.user_id], person[c.candidate_id], c.reason, c.status)
            for c in LinkCandidate.objects.filter(tenant=tenant)
        ),
        "mapping": sorted(
            (
                m.entity,
                m.sourced_id,
                core_names[m.entity].get(m.core_id, m.core_id),
                m.hash,
                m.natural_key,
                m.is_active,
                m.hint,
                m.replaced_by,
            )
            for m in SourceRecord.objects.filter(connection=conn)
        ),
    }


def test_chunk_boundaries_leave_the_same_roster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = District(60, seed=3, guardians=True, change_rate=0.2, rekey_rate=0.05)
    base.write_csv(tmp_path / "e0")
    base.at(1).write_csv(tmp_path / "d1", mode="delta")
    base.at(2).write_csv(tmp_path / "e2")
    whole = RosterConnection.objects.create(
        tenant=TenantFactory(slug="whole"), name="whole", max_deactivation_share=1.0
    )
    small = RosterConnection.objects.create(
        tenant=TenantFactory(slug="small"), name="small", max_deactivation_share=1.0
    )
    for conn in (whole, small):
        # A person the hub already had, whose email a roster student shares.
        UserFactory(
            tenant=conn.tenant,
            email="s7@students.seeded.example",
            username=f"local-{conn.tenant.slug}",
            first_name="Local",
            last_name="Person",
        )
    steps = [
        (tmp_path / "e0", False),
        (tmp_path / "d1", True),
        (tmp_path / "e2", False),
        (tmp_path / "e2", False),
    ]
    for path, delta in steps:
        in_one = sync(whole, path, delta=delta)
        with monkeypatch.context() as m:
            # Many chunks per entity: chunk boundaries fall inside a school, a class, a person.
            m.setattr(pipeline.apply, "CHUNK", 5)
            in_fives = sync(small, path, delta=delta)
        assert (in_one.status, in_fives.status) == ("succeeded", "succeeded"), (
            in_one.message,
            in_fives.message,
        )
        assert in_fives.counts == in_one.counts
        assert state(small) == state(whole)
    final = state(small)
    # The sequence exercised what it is about: re-keyed people, deactivations, guardians,
    # an email candidate, and a last run that changed nothing.
    assert any("+" in user[0] for user in final["users"])
    assert any(not user[4] for user in final["users"])
    assert any(status == "inactive" for *_, status, _, _, _, _ in final["enrollments"])
    assert any(active for *_, active in final["links"])
    assert final["candidates"] == [("stu-7", "local:s7@students.seeded.example", "email", "open")]
    assert final["usernames_prefixed"] is True
    assert in_fives.counts["enrollment"]["unchanged"] == sum(1 for _ in base.at(2).rows("enrollment"))
    assert {e: (c["created"], c["updated"], c["deactivated"]) for e, c in in_fives.counts.items()} == {
        e: (0, 0, 0) for e in in_fives.counts
    }


def test_bulk_writes_refuse_another_tenants_rows_and_write_nothing() -> None:
    ours, theirs = TenantFactory(slug="ours"), TenantFactory(slug="theirs")
    stranger = UserFactory(tenant=theirs)
    klass = Class.objects.create(tenant=ours, title="Algebra")
    with (
        pytest.raises(ValueError, match=r"^Every person must belong to this tenant\.$"),
        transaction.atomic(),
    ):
        classes.enrollments_bulk_upsert(
            tenant=ours,
            rows=[classes.EnrollmentRow(class_id=klass.pk, user_id=stranger.pk, role="student")],
            source="oneroster",
        )
    with (
        pytest.raises(ValueError, match=r"^Every person must belong to this tenant\.$"),
        transaction.atomic(),
    ):
        accounts.roles_bulk_assign(
            tenant=ours, rows=[accounts.RoleRow(user_id=stranger.pk, role="student")], source="oneroster"
        )
    theirs_class = Class.objects.create(tenant=theirs, title="Theirs")
    with (
        pytest.raises(ValueError, match=r"^Every class must belong to this tenant\.$"),
        transaction.atomic(),
    ):
        classes.enrollments_bulk_upsert(
            tenant=ours,
            rows=[classes.EnrollmentRow(class_id=theirs_class.pk, user_id=stranger.pk, role="student")],
            source="oneroster",
        )
    assert Enrollment.objects.count() == 0
    assert RoleAssignment.objects.count() == 0


def test_a_duplicate_sourcedid_is_rejected_with_both_lines(tmp_path: Path) -> None:
    District(60, seed=1).write_csv(tmp_path / "pkg")
    enrollments = (tmp_path / "pkg" / "enrollments.csv").read_text().splitlines()
    enrollments.append(enrollments[3])  # the row of line 4 again, as the last line
    (tmp_path / "pkg" / "enrollments.csv").write_text("\n".join(enrollments) + "\n")
    conn = RosterConnection.objects.create(tenant=TenantFactory(slug="dupes"), name="dupes")
    run = sync(conn, tmp_path / "pkg")
    assert run.status == "failed"
    sid = enrollments[3].split(",")[0]
    assert [(e.entity, e.location, e.line, e.sourced_id, e.message) for e in run.errors.all()] == [
        ("enrollment", "enrollments.csv", len(enrollments), sid, "duplicate sourcedId (first at line 4)")
    ]
    assert Enrollment.objects.filter(tenant=conn.tenant).count() == 0
