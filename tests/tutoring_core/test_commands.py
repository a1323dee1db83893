from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from tutoring_core.accounts.models import AuditLog, RoleAssignment, Tenant, User
from tutoring_core.classes.models import Class, Enrollment, School, Term

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_tenant_create_then_repeat_changes_nothing() -> None:
    first = json.loads(
        run("tenant_create", "lakeside", "--name", "Lakeside USD", "--time-zone", "America/Denver")
    )
    assert first["created"] is True
    assert (first["slug"], first["name"], first["time_zone"]) == (
        "lakeside",
        "Lakeside USD",
        "America/Denver",
    )
    second = json.loads(run("tenant_create", "lakeside", "--name", "Another name"))
    assert second == {**first, "created": False}
    tenant = Tenant.objects.get()
    assert (tenant.name, tenant.time_zone) == ("Lakeside USD", "America/Denver")
    assert AuditLog.objects.filter(action="tenant.create").count() == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["bad-zone", "--name", "X", "--time-zone", "Mars/Olympus"],
            "time_zone: 'Mars/Olympus' is not an IANA time zone",
        ),
        (["Bad_Slug", "--name", "X"], "slug:"),
    ],
)
def test_tenant_create_rejects_bad_input(args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        run("tenant_create", *args)
    assert Tenant.objects.count() == 0


def _counts() -> tuple[int, ...]:
    return tuple(m.objects.count() for m in (Tenant, User, School, Term, Class, Enrollment, RoleAssignment))


def test_demo_load_is_idempotent_and_prints_logins(settings: Any) -> None:
    settings.DEMO_MODE = True
    output = run("demo_load")
    assert "admin@demo" in output and "tutoring-demo-2026" in output
    counts = _counts()
    assert counts == (1, 9, 2, 3, 3, 13, 3)
    run("demo_load")
    assert _counts() == counts
    from lti_tool.models import PlatformRegistration

    # The LTI launch simulator is registered against the demo district too.
    assert PlatformRegistration.objects.get().tenant == Tenant.objects.get(slug="demo")
    admin = User.objects.get(username="admin@demo")
    assert admin.check_password("tutoring-demo-2026") and admin.is_staff and not admin.is_superuser


def test_demo_load_refused_in_production(settings: Any) -> None:
    settings.DEMO_MODE = False
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG=true or DEMO_MODE=true"):
        run("demo_load")
    assert Tenant.objects.count() == 0
