"""The video admin: a district admin sets their tenant's video policy (the provider's fields
checked, its secret write-only), and the records (rooms, presences, attendance, consents,
recordings, provider events) are shown, never changed. Other tenants' rows: the isolation
walker (tests/test_tenant_isolation.py)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from tests import factories as f
from tests.video import isolation
from tutoring_core.accounts.models import AuditLog
from tutoring_core.video.models import VideoPolicy

BBB = {
    "provider": "bbb",
    "server_url": "https://bbb.example.org/bigbluebutton/",
    "client_url": "",
    "app_id": "",
    "secret": "bbb-shared-secret-0123456789",
    "checksum_algorithm": "sha256",
    "consent_from": "guardian",
}
RECORDS = {
    "room": isolation._room,
    "presence": isolation._presence,
    "attendance": isolation._attendance,
    "recordingconsent": isolation._consent,
    "recording": isolation._recording,
    "providerevent": isolation._provider_event,
}


@pytest.fixture
def admin_client(db: Any, settings: Any) -> tuple[Client, Any]:
    settings.OUTBOUND_ALLOW_PRIVATE_ADDRESSES = False  # as in production
    tenant = f.TenantFactory(slug="north")
    client = Client()
    admin_user = f.district_admin(tenant)
    client.force_login(admin_user)
    return client, admin_user


def _errors(response: Any) -> dict[str, list[str]]:
    form = response.context["adminform"].form
    return {name: list(errors) for name, errors in form.errors.items()}


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"secret": ""}, "secret", "BigBlueButton needs its shared secret (bbb-conf --secret shows it)."),
        (
            {"server_url": ""},
            "server_url",
            "BigBlueButton needs its API address, e.g. https://bbb.example.org/bigbluebutton/.",
        ),
        (
            {"server_url": "http://bbb.example.org/bigbluebutton/"},
            "server_url",
            "Use an address that starts with https://.",
        ),
        (
            {"server_url": "https://10.0.0.8/bigbluebutton/"},
            "server_url",
            "10.0.0.8 is a private or local address; a provider must be reachable at a public one.",
        ),
        (
            {"server_url": "https://localhost/bigbluebutton/"},
            "server_url",
            "localhost is a private or local address; a provider must be reachable at a public one.",
        ),
        (
            {"server_url": "https://admin:pw@bbb.example.org/"},
            "server_url",
            "Put the credentials in the app id and secret fields, not in the address.",
        ),
        (
            {"provider": "livekit", "server_url": "https://lk.example.org", "app_id": "APIkey"},
            "client_url",
            "LiveKit needs the web client page people join on.",
        ),
        (
            {"provider": "livekit", "server_url": "ws://lk.example.org", "app_id": "APIkey"},
            "server_url",
            "Use an address that starts with wss:// or https://.",
        ),
        (
            {"provider": "jitsi", "server_url": "https://meet.example.org"},
            "app_id",
            "Jitsi Meet needs the app id its tokens are issued under.",
        ),
    ],
)
def test_a_policy_the_provider_cannot_work_with_is_refused_and_nothing_saved(
    admin_client: tuple[Client, Any], changes: dict[str, str], field: str, reason: str
) -> None:
    client, _admin = admin_client
    response = client.post(reverse("admin:video_videopolicy_add"), {**BBB, **changes})
    assert response.status_code == 200
    assert _errors(response)[field] == [reason]
    assert VideoPolicy.objects.count() == 0
    assert not AuditLog.objects.filter(action="admin.add").exists()


def test_district_admin_sets_their_policy_and_the_secret_is_write_only(
    admin_client: tuple[Client, Any],
) -> None:
    client, admin_user = admin_client
    response = client.post(reverse("admin:video_videopolicy_add"), BBB)
    assert response.status_code == 302
    policy = VideoPolicy.objects.get()
    assert policy.tenant_id == admin_user.tenant_id
    assert (policy.provider, policy.server_url, policy.secret) == (
        "bbb",
        "https://bbb.example.org/bigbluebutton/",
        "bbb-shared-secret-0123456789",
    )
    audit = AuditLog.objects.get(action="admin.add")
    assert audit.tenant_id == admin_user.tenant_id
    assert "bbb-shared-secret" not in str(audit.details)

    change = reverse("admin:video_videopolicy_change", args=[policy.pk])
    page = client.get(change)
    assert page.status_code == 200
    assert "bbb-shared-secret" not in page.content.decode()
    # A blank secret keeps the stored one; a new one replaces it.
    assert client.post(change, {**BBB, "secret": "", "recording_allowed": "on"}).status_code == 302
    policy.refresh_from_db()
    assert (policy.secret, policy.recording_allowed) == ("bbb-shared-secret-0123456789", True)
    assert client.post(change, {**BBB, "secret": "rotated-secret"}).status_code == 302
    policy.refresh_from_db()
    assert policy.secret == "rotated-secret"
    # One policy per tenant: the add page is closed now.
    assert client.get(reverse("admin:video_videopolicy_add")).status_code == 403


@pytest.mark.parametrize("model", sorted(RECORDS))
@pytest.mark.parametrize("who", ["district_admin", "platform_staff"])
def test_records_are_shown_never_changed(db: Any, model: str, who: str) -> None:
    tenant = f.TenantFactory(slug="north")
    row = RECORDS[model](tenant)
    user = (
        f.district_admin(tenant)
        if who == "district_admin"
        else f.UserFactory(tenant=tenant, is_staff=True, is_superuser=True)
    )
    client = Client()
    client.force_login(user)
    changelist = client.get(reverse(f"admin:video_{model}_changelist"))
    assert changelist.status_code == 200
    assert f"/{row.pk}/change/" in changelist.content.decode()
    change = reverse(f"admin:video_{model}_change", args=[row.pk])
    page = client.get(change)
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    before = {k: v for k, v in vars(type(row).objects.get(pk=row.pk)).items() if not k.startswith("_")}
    assert client.post(change, {}).status_code == 403
    assert (
        client.post(reverse(f"admin:video_{model}_delete", args=[row.pk]), {"post": "yes"}).status_code == 403
    )
    assert client.get(reverse(f"admin:video_{model}_add")).status_code == 403
    after = {k: v for k, v in vars(type(row).objects.get(pk=row.pk)).items() if not k.startswith("_")}
    assert after == before
    assert not AuditLog.objects.filter(action__startswith="admin.").exists()
