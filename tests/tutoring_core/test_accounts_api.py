from __future__ import annotations

from typing import Any

import pytest
from django.db import connection

from tests.factories import EnrollmentFactory, ExternalIdentityFactory, TenantFactory, UserFactory
from tutoring_core.accounts import api
from tutoring_core.accounts.models import (
    AuditLog,
    ExternalIdentity,
    LinkCandidate,
    RoleAssignment,
    User,
    UserMerge,
)
from tutoring_core.classes.models import Enrollment

LTI = api.IdentityKind.LTI
ONEROSTER = api.IdentityKind.ONEROSTER
ISS = "https://canvas.instructure.com"

pytestmark = pytest.mark.django_db


def resolve(tenant: Any, subject: str = "sub-1", **kwargs: Any) -> api.PersonResult:
    profile = kwargs.pop(
        "profile", api.PersonProfile(given_name="Ada", family_name="Lovelace", email="ada@north.example.org")
    )
    return api.person_resolve(
        tenant=tenant, key=api.IdentityKey(LTI, ISS, subject), profile=profile, **kwargs
    )


def test_first_resolve_creates_person_and_identity() -> None:
    tenant = TenantFactory()
    result = resolve(tenant)
    assert result.created is True
    assert result.matched_by == "created"
    user = User.objects.get(pk=result.user_id)
    assert (user.tenant, user.first_name, user.last_name, user.email) == (
        tenant,
        "Ada",
        "Lovelace",
        "ada@north.example.org",
    )
    assert user.has_usable_password() is False
    assert list(ExternalIdentity.objects.values_list("kind", "issuer", "subject", "user")) == [
        (LTI, ISS, "sub-1", user.pk)
    ]
    assert AuditLog.objects.filter(action="person.create", target_id=str(user.pk)).count() == 1


def test_second_resolve_is_idempotent_and_never_blanks_known_values() -> None:
    tenant = TenantFactory()
    first = resolve(tenant)
    second = resolve(tenant, profile=api.PersonProfile())  # an LMS sending no personal data
    assert second == api.PersonResult(user_id=first.user_id, created=False, matched_by="identity")
    user = User.objects.get(pk=first.user_id)
    assert (user.first_name, user.email) == ("Ada", "ada@north.example.org")
    assert User.objects.count() == 1
    assert ExternalIdentity.objects.count() == 1


def test_profile_updates_when_source_sends_new_values() -> None:
    tenant = TenantFactory()
    first = resolve(tenant)
    resolve(tenant, profile=api.PersonProfile(given_name="Augusta"))
    assert User.objects.get(pk=first.user_id).first_name == "Augusta"


def test_same_subject_in_another_tenant_is_another_person() -> None:
    a, b = TenantFactory(), TenantFactory()
    assert resolve(a).user_id != resolve(b).user_id


def test_hint_links_to_the_roster_person() -> None:
    tenant = TenantFactory()
    rostered = ExternalIdentityFactory(
        tenant=tenant, user__tenant=tenant, kind=ONEROSTER, issuer="conn-1", subject="stu-42"
    )
    result = resolve(tenant, link_hints=[api.LinkHint(kind=ONEROSTER, subject="stu-42")])
    assert result == api.PersonResult(user_id=rostered.user_id, created=False, matched_by="hint:oneroster")
    assert ExternalIdentity.objects.filter(user=rostered.user).count() == 2
    assert User.objects.filter(tenant=tenant).count() == 1


def test_hint_never_crosses_tenants() -> None:
    tenant, other = TenantFactory(), TenantFactory()
    ExternalIdentityFactory(tenant=other, user__tenant=other, kind=ONEROSTER, subject="stu-42")
    result = resolve(tenant, link_hints=[api.LinkHint(kind=ONEROSTER, subject="stu-42")])
    assert result.created is True


def test_ambiguous_hint_creates_and_records_candidates_without_merging() -> None:
    tenant = TenantFactory()
    one = ExternalIdentityFactory(
        tenant=tenant, user__tenant=tenant, kind=ONEROSTER, issuer="conn-1", subject="stu-42"
    )
    two = ExternalIdentityFactory(
        tenant=tenant, user__tenant=tenant, kind=ONEROSTER, issuer="conn-2", subject="stu-42"
    )
    result = resolve(
        tenant, profile=api.PersonProfile(), link_hints=[api.LinkHint(kind=ONEROSTER, subject="stu-42")]
    )
    assert result.created is True
    assert set(result.candidates) == {one.user_id, two.user_id}
    assert set(LinkCandidate.objects.filter(user_id=result.user_id).values_list("reason", flat=True)) == {
        "ambiguous-hint"
    }


def test_email_match_is_only_a_candidate() -> None:
    tenant = TenantFactory()
    existing = UserFactory(tenant=tenant, email="ada@north.example.org")
    result = resolve(tenant)
    assert result.created is True
    assert result.user_id != existing.pk
    assert result.candidates == (existing.pk,)
    candidate = LinkCandidate.objects.get()
    assert (candidate.user_id, candidate.candidate_id, candidate.reason, candidate.status) == (
        result.user_id,
        existing.pk,
        "email",
        "open",
    )
    assert User.objects.get(pk=existing.pk).is_active is True


def test_no_match_and_no_create_refuses_and_writes_nothing() -> None:
    tenant = TenantFactory()
    before = (User.objects.count(), ExternalIdentity.objects.count(), AuditLog.objects.count())
    with pytest.raises(api.ProvisioningRefused, match="does not create accounts"):
        resolve(tenant, create=False)
    assert (User.objects.count(), ExternalIdentity.objects.count(), AuditLog.objects.count()) == before


def test_merge_moves_identities_and_enrollments_and_is_recorded() -> None:
    tenant = TenantFactory()
    kept = UserFactory(tenant=tenant)
    merged = UserFactory(tenant=tenant)
    ExternalIdentityFactory(tenant=tenant, user=merged, subject="m-1")
    enrollment = EnrollmentFactory(klass__tenant=tenant, user=merged)
    admin = UserFactory(tenant=tenant)
    record = api.users_merge(tenant=tenant, kept=kept, merged=merged, actor=admin, reason="same student")
    assert record.moved == (("enrollments", 1), ("identities", 1), ("roles", 0))
    assert (record.kept_id, record.merged_id) == (kept.pk, merged.pk)
    assert ExternalIdentity.objects.get(subject="m-1").user_id == kept.pk
    assert Enrollment.objects.get(pk=enrollment.pk).user_id == kept.pk
    merged.refresh_from_db()
    assert merged.is_active is False
    assert UserMerge.objects.count() == 1
    assert AuditLog.objects.filter(action="person.merge").count() == 1


@pytest.mark.parametrize("case", ["self", "cross-tenant"])
def test_merge_refused(case: str) -> None:
    tenant = TenantFactory()
    kept = UserFactory(tenant=tenant)
    merged = kept if case == "self" else UserFactory(tenant=TenantFactory())
    with pytest.raises(api.MergeRefused):
        api.users_merge(tenant=tenant, kept=kept, merged=merged, actor=None, reason="x")
    assert UserMerge.objects.count() == 0


def test_identity_link_refuses_to_steal_a_key() -> None:
    tenant = TenantFactory()
    owner = ExternalIdentityFactory(tenant=tenant, user__tenant=tenant, subject="k")
    other = UserFactory(tenant=tenant)
    with pytest.raises(api.MergeRefused, match="already belongs"):
        api.identity_link(tenant=tenant, user=other, key=api.IdentityKey(owner.kind, owner.issuer, "k"))
    assert ExternalIdentity.objects.get(subject="k").user_id == owner.user_id


def test_role_assign_is_idempotent_and_reactivates() -> None:
    user = UserFactory()
    first = api.role_assign(tenant=user.tenant, user=user, role=api.Role.TUTOR)
    RoleAssignment.objects.filter(pk=first.id).update(is_active=False)
    again = api.role_assign(tenant=user.tenant, user=user, role=api.Role.TUTOR)
    assert (first.created, again.created, again.id, again.is_active) == (True, False, first.id, True)
    assert again == api.RoleGrant(
        id=first.id,
        user_id=user.pk,
        role="tutor",
        school_id=None,
        class_id=None,
        is_active=True,
        created=False,
    )
    assert api.user_roles(user=user) == {"tutor"}


def test_audit_log_is_append_only() -> None:
    entry = AuditLog.objects.get(pk=api.audit_record(tenant=None, actor=None, action="test").id)
    with pytest.raises(TypeError):
        entry.save()
    with pytest.raises(TypeError):
        entry.delete()
    with pytest.raises(TypeError):
        AuditLog.objects.filter(pk=entry.pk).update(action="changed")
    with pytest.raises(TypeError):
        AuditLog.objects.all().delete()


def test_audit_log_database_refuses_updates() -> None:
    """Even raw SQL cannot rewrite history: a trigger refuses (PostgreSQL and SQLite)."""
    from django.db import DatabaseError, transaction

    entry = api.audit_record(tenant=None, actor=None, action="test")
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("UPDATE accounts_auditlog SET action = 'x' WHERE id = %s", [entry.id])


def test_identity_link_and_guardian_link_hand_back_values() -> None:
    tenant = TenantFactory()
    user, child = UserFactory(tenant=tenant), UserFactory(tenant=tenant)
    key = api.IdentityKey(api.IdentityKind.SAML, "https://idp.example", "u-7")
    assert api.identity_link(tenant=tenant, user=user, key=key) == key
    assert api.identity_link(tenant=tenant, user=user, key=key) == key
    assert ExternalIdentity.objects.filter(user=user, subject="u-7").count() == 1
    first = api.guardian_link(tenant=tenant, guardian=user, student=child)
    again = api.guardian_link(tenant=tenant, guardian=user, student=child, relationship="parent")
    assert (first, again) == (
        api.GuardianInfo(guardian_id=user.pk, student_id=child.pk, relationship="guardian", created=True),
        api.GuardianInfo(guardian_id=user.pk, student_id=child.pk, relationship="parent", created=False),
    )
