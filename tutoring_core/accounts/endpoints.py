"""JSON API: people (GET /api/v1/people). Mounted by config/api.py.

Who sees whom follows the pages: a district admin sees the whole district; anyone
else sees themselves, their wards, the members of classes they teach or tutor
(the class page's member list), and the district's tutors.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Literal

from django.db.models import Q, QuerySet
from django.http import HttpRequest
from ninja import Query, Router, Schema
from pydantic import Field

from tutoring_core.accounts.models import GuardianLink, Role, RoleAssignment, User
from tutoring_core.accounts.selectors import is_district_admin
from tutoring_core.apiauth.auth import request_person
from tutoring_core.apiauth.schemas import errors
from tutoring_core.classes.models import Enrollment

router = Router(tags=["people"])

RoleName = Literal["student", "teacher", "tutor", "guardian", "school_admin", "district_admin"]
ROLE_ORDER = [role.value for role in Role]


class PersonOut(Schema):
    id: uuid.UUID
    name: str
    roles: list[str] = Field(description="Every role the person holds in the district, in a fixed order.")


class PeoplePage(Schema):
    count: int = Field(description="People matching the filter, over all pages.")
    limit: int
    offset: int
    items: list[PersonOut]


class PeopleFilter(Schema):
    role: RoleName | None = Field(None, description="Only people holding this role.")
    limit: int = Field(50, ge=1, le=500)
    offset: int = Field(0, ge=0, le=10_000_000)


def visible_people(person: User) -> QuerySet[User]:
    """The people of ``person``'s district that ``person`` may see (see the module docstring)."""
    tenant_id = person.tenant_id
    assert tenant_id is not None, "API tokens belong to people of a tenant"
    people = User.objects.filter(tenant_id=tenant_id, is_active=True)
    if is_district_admin(person):
        return people
    taught = Enrollment.objects.active().filter(
        user=person, role__in=[Role.TEACHER, Role.TUTOR], klass__tenant_id=tenant_id
    )
    return people.filter(
        Q(pk=person.pk)
        | Q(guardians__guardian=person, guardians__is_active=True)
        | Q(
            enrollments__klass__in=taught.values("klass"),
            enrollments__status=Enrollment.Status.ACTIVE,
        )
        | Q(
            role_assignments__role=Role.TUTOR,
            role_assignments__is_active=True,
            role_assignments__school__isnull=True,
            role_assignments__klass__isnull=True,
        )
    ).distinct()


def with_role(people: QuerySet[User], role: str) -> QuerySet[User]:
    holders = Q(pk__in=RoleAssignment.objects.active().filter(role=role).values("user")) | Q(
        pk__in=Enrollment.objects.active().filter(role=role).values("user")
    )
    if role == Role.GUARDIAN:
        holders |= Q(pk__in=GuardianLink.objects.filter(is_active=True).values("guardian"))
    return people.filter(holders)


def roles_of(user_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[str]]:
    """accounts.selectors.user_roles for a page of people in three queries, not three per person."""
    found: dict[uuid.UUID, set[str]] = defaultdict(set)
    for user_id, role in (
        RoleAssignment.objects.active().filter(user_id__in=user_ids).values_list("user_id", "role")
    ):
        found[user_id].add(role)
    for user_id, role in (
        Enrollment.objects.active().filter(user_id__in=user_ids).values_list("user_id", "role")
    ):
        found[user_id].add(role)
    for user_id in GuardianLink.objects.filter(guardian_id__in=user_ids, is_active=True).values_list(
        "guardian_id", flat=True
    ):
        found[user_id].add(Role.GUARDIAN)
    return {user_id: [role for role in ROLE_ORDER if role in found[user_id]] for user_id in user_ids}


@router.get("/people", response={200: PeoplePage, **errors()}, url_name="api_people_list")
def people_list(request: HttpRequest, filters: Query[PeopleFilter]) -> PeoplePage:
    """People of the caller's district, ordered by family name, given name and id."""
    person = request_person(request)
    people = visible_people(person)
    if filters.role:
        people = with_role(people, filters.role)
    count = people.count()
    page = list(
        people.order_by("last_name", "first_name", "id")[filters.offset : filters.offset + filters.limit]
    )
    roles = roles_of([user.pk for user in page])
    return PeoplePage(
        count=count,
        limit=filters.limit,
        offset=filters.offset,
        items=[
            PersonOut(id=user.pk, name=user.full_name or user.username, roles=roles[user.pk]) for user in page
        ],
    )
