"""Shared by the player tests: a tenant with a class, its people, an imported
package, and the content origin served by a second live server on 127.0.0.2
(another HOST than the app's localhost live server: cookies are per host)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.test.testcases import LiveServerThread, _StaticFilesHandler

from scorm.models import ScormPackage
from scorm.services import package_import
from tests.factories import ClassFactory, EnrollmentFactory, TenantFactory, UserFactory
from tutoring_core.accounts.models import Role, Tenant, User
from tutoring_core.classes.models import Class

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "scorm"


@dataclass
class PlayerWorld:
    tenant: Tenant
    klass: Class
    teacher: User
    student: User
    package: ScormPackage


def make_player_world(zip_name: str = "RuntimeBasicCalls_SCORM12.zip", *, slug: str = "north") -> PlayerWorld:
    tenant = TenantFactory(slug=slug)
    klass = ClassFactory(tenant=tenant, title="Golf 101")
    teacher = UserFactory(tenant=tenant, first_name="Terry", last_name="Okafor")
    student = UserFactory(tenant=tenant, first_name="Ann", last_name="Lee")
    EnrollmentFactory(klass=klass, user=teacher, role=Role.TEACHER)
    EnrollmentFactory(klass=klass, user=student, role=Role.STUDENT)
    with (FIXTURES / zip_name).open("rb") as handle:
        info = package_import(tenant_id=tenant.pk, actor_id=teacher.pk, fileobj=handle, filename=zip_name)
    return PlayerWorld(tenant, klass, teacher, student, ScormPackage.objects.get(pk=info.id))


@contextmanager
def content_server(settings: Any, app_url: str) -> Iterator[str]:
    """A second live server, on 127.0.0.2, configured as the content origin."""
    thread = LiveServerThread("127.0.0.2", _StaticFilesHandler, port=0)
    thread.daemon = True
    thread.start()
    thread.is_ready.wait()
    if thread.error:
        raise thread.error
    origin = f"http://127.0.0.2:{thread.port}"
    settings.PUBLIC_BASE_URL = app_url
    settings.SCORM_CONTENT_ORIGIN = origin
    try:
        yield origin
    finally:
        thread.terminate()
