"""Google Classroom through the sync pipeline, against a loopback fake of its API."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from oneroster.models import RosterConnection, SyncRun
from oneroster.services import sync_run_create, sync_run_execute
from tests.factories import TenantFactory
from tests.oneroster.fake_classroom import ClassroomData, FakeClassroom
from tutoring_core.accounts.models import ExternalIdentity, GuardianLink, User
from tutoring_core.classes.models import ClassKey, Enrollment

pytestmark = pytest.mark.django_db
EMAIL, ADMIN = "roster-sync@hub-project.iam.gserviceaccount.com", "admin@school.example"


@pytest.fixture
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def classroom(key: rsa.RSAPrivateKey) -> Iterator[FakeClassroom]:
    with FakeClassroom(
        ClassroomData.sample(), public_key=key.public_key(), client_email=EMAIL, subject=ADMIN
    ) as fake:
        yield fake


def connection_for(fake: FakeClassroom, key: rsa.RSAPrivateKey, **kwargs: Any) -> RosterConnection:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    values = {"tenant": TenantFactory(slug="north"), "name": "Classroom", "kind": "google_classroom",
              "base_url": fake.base_url, "token_url": fake.token_url, "client_id": EMAIL,
              "client_secret": pem.decode(), "delegated_user": ADMIN, "page_size": 5, **kwargs}  # fmt: skip
    return RosterConnection.objects.create(**values)


def run(conn: RosterConnection, mode: str = "full") -> SyncRun:
    return sync_run_execute(run_id=sync_run_create(connection=conn, mode=mode).pk)


def test_courses_people_and_guardians_land_in_the_core(
    classroom: FakeClassroom, key: rsa.RSAPrivateKey
) -> None:
    classroom.too_many = {"/v1/courses/7001/students": 1}  # a quota hiccup on the way
    conn = connection_for(classroom, key)
    result = run(conn)
    assert result.status == "succeeded", result.message
    tenant = conn.tenant
    # 3 courses; 18 students each in two courses; 3 teachers; 9 guardians.
    assert ClassKey.objects.filter(tenant=tenant, kind="google_classroom", issuer=str(conn.pk)).count() == 3
    assert User.objects.filter(tenant=tenant).count() == 18 + 3 + 9
    assert ExternalIdentity.objects.filter(tenant=tenant, kind="google_classroom").count() == 30
    assert Enrollment.objects.filter(tenant=tenant, role="student", status="active").count() == 36
    assert Enrollment.objects.filter(tenant=tenant, role="teacher", is_primary=True).count() == 3
    s0 = ExternalIdentity.objects.get(tenant=tenant, kind="google_classroom", subject="s0").user
    g0 = ExternalIdentity.objects.get(tenant=tenant, kind="google_classroom", subject="g0").user
    assert list(GuardianLink.objects.filter(student=s0).values_list("guardian", flat=True)) == [g0.pk]
    assert s0.email == "sam.student0@school.example"
    assert (429 in [s for p, s in classroom.log if p.endswith("/7001/students")]) is True
    # Nothing changed: the second run writes nothing.
    again = run(conn)
    assert {
        e: c["created"] + c["updated"] + c["deactivated"] for e, c in again.counts.items()
    } == dict.fromkeys(again.counts, 0)


def test_guardians_not_granted_is_not_an_error(classroom: FakeClassroom, key: rsa.RSAPrivateKey) -> None:
    classroom.guardians_granted = False
    conn = connection_for(classroom, key)
    result = run(conn)
    assert result.status == "succeeded"
    assert GuardianLink.objects.count() == 0
    assert User.objects.filter(tenant=conn.tenant).count() == 21


def test_a_student_leaving_a_course_is_deactivated_by_a_full_run(
    classroom: FakeClassroom, key: rsa.RSAPrivateKey
) -> None:
    conn = connection_for(classroom, key)
    run(conn)
    classroom.data.students["7000"].remove("s0")
    result = run(conn)
    assert result.counts["enrollment"]["deactivated"] == 1
    s0 = ExternalIdentity.objects.get(tenant=conn.tenant, subject="s0").user
    assert Enrollment.objects.filter(user=s0, status="active").count() == 1


def test_a_wrong_key_is_refused_by_the_token_endpoint(
    classroom: FakeClassroom, key: rsa.RSAPrivateKey
) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    result = run(connection_for(classroom, other))
    assert result.status == "failed"
    assert "token request refused (HTTP 400)" in result.message
    assert User.objects.count() == 0
