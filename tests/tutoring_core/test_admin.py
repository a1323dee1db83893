from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from tests.factories import ClassFactory, TenantFactory, UserFactory, district_admin
from tutoring_core.accounts.models import AuditLog, User

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_tenants() -> dict[str, Any]:
    north, south = TenantFactory(slug="north"), TenantFactory(slug="south")
    return {
        "north": north,
        "south": south,
        "admin": district_admin(north, username="north-admin"),
        "north_user": UserFactory(tenant=north, username="north-kid"),
        "south_user": UserFactory(tenant=south, username="south-kid"),
    }


def test_district_admin_lists_only_their_tenants_people(client: Any, two_tenants: dict[str, Any]) -> None:
    client.force_login(two_tenants["admin"])
    html = client.get(reverse("admin:accounts_user_changelist")).content.decode()
    assert "north-kid" in html
    assert "south-kid" not in html


def test_district_admin_edits_own_user_without_platform_powers(
    client: Any, two_tenants: dict[str, Any]
) -> None:
    client.force_login(two_tenants["admin"])
    user = two_tenants["north_user"]
    url = reverse("admin:accounts_user_change", args=[user.pk])
    page = client.get(url).content.decode()
    assert 'name="is_superuser"' not in page
    assert 'name="tenant"' not in page
    response = client.post(
        url,
        {
            "username": "north-kid",
            "first_name": "New",
            "last_name": "Name",
            "display_name": "",
            "email": "kid@north.example.org",
            "preferred_time_zone": "",
            "is_active": "on",
            "last_login_0": "",
            "last_login_1": "",
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
            "role_assignments-TOTAL_FORMS": "0",
            "role_assignments-INITIAL_FORMS": "0",
            "external_identities-TOTAL_FORMS": "0",
            "external_identities-INITIAL_FORMS": "0",
            # A forged field is ignored: the form has no such field for a district admin.
            "is_superuser": "on",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    user.refresh_from_db()
    assert (user.first_name, user.is_superuser, user.tenant) == ("New", False, two_tenants["north"])
    entry = AuditLog.objects.get(action="admin.change")
    assert (entry.tenant, entry.actor, entry.target_id) == (
        two_tenants["north"],
        two_tenants["admin"],
        str(user.pk),
    )


def test_district_admin_adds_a_class_in_their_tenant(client: Any, two_tenants: dict[str, Any]) -> None:
    client.force_login(two_tenants["admin"])
    response = client.post(
        reverse("admin:classes_class_add"),
        {
            "title": "Chemistry",
            "code": "CHEM",
            "source": "manual",
            "is_active": "on",
            "enrollments-TOTAL_FORMS": "0",
            "enrollments-INITIAL_FORMS": "0",
            "keys-TOTAL_FORMS": "0",
            "keys-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    from tutoring_core.classes.models import Class

    assert Class.objects.get(title="Chemistry").tenant == two_tenants["north"]


def test_school_choices_are_limited_to_the_tenant(client: Any, two_tenants: dict[str, Any]) -> None:
    south_class = ClassFactory(tenant=two_tenants["south"])
    north_class = ClassFactory(tenant=two_tenants["north"])
    client.force_login(two_tenants["admin"])
    page = client.get(reverse("admin:classes_class_add")).content.decode()
    assert north_class.school.name in page
    assert south_class.school.name not in page


def test_admin_form_rejects_invalid_time_zone_with_a_field_message(
    client: Any, two_tenants: dict[str, Any]
) -> None:
    client.force_login(two_tenants["admin"])
    tenant = two_tenants["north"]
    response = client.post(
        reverse("admin:accounts_tenant_change", args=[tenant.pk]),
        {"name": "North", "time_zone": "Nowhere/City"},
    )
    assert response.status_code == 200
    assert "is not an IANA time zone" in response.content.decode()
    tenant.refresh_from_db()
    assert tenant.time_zone == "America/Chicago"


def test_non_admin_staff_cannot_use_admin(client: Any, two_tenants: dict[str, Any]) -> None:
    teacher = UserFactory(tenant=two_tenants["north"], is_staff=True)
    client.force_login(teacher)
    assert client.get(reverse("admin:accounts_user_changelist")).status_code == 403


def test_superuser_sees_every_tenant(client: Any, two_tenants: dict[str, Any]) -> None:
    root = User.objects.create_superuser("root", "root@example.org", "pw-root-123456")
    client.force_login(root)
    html = client.get(reverse("admin:accounts_user_changelist")).content.decode()
    assert "north-kid" in html and "south-kid" in html
