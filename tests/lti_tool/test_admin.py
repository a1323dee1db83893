"""The registration admin for a district admin: preset filling, scoping, approval."""

from __future__ import annotations

from typing import Any

from lti_tool.models import Deployment, PlatformRegistration
from tests.factories import TenantFactory, district_admin
from tests.lti_tool.isolation import make_deployment, make_registration
from tutoring_core.accounts.models import AuditLog


def test_district_admin_registers_canvas_with_the_preset(client: Any, tenant: Any) -> None:
    admin = district_admin(tenant)
    client.force_login(admin)
    response = client.post(
        "/admin/lti_tool/platformregistration/add/",
        {
            "name": "Canvas",
            "preset": "canvas",
            "is_active": "on",
            "issuer": "https://canvas.instructure.com",
            "client_id": "10000000000077",
            "auth_login_url": "",
            "auth_token_url": "",
            "key_set_url": "",
            "auth_audience": "",
            "deployment_policy": "hold",
            "deployments-TOTAL_FORMS": "1",
            "deployments-INITIAL_FORMS": "0",
            "deployments-0-deployment_id": "77:abc",
            "deployments-0-status": "active",
            "deployments-0-label": "",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    registration = PlatformRegistration.objects.get()
    assert (registration.tenant_id, registration.auth_login_url, registration.key_set_url) == (
        tenant.pk,
        "https://sso.canvaslms.com/api/lti/authorize_redirect",
        "https://sso.canvaslms.com/api/lti/security/jwks",
    )
    assert list(registration.deployments.values_list("tenant_id", "deployment_id")) == [(tenant.pk, "77:abc")]
    assert AuditLog.objects.filter(action="admin.add", tenant=tenant).count() == 1


def test_approving_held_deployments_is_scoped_and_audited(client: Any, tenant: Any) -> None:
    mine = make_deployment(tenant)
    mine.status = Deployment.Status.PENDING
    mine.save(update_fields=["status"])
    theirs = make_deployment(TenantFactory(slug="south"))
    theirs.status = Deployment.Status.PENDING
    theirs.save(update_fields=["status"])
    client.force_login(district_admin(tenant))
    response = client.post(
        "/admin/lti_tool/deployment/",
        {"action": "approve", "_selected_action": [str(mine.pk), str(theirs.pk)]},
    )
    assert response.status_code == 302
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert (mine.status, theirs.status) == (Deployment.Status.ACTIVE, Deployment.Status.PENDING)
    assert AuditLog.objects.filter(action="admin.change", tenant=tenant).count() == 1


def test_other_tenants_registrations_are_not_listed(client: Any, tenant: Any) -> None:
    other = make_registration(TenantFactory(slug="south"))
    mine = make_registration(tenant)
    client.force_login(district_admin(tenant))
    page = client.get("/admin/lti_tool/platformregistration/").content.decode()
    assert mine.client_id in page
    assert other.client_id not in page


def test_lti11_secret_is_write_only_in_the_admin(client: Any, tenant: Any) -> None:
    admin = district_admin(tenant)
    client.force_login(admin)
    registration = make_registration(tenant)
    url = f"/admin/lti_tool/platformregistration/{registration.pk}/change/"
    form = {
        "name": "Moodle",
        "preset": "generic",
        "is_active": "on",
        "issuer": registration.issuer,
        "client_id": registration.client_id,
        "auth_login_url": registration.auth_login_url,
        "auth_token_url": registration.auth_token_url,
        "key_set_url": registration.key_set_url,
        "auth_audience": "",
        "deployment_policy": "hold",
        "lti1p1_consumer_key": "moodle-11-key",
        "lti1p1_shared_secret": "s3cret-from-lti11",
        "deployments-TOTAL_FORMS": "0",
        "deployments-INITIAL_FORMS": "0",
    }
    assert client.post(url, form).status_code == 302
    registration.refresh_from_db()
    assert (registration.lti1p1_consumer_key, registration.lti1p1_shared_secret) == (
        "moodle-11-key",
        "s3cret-from-lti11",
    )
    page = client.get(url).content.decode()
    assert 'name="lti1p1_shared_secret"' in page
    assert "s3cret-from-lti11" not in page
    # Saving again with the secret left empty keeps it.
    assert client.post(url, {**form, "name": "Moodle 4", "lti1p1_shared_secret": ""}).status_code == 302
    registration.refresh_from_db()
    assert (registration.name, registration.lti1p1_shared_secret) == ("Moodle 4", "s3cret-from-lti11")


def test_trusted_audiences_are_edited_in_the_admin(client: Any, tenant: Any) -> None:
    registration = make_registration(tenant)
    assert registration.trusted_audience_set == frozenset()
    client.force_login(district_admin(tenant))
    page = client.get(f"/admin/lti_tool/platformregistration/{registration.pk}/change/")
    assert page.status_code == 200
    assert 'name="trusted_audiences"' in page.content.decode()
    registration.trusted_audiences = " https://a.example.org \n\nhttps://b.example.org\n"
    assert registration.trusted_audience_set == frozenset({"https://a.example.org", "https://b.example.org"})


def test_the_change_page_gives_the_tool_urls_and_a_working_dynamic_registration_link(
    client: Any, tenant: Any
) -> None:
    # The admin imports the launch views and dynamic registration only here, when the
    # field is shown (not at start-up: tests/tutoring_core/test_startup_imports.py).
    import html
    import re

    from django.conf import settings
    from django.urls import reverse

    from lti_tool.dynamic_registration import tenant_for_token

    registration = make_registration(tenant)
    client.force_login(district_admin(tenant))
    page = html.unescape(
        client.get(f"/admin/lti_tool/platformregistration/{registration.pk}/change/").content.decode()
    )
    base = settings.PUBLIC_BASE_URL
    for name, view in (
        ("login_url", "login"),
        ("launch_url", "launch"),
        ("jwks_url", "jwks"),
        ("deep_linking_url", "launch"),
        ("canvas_config_url", "canvas_config"),
    ):
        assert f"{name}: {base}{reverse(f'lti_tool:{view}')}" in page
    prefix = base + reverse("lti_tool:dynamic_registration", kwargs={"token": "TOKEN"}).split("TOKEN")[0]
    found = re.search(rf"dynamic_registration_url: {re.escape(prefix)}([^/\s<]+)/", page)
    assert found is not None, page
    assert tenant_for_token(found.group(1)) == tenant.pk
