"""Operator pages and tasks: three personas on every view; the admin; Celery tasks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings
from django.urls import reverse

from oneroster.models import RosterConnection, SyncRun
from oneroster.protocol.fake_provider import FakeOneRosterProvider, Faults
from oneroster.protocol.generator import District
from oneroster.tasks import scheduled_syncs, sync_run_task
from tests.factories import TenantFactory, UserFactory, district_admin
from tests.oneroster.isolation import make_run
from tutoring_core.accounts.models import AuditLog, User
from tutoring_core.classes.models import Enrollment

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(tmp_path: Path, settings: Any) -> dict[str, Any]:
    settings.ONEROSTER_CSV_ROOT = tmp_path
    District(30, seed=1).write_csv(tmp_path / "north")
    tenant = TenantFactory(slug="north")
    conn = RosterConnection.objects.create(tenant=tenant, name="SIS drop", csv_path="north")
    other = TenantFactory(slug="south")
    return {
        "tenant": tenant,
        "conn": conn,
        "owner": district_admin(tenant, username="north-admin"),
        "teacher": UserFactory(tenant=tenant, username="north-teacher"),
        "outsider": district_admin(other, username="south-admin"),
    }


def test_run_now_queues_a_run_after_commit_and_the_worker_applies_it(
    client: Any, setup: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    client.force_login(setup["owner"])
    conn = setup["conn"]
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(reverse("oneroster:connection_run", args=[conn.pk]), {"mode": "full"})
    run = SyncRun.objects.get(connection=conn)
    assert response.status_code == 302
    assert response.url == reverse("oneroster:run_detail", args=[run.pk])
    assert run.status == "queued"
    assert run.requested_by == setup["owner"]
    assert len(callbacks) == 1
    sync_run_task.apply(args=[str(run.pk)])  # what the worker runs
    run.refresh_from_db()
    assert run.status == "succeeded"
    assert Enrollment.objects.filter(tenant=setup["tenant"]).count() == 2 * 6 + 30 * 6
    page = client.get(reverse("oneroster:run_detail", args=[run.pk]))
    assert page.status_code == 200
    assert b"Succeeded" in page.content and b"<td>Enrollments</td><td>192</td>" in page.content
    progress = client.get(reverse("oneroster:run_progress", args=[run.pk])).json()
    assert (progress["status"], progress["percent"], progress["progress_total"]) == (
        "succeeded",
        100,
        progress["progress_done"],
    )


@pytest.mark.parametrize("persona", ["teacher", "outsider"])
def test_other_personas_get_404_and_change_nothing(client: Any, setup: dict[str, Any], persona: str) -> None:
    conn = setup["conn"]
    run = SyncRun.objects.create(tenant=setup["tenant"], connection=conn, status="awaiting_approval")
    client.force_login(setup[persona])
    for name, arg, method in [
        ("connection_test", conn.pk, "post"),
        ("connection_run", conn.pk, "post"),
        ("connection_upload", conn.pk, "get"),
        ("connection_upload", conn.pk, "post"),
        ("run_detail", run.pk, "get"),
        ("run_progress", run.pk, "get"),
        ("run_approve", run.pk, "post"),
        ("run_reject", run.pk, "post"),
    ]:
        assert getattr(client, method)(reverse(f"oneroster:{name}", args=[arg])).status_code == 404, name
    run.refresh_from_db()
    assert run.status == "awaiting_approval"
    assert SyncRun.objects.count() == 1


def test_anonymous_is_sent_to_sign_in(client: Any, setup: dict[str, Any]) -> None:
    response = client.post(reverse("oneroster:connection_run", args=[setup["conn"].pk]))
    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))
    assert SyncRun.objects.count() == 0


def test_owner_approves_and_rejects(
    client: Any, setup: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    client.force_login(setup["owner"])
    paused = make_run(setup["tenant"])
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(reverse("oneroster:run_approve", args=[paused.pk]))
    assert response.status_code == 302
    paused.refresh_from_db()
    assert (paused.status, paused.approved, paused.decided_by) == ("queued", True, setup["owner"])
    assert len(callbacks) == 1
    other = make_run(setup["tenant"])
    client.post(reverse("oneroster:run_reject", args=[other.pk]))
    other.refresh_from_db()
    assert other.status == "rejected"
    assert list(
        AuditLog.objects.filter(action__in=["roster.sync_approved", "roster.sync_rejected"])
        .values_list("action", flat=True)
        .order_by("id")
    ) == [
        "roster.sync_approved",
        "roster.sync_rejected",
    ]
    # A second decision on the same run is refused and changes nothing.
    client.post(reverse("oneroster:run_reject", args=[paused.pk]))
    paused.refresh_from_db()
    assert paused.status == "queued"


def test_connection_test_reports_the_package(client: Any, setup: dict[str, Any]) -> None:
    client.force_login(setup["owner"])
    response = client.post(reverse("oneroster:connection_test", args=[setup["conn"].pk]), follow=True)
    assert b"Connection test passed: CSV 1.1 package readable" in response.content


def test_admin_refuses_a_csv_path_outside_the_drop_folder(client: Any, setup: dict[str, Any]) -> None:
    client.force_login(setup["owner"])
    url = reverse("admin:oneroster_rosterconnection_change", args=[setup["conn"].pk])
    page = client.get(url)
    assert page.status_code == 200
    assert b"Run full sync now" in page.content
    data = {
        "name": "SIS drop",
        "kind": "csv",
        "is_active": "on",
        "csv_path": "../../etc",
        "page_size": 1000,
        "max_concurrency": 2,
        "requests_per_second": 10,
        "delta_overlap_minutes": 15,
        "max_deactivation_share": 0.1,
        "scopes": "x",
    }
    response = client.post(url, data)
    assert response.status_code == 200
    assert b"is outside the roster drop folder" in response.content
    setup["conn"].refresh_from_db()
    assert setup["conn"].csv_path == "north"


def test_scheduled_syncs_queue_each_connection_once(
    setup: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    RosterConnection.objects.create(
        tenant=setup["tenant"], name="off", csv_path="north", is_active=False, schedule_full=True
    )
    # A new connection is on no schedule until an admin ticks one.
    RosterConnection.objects.create(tenant=setup["tenant"], name="unscheduled", csv_path="north")
    RosterConnection.objects.filter(pk=setup["conn"].pk).update(schedule_full=True)
    with django_capture_on_commit_callbacks() as callbacks:
        assert scheduled_syncs("full") == 1
        assert scheduled_syncs("full") == 0  # the first is still queued
    assert len(callbacks) == 1
    assert SyncRun.objects.get().mode == "full"


@override_settings(ONEROSTER_MAX_RETRIES=1)
def test_task_retries_an_unavailable_source_then_records_failure() -> None:
    with FakeOneRosterProvider(District(10), faults=Faults(too_many={"orgs": 1000}, retry_after="0")) as p:
        conn = RosterConnection.objects.create(
            tenant=TenantFactory(slug="north"),
            name="SIS",
            kind="rest_1_1",
            base_url=p.base_url,
            client_id=p.client_id,
            client_secret=p.client_secret,
        )
        run = SyncRun.objects.create(tenant=conn.tenant, connection=conn)
        sync_run_task.apply(args=[str(run.pk)])
        run.refresh_from_db()
        assert run.status == "failed"
        assert run.message.startswith("The source stayed unavailable after 2 attempts")
        assert User.objects.count() == 0
        # Two task attempts, each with the client's five tries.
        assert [s for _, _, s in p.log] == [429] * 10
    assert json.loads(json.dumps(run.counts)) == run.counts
