"""A tenant with a class, a teacher, students who launched from a loopback LMS, a
registration of that LMS, and a gradable placement whose line item lives there."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.core.cache import cache

from lti_tool import api as lti_api
from lti_tool.advantage.models import LineItem
from lti_tool.advantage.platforms import platform_access_forget
from lti_tool.advantage.services import placement_register
from lti_tool.models import Deployment, LtiContext, PlatformRegistration, ResourceLink
from tests.factories import (
    ClassFactory,
    EnrollmentFactory,
    ExternalIdentityFactory,
    TenantFactory,
    UserFactory,
)
from tests.peers.lti_advantage_platform import AdvantagePlatform, Faults
from tutoring_core.accounts.models import Role, Tenant, User
from tutoring_core.classes.models import Class

CONTEXT = "Ctx-AbC123"
LEARNER = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"
INSTRUCTOR = "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"


@dataclass
class World:
    lms: AdvantagePlatform
    tenant: Tenant
    klass: Class
    teacher: User
    registration: PlatformRegistration
    context: LtiContext
    link: ResourceLink
    line_item: LineItem
    students: list[User] = field(default_factory=list)
    subs: dict[Any, str] = field(default_factory=dict)


def make_world(
    lms: AdvantagePlatform, *, students: int = 3, preset: str = "generic", slug: str | None = None
) -> World:
    platform_access_forget()
    lms.set_tool_jwks(lti_api.tool_jwks())
    tenant = TenantFactory(slug=slug or f"t-{uuid.uuid4().hex[:8]}")
    klass = ClassFactory(tenant=tenant, title="Algebra I")
    teacher = UserFactory(tenant=tenant)
    EnrollmentFactory(klass=klass, user=teacher, role=Role.TEACHER)
    registration = PlatformRegistration.objects.create(
        tenant=tenant,
        issuer=lms.issuer,
        client_id=f"{lms.client_id}",
        preset=preset,
        auth_login_url=f"{lms.base_url}/auth",
        auth_token_url=lms.token_url,
        key_set_url=f"{lms.base_url}/jwks",
    )
    deployment = Deployment.objects.create(tenant=tenant, registration=registration, deployment_id="dep-1")
    context = LtiContext.objects.create(
        tenant=tenant,
        registration=registration,
        deployment=deployment,
        context_id=CONTEXT,
        klass=klass,
        title="Algebra I",
        nrps_memberships_url=lms.memberships_url(CONTEXT),
        nrps_service_versions=["2.0"],
    )
    platform_item = lms.add_lineitem(CONTEXT, label="Quiz 1", scoreMaximum=10, resourceLinkId="rl-Quiz1")
    link = ResourceLink.objects.create(
        tenant=tenant,
        registration=registration,
        deployment=deployment,
        context=context,
        resource_link_id="rl-Quiz1",
        title="Quiz 1",
        ags_lineitems_url=lms.lineitems_url(CONTEXT),
        ags_lineitem_url=platform_item["id"],
        ags_scopes=["https://purl.imsglobal.org/spec/lti-ags/scope/score"],
    )
    line_item = placement_register(
        tenant=tenant,
        registration_id=registration.pk,
        class_id=klass.pk,
        resource_link_id="rl-Quiz1",
        context_id=CONTEXT,
        title="Quiz 1",
        score_maximum=10,
        lineitem_url=platform_item["id"],
        lineitems_url=lms.lineitems_url(CONTEXT),
    )
    world = World(
        lms=lms,
        tenant=tenant,
        klass=klass,
        teacher=teacher,
        registration=registration,
        context=context,
        link=link,
        line_item=line_item,
    )
    lms.add_member(CONTEXT, f"sub-Teacher-{teacher.pk.hex[:6]}", [INSTRUCTOR])
    for index in range(students):
        add_student(world, index)
    return world


def add_student(world: World, index: int) -> User:
    student = UserFactory(tenant=world.tenant)
    EnrollmentFactory(klass=world.klass, user=student, role=Role.STUDENT)
    sub = f"Sub-{index}-{student.pk.hex[:6]}"
    ExternalIdentityFactory(user=student, tenant=world.tenant, issuer=world.lms.issuer, subject=sub)
    world.lms.add_member(CONTEXT, sub, [LEARNER], name=student.full_name)
    world.students.append(student)
    world.subs[student.pk] = sub
    return student


@pytest.fixture
def lms() -> Iterator[AdvantagePlatform]:
    with AdvantagePlatform(page_size=2) as platform:
        yield platform


@pytest.fixture
def world(db: Any, lms: AdvantagePlatform) -> World:
    return make_world(lms)


@contextlib.contextmanager
def notifier_off() -> Iterator[None]:
    """Record results without telling the AGS integration (as if its notifier had
    been lost with a broker): only the sweeper or a dispatcher run finds them."""
    from lti_tool.advantage.models import AGS_DESTINATION
    from tutoring_core.progress import services

    saved = services._NOTIFIERS.pop(AGS_DESTINATION)
    try:
        yield
    finally:
        services._NOTIFIERS[AGS_DESTINATION] = saved


@pytest.fixture
def tworld(transactional_db: Any, lms: AdvantagePlatform) -> World:
    """The same world, committed: for the dispatcher, whose sender threads read it
    through their own database connections."""
    return make_world(lms)


@pytest.fixture(autouse=True)
def _fresh_platform_cache() -> Iterator[None]:
    platform_access_forget()
    yield
    platform_access_forget()


__all__ = [
    "CONTEXT",
    "INSTRUCTOR",
    "LEARNER",
    "Faults",
    "World",
    "add_student",
    "cache",
    "make_world",
    "notifier_off",
]
