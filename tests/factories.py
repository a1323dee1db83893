"""factory_boy factories for the core. Integration apps keep theirs beside their tests."""

from __future__ import annotations

import datetime as dt

import factory

from tutoring_core.accounts.models import (
    AuditLog,
    ExternalIdentity,
    GuardianLink,
    LinkCandidate,
    Role,
    RoleAssignment,
    Tenant,
    User,
)
from tutoring_core.classes.models import Class, ClassKey, Course, Enrollment, School, Term

PASSWORD = "correct horse battery staple"


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"district-{n}")
    name = factory.Sequence(lambda n: f"District {n}")
    time_zone = "America/Chicago"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    tenant = factory.SubFactory(TenantFactory)
    username = factory.Sequence(lambda n: f"person{n}")
    first_name = factory.Sequence(lambda n: f"Given{n}")
    last_name = factory.Sequence(lambda n: f"Family{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.org")
    password = factory.django.Password(PASSWORD)


class SchoolFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = School

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"School {n}")
    code = factory.Sequence(lambda n: f"S{n}")


class TermFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Term

    tenant = factory.SubFactory(TenantFactory)
    title = factory.Sequence(lambda n: f"Term {n}")
    start_date = dt.date(2026, 8, 17)
    end_date = dt.date(2026, 12, 18)


class CourseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Course

    tenant = factory.SubFactory(TenantFactory)
    title = factory.Sequence(lambda n: f"Course {n}")


class ClassFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Class

    tenant = factory.SubFactory(TenantFactory)
    title = factory.Sequence(lambda n: f"Class {n}")
    school = factory.SubFactory(SchoolFactory, tenant=factory.SelfAttribute("..tenant"))


class ClassKeyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ClassKey

    klass = factory.SubFactory(ClassFactory)
    tenant = factory.SelfAttribute("klass.tenant")
    kind = ClassKey.Kind.ONEROSTER
    issuer = "sis"
    subject = factory.Sequence(lambda n: f"class-{n}")


class EnrollmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Enrollment

    klass = factory.SubFactory(ClassFactory)
    tenant = factory.SelfAttribute("klass.tenant")
    user = factory.SubFactory(UserFactory, tenant=factory.SelfAttribute("..klass.tenant"))
    role = Role.STUDENT


class RoleAssignmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RoleAssignment

    user = factory.SubFactory(UserFactory)
    tenant = factory.SelfAttribute("user.tenant")
    role = Role.TEACHER


class ExternalIdentityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ExternalIdentity

    user = factory.SubFactory(UserFactory)
    tenant = factory.SelfAttribute("user.tenant")
    kind = ExternalIdentity.Kind.LTI
    issuer = "https://lms.example.org"
    subject = factory.Sequence(lambda n: f"sub-{n}")


class GuardianLinkFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = GuardianLink

    student = factory.SubFactory(UserFactory)
    tenant = factory.SelfAttribute("student.tenant")
    guardian = factory.SubFactory(UserFactory, tenant=factory.SelfAttribute("..student.tenant"))


class LinkCandidateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = LinkCandidate

    user = factory.SubFactory(UserFactory)
    tenant = factory.SelfAttribute("user.tenant")
    candidate = factory.SubFactory(UserFactory, tenant=factory.SelfAttribute("..user.tenant"))
    reason = "email"


def audit_entry(tenant: Tenant) -> AuditLog:
    return AuditLog.objects.create(tenant=tenant, action="test.entry", target_label="x")


def district_admin(tenant: Tenant, **kwargs: object) -> User:
    user = UserFactory(tenant=tenant, is_staff=True, **kwargs)
    RoleAssignmentFactory(user=user, tenant=tenant, role=Role.DISTRICT_ADMIN)
    return user
