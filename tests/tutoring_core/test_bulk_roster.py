"""The core's bulk roster writes (used by roster sync at district scale)."""

from __future__ import annotations

import pytest

from tests import factories as f
from tutoring_core.accounts import api as accounts
from tutoring_core.accounts.models import ExternalIdentity, GuardianLink, LinkCandidate, RoleAssignment, User
from tutoring_core.classes import api as classes
from tutoring_core.classes.models import Class, ClassKey, Enrollment

pytestmark = pytest.mark.django_db
KIND, ISSUER = accounts.IdentityKind.ONEROSTER, "conn-1"


def test_people_bulk_upsert_creates_updates_and_leaves_unchanged() -> None:
    tenant = f.TenantFactory()
    rows = [
        accounts.PersonRow(subject=f"u{i}", given_name="Ada", family_name=f"L{i}", email=f"U{i}@x.org")
        for i in range(3)
    ]
    first = accounts.people_bulk_upsert(tenant=tenant, kind=KIND, issuer=ISSUER, rows=rows)
    assert {r.action for r in first.values()} == {"created"}
    user = User.objects.get(pk=first["u0"].user_id)
    assert (user.first_name, user.last_name, user.email, user.has_usable_password()) == (
        "Ada",
        "L0",
        "u0@x.org",
        False,
    )
    stamp = user.updated_at
    again = accounts.people_bulk_upsert(tenant=tenant, kind=KIND, issuer=ISSUER, rows=rows)
    assert {r.action for r in again.values()} == {"unchanged"}
    user.refresh_from_db()
    assert user.updated_at == stamp
    # Empty values never blank what is known; a new name is applied.
    changed = accounts.people_bulk_upsert(
        tenant=tenant,
        kind=KIND,
        issuer=ISSUER,
        rows=[accounts.PersonRow(subject="u0", family_name="New", email="")],
    )
    assert changed["u0"].action == "updated"
    user.refresh_from_db()
    assert (user.first_name, user.last_name, user.email) == ("Ada", "New", "u0@x.org")
    assert User.objects.filter(tenant=tenant).count() == 3


def test_people_bulk_upsert_relinks_a_rekeyed_subject_and_stays_in_its_tenant() -> None:
    tenant, other = f.TenantFactory(), f.TenantFactory()
    old = accounts.people_bulk_upsert(
        tenant=tenant, kind=KIND, issuer=ISSUER, rows=[accounts.PersonRow(subject="old", given_name="A")]
    )
    accounts.people_bulk_upsert(
        tenant=other, kind=KIND, issuer=ISSUER, rows=[accounts.PersonRow(subject="new", given_name="B")]
    )
    result = accounts.people_bulk_upsert(
        tenant=tenant,
        kind=KIND,
        issuer=ISSUER,
        rows=[accounts.PersonRow(subject="new", given_name="A", previous_subject="old")],
    )
    assert result["new"] == accounts.PersonBulkResult(user_id=old["old"].user_id, action="relinked")
    assert set(ExternalIdentity.objects.filter(tenant=tenant).values_list("subject", "user_id")) == {
        ("old", old["old"].user_id),
        ("new", old["old"].user_id),
    }
    assert User.objects.filter(tenant=tenant).count() == 1


def test_people_bulk_upsert_records_email_candidates_only() -> None:
    tenant = f.TenantFactory()
    existing = f.UserFactory(tenant=tenant, email="same@x.org")
    result = accounts.people_bulk_upsert(
        tenant=tenant, kind=KIND, issuer=ISSUER, rows=[accounts.PersonRow(subject="s", email="Same@x.org")]
    )
    assert result["s"].user_id != existing.pk
    assert list(LinkCandidate.objects.values_list("user_id", "candidate_id", "reason")) == [
        (result["s"].user_id, existing.pk, "email")
    ]


def test_roles_and_guardian_links_reactivate_and_refuse_other_tenants() -> None:
    tenant = f.TenantFactory()
    school = f.SchoolFactory(tenant=tenant)
    student, parent = f.UserFactory(tenant=tenant), f.UserFactory(tenant=tenant)
    row = accounts.RoleRow(user_id=student.pk, role="student", school_id=school.pk)
    ids = accounts.roles_bulk_assign(tenant=tenant, rows=[row], source="oneroster")
    assert accounts.roles_bulk_deactivate(tenant=tenant, assignment_ids=list(ids.values())) == 1
    assert accounts.roles_bulk_assign(tenant=tenant, rows=[row], source="oneroster") == ids
    assert RoleAssignment.objects.get(pk=ids[row]).is_active is True
    links = accounts.guardian_links_bulk_upsert(
        tenant=tenant, pairs=[(parent.pk, student.pk)], source="oneroster"
    )
    assert accounts.guardian_links_bulk_deactivate(tenant=tenant, link_ids=list(links.values())) == 1
    assert (
        accounts.guardian_links_bulk_upsert(
            tenant=tenant, pairs=[(parent.pk, student.pk)], source="oneroster"
        )
        == links
    )
    assert GuardianLink.objects.get().is_active is True
    stranger = f.UserFactory()
    with pytest.raises(ValueError, match="Every person must belong to this tenant"):
        accounts.roles_bulk_assign(
            tenant=tenant, rows=[accounts.RoleRow(user_id=stranger.pk, role="teacher")], source="x"
        )
    with pytest.raises(ValueError, match="Every person must belong to this tenant"):
        accounts.guardian_links_bulk_upsert(tenant=tenant, pairs=[(stranger.pk, student.pk)], source="x")
    assert RoleAssignment.objects.count() == 1 and GuardianLink.objects.count() == 1


def test_classes_and_enrollments_bulk_upsert() -> None:
    tenant = f.TenantFactory()
    terms = classes.terms_bulk_upsert(
        tenant=tenant,
        rows=[
            classes.TermRow(
                id=None,
                title=t,
                kind="semester",
                start_date=f.TermFactory.start_date,
                end_date=f.TermFactory.end_date,
            )
            for t in ("S1", "S2")
        ],
        source="oneroster",
    )
    out = classes.classes_bulk_upsert(
        tenant=tenant,
        kind="oneroster",
        issuer=ISSUER,
        source="oneroster",
        rows=[classes.ClassRow(subject="c1", title="Algebra", term_ids=tuple(terms))],
    )
    klass = Class.objects.get(pk=out["c1"])
    assert sorted(t.title for t in klass.terms.all()) == ["S1", "S2"]
    again = classes.classes_bulk_upsert(
        tenant=tenant,
        kind="oneroster",
        issuer=ISSUER,
        source="oneroster",
        rows=[classes.ClassRow(subject="c1", title="Algebra II", term_ids=(terms[1],))],
    )
    assert again == out
    klass.refresh_from_db()
    assert (klass.title, [t.title for t in klass.terms.all()]) == ("Algebra II", ["S2"])
    assert ClassKey.objects.filter(tenant=tenant).count() == 1
    user = f.UserFactory(tenant=tenant)
    row = classes.EnrollmentRow(class_id=klass.pk, user_id=user.pk, role="student")
    (first,) = classes.enrollments_bulk_upsert(tenant=tenant, rows=[row], source="oneroster")
    assert classes.enrollments_bulk_deactivate(tenant=tenant, ids=[first]) == 1
    (second,) = classes.enrollments_bulk_upsert(tenant=tenant, rows=[row], source="oneroster")
    assert second == first  # the same row, reactivated: history is kept
    assert Enrollment.objects.get().status == "active"
    other_class = f.ClassFactory()
    with pytest.raises(ValueError, match="Every class must belong to this tenant"):
        classes.enrollments_bulk_upsert(
            tenant=tenant,
            rows=[classes.EnrollmentRow(class_id=other_class.pk, user_id=user.pk, role="student")],
            source="x",
        )
    foreign_term = f.TermFactory()
    with pytest.raises(ValueError, match="Every term must belong to this tenant"):
        classes.classes_bulk_upsert(
            tenant=tenant,
            kind="oneroster",
            issuer=ISSUER,
            source="x",
            rows=[classes.ClassRow(subject="c2", title="X", term_ids=(foreign_term.pk,))],
        )
    assert Enrollment.objects.count() == 1 and ClassKey.objects.filter(tenant=tenant).count() == 1


def test_people_bulk_upsert_new_rows_carry_every_default_and_timestamp() -> None:
    # New people and identities are COPYed on PostgreSQL: field defaults and
    # auto_now values must be what bulk_create would have written.
    tenant = f.TenantFactory()
    out = accounts.people_bulk_upsert(
        tenant=tenant, kind=KIND, issuer=ISSUER, rows=[accounts.PersonRow(subject="s1", given_name="Bo")]
    )
    user = User.objects.get(pk=out["s1"].user_id)
    identity = ExternalIdentity.objects.get(tenant=tenant, kind=KIND, issuer=ISSUER, subject="s1")
    assert (user.tenant_id, user.is_active, user.is_staff, user.email_verified, user.display_name) == (
        tenant.pk,
        True,
        False,
        False,
        "",
    )
    assert user.date_joined is not None and user.updated_at is not None
    assert identity.user_id == user.pk
    assert identity.created_at is not None and identity.updated_at is not None
    assert identity.last_seen_at is not None


def test_people_bulk_upsert_duplicate_identity_raises_integrity_error_and_writes_nothing() -> None:
    from django.db import IntegrityError, transaction

    from tutoring_core.bulk_write import bulk_write

    tenant = f.TenantFactory()
    out = accounts.people_bulk_upsert(
        tenant=tenant, kind=KIND, issuer=ISSUER, rows=[accounts.PersonRow(subject="s1")]
    )
    other = f.UserFactory(tenant=tenant)
    with pytest.raises(IntegrityError), transaction.atomic():
        bulk_write(
            ExternalIdentity,
            [
                ExternalIdentity(tenant=tenant, kind=KIND, issuer=ISSUER, subject="s2", user=other),
                ExternalIdentity(tenant=tenant, kind=KIND, issuer=ISSUER, subject="s1", user=other),
            ],
        )
    assert list(ExternalIdentity.objects.filter(tenant=tenant).values_list("subject", "user_id")) == [
        ("s1", out["s1"].user_id)
    ]


def test_enrollments_bulk_upsert_keeps_existing_ids_and_gives_new_rows_their_own() -> None:
    # The upsert reads back only the rows whose key was already there (kept_ids): every
    # id it answers must be the id in the table, for old and new rows alike.
    tenant = f.TenantFactory()
    klass = f.ClassFactory(tenant=tenant)
    ann, bob = f.UserFactory(tenant=tenant), f.UserFactory(tenant=tenant)

    def row(user: User, **kw: object) -> classes.EnrollmentRow:
        return classes.EnrollmentRow(class_id=klass.pk, user_id=user.pk, role="student", **kw)  # type: ignore[arg-type]

    (ann_id,) = classes.enrollments_bulk_upsert(tenant=tenant, rows=[row(ann)], source="oneroster")
    ids = classes.enrollments_bulk_upsert(
        tenant=tenant, rows=[row(bob), row(ann, is_primary=True), row(bob)], source="oneroster"
    )
    in_table = dict(Enrollment.objects.values_list("user_id", "pk"))
    assert ids == [in_table[bob.pk], ann_id, in_table[bob.pk]]
    assert in_table[ann.pk] == ann_id and in_table[bob.pk] != ann_id
    assert Enrollment.objects.get(pk=ann_id).is_primary is True


def test_statistics_refresh_analyzes_only_the_tables_an_import_outgrew() -> None:
    """PostgreSQL: a table twice as large (in pages) as its statistics say is analyzed,
    once; the tables the import did not grow are not. SQLite keeps no statistics:
    nothing is analyzed."""
    from django.db import connection

    from tutoring_core.bulk_write import statistics_refresh_grown

    tenant = f.TenantFactory()
    people = accounts.people_bulk_upsert(
        tenant=tenant,
        kind=KIND,
        issuer=ISSUER,
        rows=[accounts.PersonRow(subject=f"s{i}", given_name="A", family_name=f"B{i}") for i in range(500)],
    )
    class_ids = classes.classes_bulk_upsert(
        tenant=tenant,
        kind=classes.ClassKeyKind.ONEROSTER,
        issuer=ISSUER,
        rows=[classes.ClassRow(subject=f"c{i}", title=f"C{i}") for i in range(60)],
        source="oneroster",
    )
    settled = classes.roster_statistics_refresh()
    assert classes.roster_statistics_refresh() == []  # nothing outgrew what was just taken
    if connection.vendor != "postgresql":
        assert settled == []
        return

    def pages() -> tuple[int, int]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_relation_size(oid) / current_setting('block_size')::int, relpages"
                " FROM pg_class WHERE relname = 'classes_enrollment'"
            )
            now, analyzed = cursor.fetchone()
        return now, analyzed

    # Enroll everyone in one class after another until the enrollment table has doubled.
    _, analyzed = pages()
    for class_id in class_ids.values():
        if pages()[0] >= 2 * max(analyzed, 8):
            break
        classes.enrollments_bulk_upsert(
            tenant=tenant,
            rows=[
                classes.EnrollmentRow(class_id=class_id, user_id=p.user_id, role="student")
                for p in people.values()
            ],
            source="oneroster",
        )
    assert pages()[0] >= 2 * max(analyzed, 8)
    assert classes.roster_statistics_refresh() == ["classes_enrollment"]
    assert pages()[1] == pages()[0]  # the statistics now know the table's size
    assert statistics_refresh_grown([Enrollment, User]) == []
