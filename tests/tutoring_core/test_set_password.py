"""A district's first admin (issue 11, point 3): `tenant_create --admin-email` makes
the district admin and prints a one-time, 24-hour link to the set-password page."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
from typing import Any
from urllib.parse import urlsplit

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.test import Client

from tests.factories import TenantFactory, UserFactory
from tutoring_core.accounts.models import AuditLog, Role, RoleAssignment, Tenant, User

pytestmark = pytest.mark.django_db

ISSUED = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
NEW_PASSWORD = "maple-orbit-lantern-42"


def create(*args: str) -> dict[str, Any]:
    out, err = io.StringIO(), io.StringIO()
    call_command("tenant_create", *args, stdout=out, stderr=err)
    result: dict[str, Any] = json.loads(out.getvalue())
    if "admin" in result:
        assert result["admin"]["set_password_url"] in err.getvalue()
    return result


def first_admin(at: dt.datetime = ISSUED) -> dict[str, Any]:
    with time_machine.travel(at, tick=False):
        return create("lakeside", "--name", "Lakeside USD", "--admin-email", "Pat.Admin@Lakeside.example.org")


def path_of(url: str) -> str:
    return urlsplit(url).path


def set_password(client: Client, url: str, password: str = NEW_PASSWORD) -> Any:
    """Follow the link as a browser does: the token moves to the session, then the form."""
    opened = client.get(path_of(url))
    assert opened.status_code == 302
    form_url = opened["Location"]
    assert form_url.endswith("/set-password/")
    assert client.get(form_url).status_code == 200
    return client.post(form_url, {"new_password1": password, "new_password2": password})


def test_creates_the_district_admin_and_prints_a_link(settings: Any) -> None:
    settings.PUBLIC_BASE_URL = "https://hub.example.org"
    result = first_admin()
    tenant = Tenant.objects.get(slug="lakeside")
    user = User.objects.get()
    assert result["created"] is True
    admin = result["admin"]
    assert (admin["id"], admin["username"], admin["created"]) == (
        str(user.pk),
        "pat.admin@lakeside.example.org",
        True,
    )
    assert admin["set_password_url"].startswith("https://hub.example.org/signin/set-password/")
    assert admin["set_password_expires_at"] == "2026-03-03T09:00:00+00:00"
    assert (user.tenant_id, user.email, user.is_staff, user.is_superuser, user.is_active) == (
        tenant.pk,
        "Pat.Admin@Lakeside.example.org",
        True,
        False,
        True,
    )
    assert not user.has_usable_password()
    assert list(RoleAssignment.objects.values_list("tenant_id", "user_id", "role", "is_active")) == [
        (tenant.pk, user.pk, Role.DISTRICT_ADMIN, True)
    ]
    assert list(AuditLog.objects.order_by("id").values_list("action", "target_id", "details")) == [
        ("tenant.create", str(tenant.pk), {}),
        ("tenant.admin_create", str(user.pk), {}),
        ("auth.set_password_link", str(user.pk), {"expires_at": "2026-03-03T09:00:00+00:00"}),
    ]


def test_running_again_issues_a_new_link_and_changes_nothing_else() -> None:
    first = first_admin()
    user_before = User.objects.values().get()
    second = first_admin(ISSUED + dt.timedelta(hours=1))
    assert second["admin"]["set_password_url"] != first["admin"]["set_password_url"]
    assert second == {
        **first,
        "created": False,
        "admin": {
            **first["admin"],
            "created": False,
            "set_password_url": second["admin"]["set_password_url"],
            "set_password_expires_at": "2026-03-03T10:00:00+00:00",
        },
    }
    assert User.objects.values().get() == user_before
    assert RoleAssignment.objects.count() == 1
    assert list(AuditLog.objects.order_by("id").values_list("action", flat=True)) == [
        "tenant.create",
        "tenant.admin_create",
        "auth.set_password_link",
        "auth.set_password_link",
    ]


def test_the_link_sets_a_password_once_and_the_admin_signs_in(client: Client) -> None:
    url = first_admin()["admin"]["set_password_url"]
    with time_machine.travel(ISSUED + dt.timedelta(hours=2), tick=False):
        page = client.get(client.get(path_of(url))["Location"]).content.decode()
        assert "You sign in as <strong>pat.admin@lakeside.example.org</strong>." in page
        assert '<label for="id_new_password1">New password</label>' in page
        assert '<label for="id_new_password2">New password again</label>' in page
        done = set_password(client, url)
        assert done.status_code == 302
        assert done["Location"] == "/signin/"
        user = User.objects.get()
        assert user.check_password(NEW_PASSWORD)
        assert AuditLog.objects.filter(action="auth.password_set", actor=user).count() == 1
        signed_in = client.post(
            "/signin/", {"username": "pat.admin@lakeside.example.org", "password": NEW_PASSWORD}
        )
        assert signed_in.status_code == 302
        assert client.session["_auth_user_id"] == str(user.pk)

        # Used once: the same link, in this browser or another, is dead.
        client.logout()
        for browser in (client, Client()):
            again = browser.get(path_of(url), follow=True)
            assert again.status_code == 410
            assert "This link no longer works" in again.content.decode()
    assert User.objects.get().check_password(NEW_PASSWORD)


def test_mismatched_or_weak_passwords_are_explained_and_nothing_changes(client: Client) -> None:
    url = first_admin()["admin"]["set_password_url"]
    with time_machine.travel(ISSUED + dt.timedelta(minutes=5), tick=False):
        form_url = client.get(path_of(url))["Location"]
        mismatch = client.post(form_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD + "x"})
        assert mismatch.status_code == 200
        assert "The two password fields didn\u2019t match." in mismatch.content.decode()
        weak = client.post(form_url, {"new_password1": "password", "new_password2": "password"})
        assert weak.status_code == 200
        assert "This password is too common." in weak.content.decode()
    assert not User.objects.get().has_usable_password()
    assert not AuditLog.objects.filter(action="auth.password_set").exists()


def test_the_link_expires_after_24_hours(client: Client) -> None:
    url = first_admin()["admin"]["set_password_url"]
    with time_machine.travel(ISSUED + dt.timedelta(hours=24, seconds=1), tick=False):
        expired = client.get(path_of(url), follow=True)
    assert expired.status_code == 410
    assert "A set-password link works once, for 24 hours." in expired.content.decode()
    assert not User.objects.get().has_usable_password()
    with time_machine.travel(ISSUED + dt.timedelta(hours=23, minutes=59), tick=False):
        assert set_password(Client(), url).status_code == 302


def test_a_link_expiring_while_the_form_is_open_is_refused(client: Client) -> None:
    url = first_admin()["admin"]["set_password_url"]
    with time_machine.travel(ISSUED + dt.timedelta(hours=23, minutes=59), tick=False) as clock:
        form_url = client.get(path_of(url))["Location"]
        clock.shift(dt.timedelta(minutes=2))
        late = client.post(form_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert late.status_code == 410
    assert not User.objects.get().has_usable_password()


@pytest.mark.parametrize(
    "path", ["/signin/set-password/Zm9v/abc-123/", "/signin/set-password/!!/set-password/"]
)
def test_a_made_up_link_is_a_410_page(client: Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 410
    assert response["X-Frame-Options"] == "DENY"


def test_a_bad_email_creates_nothing() -> None:
    with pytest.raises(CommandError, match=re.escape("admin_email: 'not-an-email' is not an email address.")):
        create("lakeside", "--name", "Lakeside USD", "--admin-email", "not-an-email")
    assert (Tenant.objects.count(), User.objects.count(), AuditLog.objects.count()) == (0, 0, 0)


def test_another_districts_account_is_never_taken_over() -> None:
    other = TenantFactory(slug="hillside")
    UserFactory(tenant=other, username="pat@example.org", email="pat@example.org")
    with pytest.raises(
        CommandError, match=re.escape("'pat@example.org' already exists outside district 'lakeside'")
    ):
        create("lakeside", "--name", "Lakeside USD", "--admin-email", "pat@example.org")
    assert not Tenant.objects.filter(slug="lakeside").exists()
    assert RoleAssignment.objects.count() == 0
