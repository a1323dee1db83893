"""The demo district that `make run` loads. Loading it twice changes nothing."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import transaction

from tutoring_core.accounts.models import Role, Tenant, User
from tutoring_core.accounts.services import guardian_link, role_assign, tenant_create
from tutoring_core.classes.data import ClassKeyRef
from tutoring_core.classes.models import ClassKey, Course, School, Source, Term
from tutoring_core.classes.services import class_upsert, enrollment_upsert

DEMO_SLUG = "demo"
# Printed by `make run`; demo_load refuses to run outside DEBUG/DEMO_MODE.
DEMO_PASSWORD = "tutoring-demo-2026"  # noqa: S105


@dataclass(frozen=True)
class DemoLogin:
    username: str
    role: str
    name: str


PEOPLE = [
    ("admin", "Dana", "Reyes", Role.DISTRICT_ADMIN),
    ("teacher", "Terry", "Okafor", Role.TEACHER),
    ("tutor1", "Priya", "Shah", Role.TUTOR),
    ("tutor2", "Marcus", "Lee", Role.TUTOR),
    ("student1", "Ava", "Nguyen", Role.STUDENT),
    ("student2", "Ben", "Carter", Role.STUDENT),
    ("student3", "Chloe", "Martin", Role.STUDENT),
    ("student4", "Diego", "Lopez", Role.STUDENT),
    ("guardian", "Grace", "Nguyen", Role.GUARDIAN),
]


def _user(tenant: Tenant, username: str, first: str, last: str) -> User:
    user, created = User.objects.get_or_create(
        username=f"{username}@{DEMO_SLUG}",
        defaults={
            "tenant": tenant,
            "first_name": first,
            "last_name": last,
            "email": f"{username}@demo.example.org",
            "email_verified": True,
        },
    )
    if created:
        user.set_password(DEMO_PASSWORD)
        user.save(update_fields=["password"])
    return user


@transaction.atomic
def demo_load() -> list[DemoLogin]:
    tenant, _ = tenant_create(
        slug=DEMO_SLUG, name="Riverside Unified School District", time_zone="America/Chicago"
    )
    schools = {}
    for code, name in (("RHS", "Riverside High School"), ("RMS", "Riverside Middle School")):
        schools[code], _ = School.objects.get_or_create(
            tenant=tenant, code=code, defaults={"name": name, "source": Source.DEMO}
        )
    year, _ = Term.objects.get_or_create(
        tenant=tenant,
        title="2026-2027",
        defaults={
            "kind": Term.Kind.SCHOOL_YEAR,
            "start_date": dt.date(2026, 8, 17),
            "end_date": dt.date(2027, 6, 4),
            "source": Source.DEMO,
        },
    )
    fall, _ = Term.objects.get_or_create(
        tenant=tenant,
        title="Fall 2026",
        defaults={
            "kind": Term.Kind.SEMESTER,
            "parent": year,
            "start_date": dt.date(2026, 8, 17),
            "end_date": dt.date(2026, 12, 18),
            "source": Source.DEMO,
        },
    )
    spring, _ = Term.objects.get_or_create(
        tenant=tenant,
        title="Spring 2027",
        defaults={
            "kind": Term.Kind.SEMESTER,
            "parent": year,
            "start_date": dt.date(2027, 1, 5),
            "end_date": dt.date(2027, 6, 4),
            "source": Source.DEMO,
        },
    )
    people = {username: _user(tenant, username, first, last) for username, first, last, _ in PEOPLE}
    admin = people["admin"]
    if not admin.is_staff:
        admin.is_staff = True
        admin.save(update_fields=["is_staff"])
    role_assign(tenant=tenant, user=admin, role=Role.DISTRICT_ADMIN, source=Source.DEMO)
    for tutor in ("tutor1", "tutor2"):
        role_assign(tenant=tenant, user=people[tutor], role=Role.TUTOR, source=Source.DEMO)

    classes = [
        (
            "RHS",
            "ALG1",
            "Algebra I",
            "Algebra I — Period 2",
            fall,
            ["student1", "student2", "student3"],
            "tutor1",
        ),
        ("RHS", "BIO", "Biology", "Biology — Period 4", fall, ["student1", "student4"], "tutor2"),
        ("RMS", "ELA7", "English 7", "English 7 — Period 1", spring, ["student3", "student4"], "tutor1"),
    ]
    for school_code, course_code, course_title, title, term, students, tutor in classes:
        school = schools[school_code]
        course, _ = Course.objects.get_or_create(
            tenant=tenant,
            code=course_code,
            defaults={"title": course_title, "school": school, "source": Source.DEMO},
        )
        result = class_upsert(
            tenant=tenant,
            key=ClassKeyRef(kind=ClassKey.Kind.ONEROSTER, issuer="demo-sis", subject=f"class-{course_code}"),
            title=title,
            code=course_code,
            source=Source.DEMO,
            school_id=school.pk,
            course_id=course.pk,
        )
        klass = course.classes.get(pk=result.id)
        klass.terms.add(term)
        enrollment_upsert(
            tenant=tenant,
            class_id=klass.pk,
            user=people["teacher"],
            role=Role.TEACHER,
            source=Source.DEMO,
            is_primary=True,
        )
        enrollment_upsert(
            tenant=tenant, class_id=klass.pk, user=people[tutor], role=Role.TUTOR, source=Source.DEMO
        )
        for student in students:
            enrollment_upsert(
                tenant=tenant, class_id=klass.pk, user=people[student], role=Role.STUDENT, source=Source.DEMO
            )
    guardian_link(
        tenant=tenant,
        guardian=people["guardian"],
        student=people["student1"],
        relationship="parent",
        source=Source.DEMO,
    )
    return [
        DemoLogin(username=f"{u}@{DEMO_SLUG}", role=Role(r).label, name=f"{f} {last}")
        for u, f, last, r in PEOPLE
    ]
