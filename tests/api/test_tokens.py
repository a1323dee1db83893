"""Bearer tokens: stored hashed, shown once, revocable, last use recorded; the admin and the command."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from typing import Any

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from tests.api.conftest import ApiClient, client_for
from tests.factories import TenantFactory, UserFactory, district_admin
from tests.scheduling.factories import NOW, World
from tutoring_core.accounts.models import AuditLog
from tutoring_core.apiauth.models import ApiToken
from tutoring_core.apiauth.services import token_create, token_revoke

pytestmark = pytest.mark.django_db

UNAUTHORIZED = {
    "error": "A valid API token is required: send `Authorization: Bearer <token>`.",
    "field": None,
}
INVALID_TOKEN_CHALLENGE = 'Bearer realm="api", error="invalid_token", error_description="The token is unknown, revoked or malformed."'


def test_only_the_hash_of_the_token_is_stored(world: World) -> None:
    created = token_create(person=world.teacher, created_by=world.admin, name="SIS sync")

    row = ApiToken.objects.get()
    assert created.token.startswith("hub_")
    assert len(created.token) == 4 + 43
    assert row.secret_hash == hashlib.sha256(created.token.encode()).hexdigest()
    assert row.prefix == created.token[:12]
    assert (row.tenant_id, row.person_id, row.created_by_id, row.name) == (
        world.tenant.pk,
        world.teacher.pk,
        world.admin.pk,
        "SIS sync",
    )
    stored = [str(value) for value in ApiToken.objects.values_list().get()]
    assert not any(created.token in value for value in stored)
    audit = AuditLog.objects.get(action="api.token_create")
    assert (audit.actor_id, audit.target_id, audit.details) == (
        world.admin.pk,
        str(row.pk),
        {"person": str(world.teacher.pk), "prefix": row.prefix},
    )


def test_a_token_acts_as_its_person_and_records_its_last_use(world: World) -> None:
    client = client_for(world.teacher)
    row = ApiToken.objects.get()
    assert row.last_used_at is None

    with time_machine.travel(NOW, tick=False) as clock:
        response = client.get("/api/v1/people", {"role": "teacher"})
        assert response.status_code == 200
        assert [item["id"] for item in response.json()["items"]] == [str(world.teacher.pk)]
        row.refresh_from_db()
        assert row.last_used_at == NOW

        # Within API_TOKEN_LAST_USED_SECONDS (60) a use is not written again...
        clock.shift(dt.timedelta(seconds=59))
        assert client.get("/api/v1/people").status_code == 200
        row.refresh_from_db()
        assert row.last_used_at == NOW

        # ...after it, it is.
        clock.shift(dt.timedelta(seconds=2))
        assert client.get("/api/v1/people").status_code == 200
        row.refresh_from_db()
        assert row.last_used_at == NOW + dt.timedelta(seconds=61)


def test_no_token_answers_401_with_a_bearer_challenge(world: World) -> None:
    response = ApiClient(None).get("/api/v1/people")

    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


@pytest.mark.parametrize(
    "header",
    [
        "Bearer hub_not-a-token-at-all",
        "Bearer ",
        "Bearer",
        "Basic dXNlcjpwYXNz",
        "Bearer " + "x" * 5000,
    ],
)
def test_a_bad_token_answers_401_invalid_token(world: World, header: str) -> None:
    token_create(person=world.teacher)

    response = ApiClient(None).get("/api/v1/people", Authorization=header)

    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED
    assert response["WWW-Authenticate"] == INVALID_TOKEN_CHALLENGE
    assert ApiToken.objects.get().last_used_at is None


def test_a_revoked_token_answers_401(world: World) -> None:
    client = client_for(world.teacher)
    row = ApiToken.objects.get()
    assert client.get("/api/v1/people").status_code == 200

    assert token_revoke(token_id=row.pk, actor=world.admin) is True
    assert token_revoke(token_id=row.pk, actor=world.admin) is False  # once only

    response = client.get("/api/v1/people")
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED
    assert response["WWW-Authenticate"] == INVALID_TOKEN_CHALLENGE
    row.refresh_from_db()
    assert row.revoked_by_id == world.admin.pk
    assert AuditLog.objects.filter(action="api.token_revoke", target_id=str(row.pk)).count() == 1


def test_a_deactivated_person_or_district_answers_401(world: World) -> None:
    teacher_client = client_for(world.teacher)
    admin_client = client_for(world.admin)
    world.teacher.is_active = False
    world.teacher.save(update_fields=["is_active"])
    assert teacher_client.get("/api/v1/people").status_code == 401
    assert admin_client.get("/api/v1/people").status_code == 200

    world.tenant.is_active = False
    world.tenant.save(update_fields=["is_active"])
    assert admin_client.get("/api/v1/people").status_code == 401


def test_a_signed_in_browser_session_does_not_authenticate_the_api(world: World) -> None:
    # Bearer-only: no cookie-authenticated call, so no cross-site request can use the API.
    browser = Client()
    browser.force_login(world.admin)

    response = browser.get("/api/v1/people")

    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED


def test_api_token_create_prints_the_token_once(world: World) -> None:
    world.teacher.email = "Teacher@North.example"
    world.teacher.save(update_fields=["email"])
    out, err = io.StringIO(), io.StringIO()

    call_command(
        "api_token_create", "--tenant", "north", "--email", "teacher@north.example", stdout=out, stderr=err
    )

    token = out.getvalue().strip()
    row = ApiToken.objects.get()
    assert row.secret_hash == hashlib.sha256(token.encode()).hexdigest()
    assert (row.person_id, row.tenant_id, row.name) == (
        world.teacher.pk,
        world.tenant.pk,
        "manage.py api_token_create",
    )
    assert token not in err.getvalue()
    assert row.prefix in err.getvalue()
    assert ApiClient(token).get("/api/v1/people").status_code == 200


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tenant", "nowhere", "--email", "a@b.example"], "No active tenant has the slug 'nowhere'."),
        (
            ["--tenant", "north", "--email", "nobody@north.example"],
            "No active person in north has the email 'nobody@north.example'.",
        ),
    ],
)
def test_api_token_create_refuses_unknown_districts_and_people(
    world: World, args: list[str], message: str
) -> None:
    with pytest.raises(CommandError) as caught:
        call_command("api_token_create", *args, stdout=io.StringIO(), stderr=io.StringIO())
    assert str(caught.value) == message
    assert ApiToken.objects.count() == 0


def test_api_token_create_refuses_an_email_two_people_share(world: World) -> None:
    UserFactory(tenant=world.tenant, email="shared@north.example")
    UserFactory(tenant=world.tenant, email="shared@north.example")
    with pytest.raises(CommandError, match="Several people in north have the email"):
        call_command(
            "api_token_create", "--tenant", "north", "--email", "shared@north.example", stdout=io.StringIO()
        )
    assert ApiToken.objects.count() == 0


def test_the_admin_lists_and_revokes_the_districts_tokens(world: World) -> None:
    mine = token_create(person=world.teacher).row
    other_tenant = TenantFactory(slug="south")
    theirs = token_create(person=UserFactory(tenant=other_tenant)).row
    browser = Client()
    browser.force_login(world.admin)
    url = reverse("admin:apiauth_apitoken_changelist")

    page = browser.get(url)
    assert page.status_code == 200
    assert mine.prefix in page.content.decode()
    assert theirs.prefix not in page.content.decode()

    # Another district's token is not in the admin's queryset: the action cannot reach it.
    response = browser.post(url, {"action": "revoke", "_selected_action": [str(mine.pk), str(theirs.pk)]})
    assert response.status_code == 302
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.revoked_at is not None
    assert mine.revoked_by_id == world.admin.pk
    assert theirs.revoked_at is None
    assert browser.get(reverse("admin:apiauth_apitoken_add")).status_code == 403


def test_a_district_admin_of_another_district_sees_no_token(world: World, client: Any) -> None:
    token = token_create(person=world.teacher).row
    outsider = district_admin(TenantFactory(slug="south"))
    client.force_login(outsider)

    assert client.get(reverse("admin:apiauth_apitoken_change", args=[token.pk])).status_code == 404
