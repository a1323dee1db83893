from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.factories import ClassFactory, TenantFactory, UserFactory
from tutoring_core.accounts import api as accounts_api
from tutoring_core.accounts.api import IdentityKey, PersonProfile
from tutoring_core.accounts.models import ExternalIdentity, Role
from tutoring_core.classes import api
from tutoring_core.classes.models import Class, ClassKey, Enrollment

pytestmark = pytest.mark.django_db

CTX = api.ClassKeyRef(
    kind=api.ClassKeyKind.LTI_CONTEXT, issuer="https://moodle.example.edu", subject="dep-1/ctx-9"
)


def test_class_upsert_creates_then_is_idempotent() -> None:
    tenant = TenantFactory()
    first = api.class_upsert(tenant=tenant, key=CTX, title="Biology 101", code="BIO", source=api.Source.LTI)
    again = api.class_upsert(tenant=tenant, key=CTX, title="Biology 101", code="BIO", source=api.Source.LTI)
    assert (first.created, first.changed) == (True, True)
    assert again == api.UpsertResult(id=first.id, created=False, changed=False)
    klass = Class.objects.get()
    assert (klass.title, klass.code, klass.source, klass.tenant) == ("Biology 101", "BIO", "lti", tenant)


def test_class_upsert_updates_title_and_reactivates_but_never_blanks() -> None:
    tenant = TenantFactory()
    first = api.class_upsert(tenant=tenant, key=CTX, title="Biology 101")
    assert api.class_deactivate(tenant=tenant, class_id=first.id) is True
    result = api.class_upsert(tenant=tenant, key=CTX, title="")
    klass = Class.objects.get(pk=first.id)
    assert (result.changed, klass.title, klass.is_active) == (True, "Biology 101", True)
    api.class_upsert(tenant=tenant, key=CTX, title="Biology 101 (Fall)")
    assert Class.objects.get(pk=first.id).title == "Biology 101 (Fall)"


def test_link_to_joins_an_lti_context_to_the_roster_class() -> None:
    tenant = TenantFactory()
    roster_key = api.ClassKeyRef(kind=api.ClassKeyKind.ONEROSTER, issuer="conn", subject="cls-7")
    rostered = api.class_upsert(tenant=tenant, key=roster_key, title="Algebra")
    launched = api.class_upsert(tenant=tenant, key=CTX, title="Algebra (Canvas)", link_to=roster_key)
    assert launched.id == rostered.id
    assert launched.created is False
    assert Class.objects.count() == 1
    assert ClassKey.objects.filter(klass_id=rostered.id).count() == 2


def test_same_key_in_two_tenants_makes_two_classes() -> None:
    a = api.class_upsert(tenant=TenantFactory(), key=CTX, title="A")
    b = api.class_upsert(tenant=TenantFactory(), key=CTX, title="B")
    assert a.id != b.id


def test_enrollment_upsert_is_idempotent_and_reactivates() -> None:
    klass = ClassFactory()
    user = UserFactory(tenant=klass.tenant)
    first = api.enrollment_upsert(
        tenant=klass.tenant, class_id=klass.pk, user=user, role="student", source="lti"
    )
    again = api.enrollment_upsert(
        tenant=klass.tenant, class_id=klass.pk, user=user, role="student", source="lti"
    )
    assert (first.created, again.created, again.changed) == (True, False, False)
    assert api.enrollment_deactivate(tenant=klass.tenant, class_id=klass.pk, user=user) == 1
    back = api.enrollment_upsert(tenant=klass.tenant, class_id=klass.pk, user=user, role="student")
    assert (back.created, back.changed) == (False, True)
    assert Enrollment.objects.get().status == "active"


def test_enrollment_refuses_cross_tenant_and_unknown_roles() -> None:
    klass = ClassFactory()
    outsider = UserFactory(tenant=TenantFactory())
    with pytest.raises(ValueError, match="belong to this tenant"):
        api.enrollment_upsert(tenant=klass.tenant, class_id=klass.pk, user=outsider, role="student")
    with pytest.raises(ValueError, match="Unknown role"):
        api.enrollment_upsert(
            tenant=klass.tenant, class_id=klass.pk, user=UserFactory(tenant=klass.tenant), role="owner"
        )
    assert Enrollment.objects.count() == 0


def test_enrollment_deactivate_keeps_listed_members() -> None:
    klass = ClassFactory()
    stay, go = UserFactory(tenant=klass.tenant), UserFactory(tenant=klass.tenant)
    for user in (stay, go):
        api.enrollment_upsert(tenant=klass.tenant, class_id=klass.pk, user=user, role="student", source="lti")
    assert (
        api.enrollment_deactivate(
            tenant=klass.tenant, class_id=klass.pk, source="lti", keep_user_ids={stay.pk}
        )
        == 1
    )
    assert dict(Enrollment.objects.values_list("user_id", "status")) == {stay.pk: "active", go.pk: "inactive"}
    # History is kept: nothing was deleted.
    assert Enrollment.objects.count() == 2


def test_classes_for_user_lists_active_enrollments_only() -> None:
    klass, gone = ClassFactory(title="B class"), ClassFactory(title="A class")
    user = UserFactory(tenant=klass.tenant)
    api.enrollment_upsert(tenant=klass.tenant, class_id=klass.pk, user=user, role="teacher")
    gone.tenant = klass.tenant
    gone.save()
    api.enrollment_upsert(tenant=klass.tenant, class_id=gone.pk, user=user, role="student")
    api.enrollment_deactivate(tenant=klass.tenant, class_id=gone.pk, user=user)
    assert [(c.title, c.role) for c in api.classes_for_user(user=user)] == [("B class", "teacher")]


def test_link_to_with_any_issuer_joins_only_an_unambiguous_class() -> None:
    tenant = TenantFactory()
    one = api.class_upsert(
        tenant=tenant, key=api.ClassKeyRef(kind="oneroster", issuer="conn-1", subject="SEC-1"), title="One"
    )
    any_issuer = api.ClassKeyRef(kind="oneroster", issuer=None, subject="SEC-1")
    joined = api.class_upsert(tenant=tenant, key=CTX, title="LMS copy", link_to=[any_issuer])
    assert joined.id == one.id
    # A second connection with the same sourcedId makes the join ambiguous: no guess.
    api.class_upsert(
        tenant=tenant, key=api.ClassKeyRef(kind="oneroster", issuer="conn-2", subject="SEC-1"), title="Two"
    )
    other_ctx = api.ClassKeyRef(
        kind=api.ClassKeyKind.LTI_CONTEXT, issuer="https://moodle.example.edu", subject="dep-1/ctx-10"
    )
    fresh = api.class_upsert(tenant=tenant, key=other_ctx, title="Separate", link_to=[any_issuer])
    assert fresh.created is True


def test_class_key_without_issuer_is_refused() -> None:
    with pytest.raises(ValueError, match="needs its issuer"):
        api.class_upsert(
            tenant=TenantFactory(), key=api.ClassKeyRef(kind="oneroster", issuer=None, subject="x"), title="X"
        )
    assert Class.objects.count() == 0


PERSON = IdentityKey(kind="lti", issuer="https://moodle.example.edu", subject="s-42")
SEEN_WITHIN = dt.timedelta(minutes=5)


@pytest.mark.parametrize(
    ("case", "person_known", "class_known"),
    [
        ("current person enrolled in the class", True, True),
        ("unknown person", False, False),
        ("person not seen for an hour", False, False),
        ("profile brings a new name", False, False),
        ("class unknown", True, False),
        ("not enrolled", True, False),
        ("enrolled in another role", True, False),
        ("enrollment inactive", True, False),
        ("class inactive", True, False),
        ("class retitled", True, False),
        ("the same key in another tenant", True, False),
    ],
)
def test_person_class_current_answers_as_the_two_reads_do(
    case: str, person_known: bool, class_known: bool
) -> None:
    tenant, other = TenantFactory(slug="east"), TenantFactory(slug="west")
    user = UserFactory(tenant=tenant, first_name="Ana")
    now = timezone.now()
    seen = now - (dt.timedelta(hours=1) if case == "person not seen for an hour" else dt.timedelta(minutes=1))
    if case != "unknown person":
        ExternalIdentity.objects.create(
            tenant=tenant,
            kind="lti",
            issuer=PERSON.issuer,
            subject=PERSON.subject,
            user=user,
            last_seen_at=seen,
        )
    class_tenant = other if case == "the same key in another tenant" else tenant
    if case != "class unknown":
        klass = api.class_upsert(tenant=class_tenant, key=CTX, title="Biology 101", code="BIO").id
        if case not in ("not enrolled", "the same key in another tenant"):
            api.enrollment_upsert(
                tenant=tenant,
                class_id=klass,
                user=user,
                role=Role.TEACHER if case == "enrolled in another role" else Role.STUDENT,
            )
        if case == "enrollment inactive":
            Enrollment.objects.filter(user=user).update(status=Enrollment.Status.INACTIVE)
        if case == "class inactive":
            Class.objects.filter(pk=klass).update(is_active=False)
    profile = PersonProfile(given_name="Anabel" if case == "profile brings a new name" else "Ana")
    title = "Biology 102" if case == "class retitled" else "Biology 101"
    kwargs = {"tenant": tenant, "profile": profile, "seen_within": SEEN_WITHIN}
    with CaptureQueriesContext(connection) as one:
        found_user, found_class = api.person_class_current(
            person=PERSON, key=CTX, role=Role.STUDENT, title=title, code="BIO", **kwargs
        )
    assert len(one.captured_queries) == 1
    # The two reads it stands for give the same answers.
    alone = accounts_api.person_current(key=PERSON, **kwargs)
    assert (found_user, alone) == ((user, user) if person_known else (None, None))
    assert found_user is None or found_user.tenant == tenant
    enrolled = (
        api.class_enrollment_current(
            tenant=tenant, key=CTX, user=user, role=Role.STUDENT, title=title, code="BIO"
        )
        if person_known
        else None
    )
    expected_class = Class.objects.get(keys__subject=CTX.subject, tenant=tenant).pk if class_known else None
    assert (found_class, enrolled) == (expected_class, expected_class)


def test_person_class_current_with_a_keyless_class_reads_the_person_only() -> None:
    tenant = TenantFactory()
    user = UserFactory(tenant=tenant)
    ExternalIdentity.objects.create(
        tenant=tenant, kind="lti", issuer=PERSON.issuer, subject=PERSON.subject, user=user,
        last_seen_at=timezone.now(),
    )  # fmt: skip
    roster_key = api.ClassKeyRef(kind=api.ClassKeyKind.ONEROSTER, issuer=None, subject="cls-7")
    assert api.person_class_current(
        tenant=tenant, person=PERSON, profile=PersonProfile(), seen_within=SEEN_WITHIN,
        key=roster_key, role=Role.STUDENT, title="Algebra",
    ) == (user, None)  # fmt: skip
