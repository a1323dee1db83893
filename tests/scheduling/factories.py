"""factory_boy factories and a small world for the scheduling tests."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import factory

from tests.factories import (
    ClassFactory,
    EnrollmentFactory,
    GuardianLinkFactory,
    TenantFactory,
    UserFactory,
    district_admin,
)
from tutoring_core.accounts.models import Role, Tenant, User
from tutoring_core.classes.models import Class
from tutoring_core.scheduling.models import (
    AvailabilityOverride,
    AvailabilityRule,
    SchedulingPolicy,
    Series,
    Session,
    SessionParticipant,
    TutorProfile,
)

UTC = dt.UTC


class TutorProfileFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TutorProfile

    user = factory.SubFactory(UserFactory)
    tenant = factory.SelfAttribute("user.tenant")
    subjects = factory.LazyFunction(lambda: ["Algebra"])
    time_zone = "America/Chicago"


class AvailabilityRuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AvailabilityRule

    tutor = factory.SubFactory(TutorProfileFactory)
    tenant = factory.SelfAttribute("tutor.tenant")
    weekday = 0
    start_minute = 9 * 60
    end_minute = 17 * 60


class AvailabilityOverrideFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AvailabilityOverride

    tutor = factory.SubFactory(TutorProfileFactory)
    tenant = factory.SelfAttribute("tutor.tenant")
    date = dt.date(2027, 3, 3)
    unavailable = True


class SchedulingPolicyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SchedulingPolicy
        django_get_or_create = ("tenant",)

    tenant = factory.SubFactory(TenantFactory)


class SeriesFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Series

    tutor = factory.SubFactory(UserFactory)
    tenant = factory.SelfAttribute("tutor.tenant")
    rrule = "FREQ=WEEKLY;COUNT=4"
    dtstart = dt.datetime(2027, 3, 3, 16, tzinfo=UTC)
    duration_min = 60
    time_zone = "America/Chicago"


class SessionFactory(factory.django.DjangoModelFactory):
    """A booked session written directly (no checks): for reads and admin tests."""

    class Meta:
        model = Session

    tutor = factory.SubFactory(UserFactory)
    tenant = factory.SelfAttribute("tutor.tenant")
    start = dt.datetime(2027, 3, 3, 16, tzinfo=UTC)
    end = factory.LazyAttribute(lambda s: s.start + dt.timedelta(hours=1))
    block_start = factory.SelfAttribute("start")
    block_end = factory.SelfAttribute("end")
    status = Session.Status.BOOKED
    time_zone = "America/Chicago"


class SessionParticipantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SessionParticipant

    session = factory.SubFactory(SessionFactory)
    tenant = factory.SelfAttribute("session.tenant")
    student = factory.SubFactory(UserFactory, tenant=factory.SelfAttribute("..session.tenant"))


# Monday 1 March 2027, 12:00 UTC (06:00 in Chicago): the tests' "now".
NOW = dt.datetime(2027, 3, 1, 12, tzinfo=UTC)
# Wednesday 3 March 2027 10:00 in Chicago (CST, UTC-6).
WED_10 = dt.datetime(2027, 3, 3, 16, tzinfo=UTC)


@dataclass
class World:
    """One district with a tutor (Mon-Fri 09:00-17:00 Chicago) and everyone who may book."""

    tenant: Tenant
    klass: Class
    other_class: Class
    tutor: User
    profile: TutorProfile
    student: User
    other_student: User
    teacher: User
    other_teacher: User
    guardian: User
    admin: User
    other_tenant: Tenant
    outsider_tutor: User
    outsider_student: User


def make_world(slug: str = "north") -> World:
    tenant = TenantFactory(slug=slug, name=f"{slug.title()} District", time_zone="America/Chicago")
    klass = ClassFactory(tenant=tenant, title="Algebra I")
    other_class = ClassFactory(tenant=tenant, title="Biology")
    tutor = UserFactory(tenant=tenant, username=f"{slug}-tutor", first_name="Priya", last_name="Shah")
    profile = TutorProfileFactory(user=tutor, session_lengths=[30, 60])
    for day in range(5):
        AvailabilityRuleFactory(tutor=profile, weekday=day, start_minute=9 * 60, end_minute=17 * 60)
    student = UserFactory(tenant=tenant, username=f"{slug}-ava", first_name="Ava", last_name="Nguyen")
    other_student = UserFactory(tenant=tenant, username=f"{slug}-ben", first_name="Ben", last_name="Carter")
    EnrollmentFactory(klass=klass, user=student, role=Role.STUDENT)
    EnrollmentFactory(klass=other_class, user=other_student, role=Role.STUDENT)
    teacher = UserFactory(tenant=tenant, username=f"{slug}-teacher")
    EnrollmentFactory(klass=klass, user=teacher, role=Role.TEACHER)
    other_teacher = UserFactory(tenant=tenant, username=f"{slug}-other-teacher")
    EnrollmentFactory(klass=other_class, user=other_teacher, role=Role.TEACHER)
    guardian = UserFactory(tenant=tenant, username=f"{slug}-grace")
    GuardianLinkFactory(tenant=tenant, guardian=guardian, student=student)
    admin = district_admin(tenant, username=f"{slug}-admin")
    other_tenant = TenantFactory(slug=f"{slug}-other", name="Other District")
    outsider_tutor = UserFactory(tenant=other_tenant, username=f"{slug}-outsider-tutor")
    outsider_profile = TutorProfileFactory(user=outsider_tutor, session_lengths=[30, 60])
    AvailabilityRuleFactory(tutor=outsider_profile, weekday=2)
    outsider_student = UserFactory(tenant=other_tenant, username=f"{slug}-outsider-student")
    EnrollmentFactory(klass=ClassFactory(tenant=other_tenant), user=outsider_student, role=Role.STUDENT)
    return World(
        tenant=tenant,
        klass=klass,
        other_class=other_class,
        tutor=tutor,
        profile=profile,
        student=student,
        other_student=other_student,
        teacher=teacher,
        other_teacher=other_teacher,
        guardian=guardian,
        admin=admin,
        other_tenant=other_tenant,
        outsider_tutor=outsider_tutor,
        outsider_student=outsider_student,
    )
